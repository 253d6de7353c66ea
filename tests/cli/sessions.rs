//! Agent sessions: commands, files in and out, named environments, mounts, users, and the
//! engine check.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{
    assert_error, docker, docker_lines, docker_ok, inspect, parse_output, Adde, BUSYBOX, PYTHON,
};

fn command(adde: &Adde, id: &str, command: Value) -> Value {
    adde.ok(
        "execute_command",
        json!({"container_id": id, "command": command}),
    )["log"]
        .clone()
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn commands_run_as_shell_lines_or_argv_with_stdin_env_and_workdir() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let out = adde.ok(
        "execute_command",
        json!({"container_id": env.id, "command": "echo \"$GREETING\"; pwd; cat; exit 3",
               "env": {"GREETING": "hi there"}, "workdir": "/bin", "stdin": "from stdin\n"}),
    );
    let log = &out["log"];
    assert_eq!(log["stdout"], "hi there\n/bin\nfrom stdin\n");
    assert_eq!(log["exit_code"], 3);
    // An argument list reaches the program as is: no shell expands it.
    let log = command(&adde, &env.id, json!(["echo", "$HOME; rm -rf /"]));
    assert_eq!(log["stdout"], "$HOME; rm -rf /\n");
    // The same enforced timeout, and the same history.
    let out = adde.ok(
        "execute_command",
        json!({"container_id": env.id, "command": "sleep 300", "timeout_sec": 1}),
    );
    assert_eq!(out["log"]["timed_out"], true);
    crate::common::assert_only_idle(&env.id);
    let last = adde.ok("get_container_logs", json!({"container_id": env.id}));
    assert_eq!(last["log"]["run_id"], out["log"]["run_id"]);

    adde.err(
        "execute_command",
        json!({"container_id": env.id, "command": ["no-such-program"]}),
        "command_not_found",
    );
    let json = adde.err(
        "execute_command",
        json!({"container_id": env.id, "command": "pwd", "workdir": "/nope"}),
        "invalid_argument",
    );
    assert_eq!(json["field"], "workdir");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn files_go_in_and_come_out_without_a_shell() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": crate::common::SCRATCH}));
    let out = adde.ok("write_file", json!({"container_id": env.id, "path": "notes/a.txt", "content": "one\ntwo\nthree\nfour\n"}));
    assert_eq!(out["path"], "/workspace/notes/a.txt");
    let page = adde.ok(
        "read_file",
        json!({"container_id": env.id, "path": "notes/a.txt", "offset": 1, "line_count": 2}),
    );
    assert_eq!(page["content"], "two\nthree\n");
    assert_eq!(page["total_lines"], 4);
    assert_eq!(page["has_more"], true);
    let head = adde.ok(
        "read_file",
        json!({"container_id": env.id, "path": "/workspace/notes/a.txt", "max_bytes": 5}),
    );
    assert_eq!(head["content"], "one\nt");
    assert_eq!(head["has_more"], true);

    use base64::Engine as _;
    let bytes: Vec<u8> = (0..=255u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    adde.ok("write_file", json!({"container_id": env.id, "path": "bin/tool", "content": encoded, "encoding": "base64", "mode": "0755"}));
    let back = adde.ok(
        "read_file",
        json!({"container_id": env.id, "path": "bin/tool", "encoding": "base64"}),
    );
    assert_eq!(back["content"], encoded);
    adde.err(
        "read_file",
        json!({"container_id": env.id, "path": "bin/tool"}),
        "not_text",
    );
    adde.err(
        "read_file",
        json!({"container_id": env.id, "path": "missing.txt"}),
        "file_not_found",
    );
    adde.err(
        "read_file",
        json!({"container_id": env.id, "path": "notes"}),
        "is_a_directory",
    );

    let listing = adde.ok(
        "list_files",
        json!({"container_id": env.id, "recursive": true}),
    );
    let entries: Vec<(String, String)> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("bin", "dir"),
        ("bin/tool", "file"),
        ("notes", "dir"),
        ("notes/a.txt", "file"),
    ];
    assert_eq!(
        entries,
        expected
            .map(|(n, k)| (n.to_string(), k.to_string()))
            .to_vec()
    );
    let tool = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "bin/tool")
        .unwrap();
    assert_eq!(tool["size"], 256);
    assert_eq!(tool["mode"], "0755");
    let flat = adde.ok("list_files", json!({"container_id": env.id}));
    assert_eq!(flat["entries"].as_array().unwrap().len(), 2);
    adde.err(
        "list_files",
        json!({"container_id": env.id, "path": "nope"}),
        "file_not_found",
    );

    let dest = tempfile::tempdir().unwrap();
    let out = adde.ok(
        "export_files",
        json!({"container_id": env.id, "paths": ["notes", "bin/tool"], "dest": dest.path()}),
    );
    assert_eq!(out["bytes"], 19 + 256);
    assert_eq!(
        std::fs::read_to_string(dest.path().join("notes/a.txt")).unwrap(),
        "one\ntwo\nthree\nfour\n"
    );
    assert_eq!(std::fs::read(dest.path().join("tool")).unwrap(), bytes);
    adde.err(
        "export_files",
        json!({"container_id": env.id, "paths": ["nope"], "dest": dest.path()}),
        "file_not_found",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn export_never_writes_outside_its_destination() {
    let adde = Adde::docker();
    let env = adde.busybox();
    command(&adde, &env.id, json!("mkdir -p out && echo ok > out/ok.txt && ln -s /etc/passwd out/passwd && ln -s ../../../../tmp out/up"));
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    let out = adde.ok(
        "export_files",
        json!({"container_id": env.id, "paths": ["out"], "dest": dest}),
    );
    assert_eq!(out["files"], json!(["out/ok.txt"]));
    let mut skipped: Vec<&str> = out["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    skipped.sort();
    assert_eq!(skipped, vec!["out/passwd", "out/up"]);
    assert!(
        !dest.join("out/passwd").exists()
            && std::fs::symlink_metadata(dest.join("out/up")).is_err()
    );
    assert_eq!(
        std::fs::read_dir(outer.path()).unwrap().count(),
        1,
        "only dest was written"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_session_is_get_or_create() {
    let adde = Adde::docker();
    let session = format!("adde-test-session-{}", std::process::id());
    let first = adde.env(json!({"image": BUSYBOX, "session": session}));
    assert_eq!(first.json["session_action"], "created");
    assert_eq!(first.json["session"], session);
    let again = adde.ok(
        "create_runtime_env",
        json!({"image": BUSYBOX, "session": session}),
    );
    assert_eq!(again["session_action"], "reused");
    assert_eq!(again["container_id"], first.id.as_str());

    adde.ok(
        "write_file",
        json!({"container_id": first.id, "path": "keep.txt", "content": "kept"}),
    );
    docker(&["stop", "-t", "1", &first.id]);
    let restarted = adde.ok(
        "create_runtime_env",
        json!({"image": BUSYBOX, "session": session}),
    );
    assert_eq!(restarted["session_action"], "restarted");
    assert_eq!(restarted["container_id"], first.id.as_str());
    assert_eq!(
        adde.ok(
            "read_file",
            json!({"container_id": first.id, "path": "keep.txt"})
        )["content"],
        "kept"
    );

    let json = adde.err(
        "create_runtime_env",
        json!({"image": PYTHON, "session": session}),
        "session_conflict",
    );
    assert!(json["error"].as_str().unwrap().contains(BUSYBOX), "{json}");

    adde.ok("cleanup_env", json!({"container_id": first.id}));
    let fresh = adde.env(json!({"image": BUSYBOX, "session": session}));
    assert_eq!(fresh.json["session_action"], "created");
    assert_ne!(fresh.id, first.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn concurrent_calls_for_one_session_end_with_one_environment() {
    let adde = Adde::docker();
    let session = format!("adde-test-race-{}", std::process::id());
    let payload = json!({"image": BUSYBOX, "session": session}).to_string();
    let children: Vec<_> = (0..4)
        .map(|_| {
            adde.command()
                .args(["create_runtime_env", &payload])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| parse_output(c.wait_with_output().unwrap()))
        .collect();
    let ids: Vec<&str> = outs
        .iter()
        .map(|o| {
            o.json["container_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{o:?}"))
        })
        .collect();
    let _guard = crate::common::Env {
        id: ids[0].to_string(),
        name: outs[0].json["name"].as_str().unwrap().to_string(),
        json: Value::Null,
    };
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let created = outs
        .iter()
        .filter(|o| o.json["session_action"] == "created")
        .count();
    assert_eq!(created, 1, "{outs:?}");
    let containers = docker_lines(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.adde.session={session}"),
    ]);
    assert_eq!(containers.len(), 1);
    let name = outs[0].json["name"].as_str().unwrap();
    let volumes = docker_lines(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=io.adde.env={name}"),
    ]);
    // The winner's workspace and dependency folder.
    assert_eq!(
        volumes.len(),
        2,
        "the losers' volumes must be gone: {volumes:?}"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn mounts_are_read_only_by_default_and_never_the_docker_socket() {
    let adde = Adde::docker();
    let tools = tempfile::tempdir().unwrap();
    std::fs::write(tools.path().join("skill.py"), "SKILL = 1\n").unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let env = adde.env(json!({"image": BUSYBOX, "mounts": [
        {"source": tools.path(), "target": "/tools"},
        {"source": out_dir.path(), "target": "/out", "read_only": false},
    ]}));
    let log = command(
        &adde,
        &env.id,
        json!("cat /tools/skill.py; touch /tools/x; echo made > /out/file"),
    );
    assert_eq!(log["stdout"], "SKILL = 1\n");
    assert!(
        log["stderr"]
            .as_str()
            .unwrap()
            .contains("Read-only file system"),
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("file")).unwrap(),
        "made\n"
    );
    assert_eq!(env.json["mounts"][0]["read_only"], true);

    for source in [
        "/var/run/docker.sock",
        "/var/run",
        "/run",
        "/",
        "/var/run/../run/docker.sock",
    ] {
        let json = adde.err(
            "create_runtime_env",
            json!({"image": BUSYBOX, "mounts": [{"source": source, "target": "/x"}]}),
            "invalid_argument",
        );
        assert_eq!(json["field"], "mounts", "{source}");
    }
    adde.err(
        "create_runtime_env",
        json!({"image": BUSYBOX, "mounts": [{"source": "relative", "target": "/x"}]}),
        "invalid_argument",
    );
    adde.err(
        "create_runtime_env",
        json!({"image": BUSYBOX, "mounts": [{"source": "/tmp", "target": "/workspace"}]}),
        "invalid_argument",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_non_root_user_owns_its_workspace_even_on_a_read_only_rootfs() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": BUSYBOX, "user": "1000:1000", "read_only_rootfs": true}));
    assert_eq!(env.json["user"], "1000:1000");
    assert_eq!(env.json["security"]["read_only_rootfs"], true);
    let log = command(
        &adde,
        &env.id,
        json!("id -u; touch /workspace/mine && echo ws; touch /tmp/t && echo tmp; touch /etc/x"),
    );
    assert_eq!(log["stdout"], "1000\nws\ntmp\n");
    assert!(
        log["stderr"]
            .as_str()
            .unwrap()
            .contains("Read-only file system"),
        "{log}"
    );
    adde.ok(
        "write_file",
        json!({"container_id": env.id, "path": "deep/dir/given.txt", "content": "a"}),
    );
    let log = command(&adde, &env.id, json!("stat -c '%u' /workspace/deep/dir/given.txt; echo b >> /workspace/deep/dir/given.txt && echo appended"));
    assert_eq!(log["stdout"], "1000\nappended\n");
    let log = adde.exec(&env, "code.sh", "id -u", 10.0);
    assert_eq!(log["stdout"], "1000\n");

    let named = adde.env(json!({"image": PYTHON, "user": "nobody"}));
    let log = command(
        &adde,
        &named.id,
        json!("id -un; touch /workspace/ok && echo ok"),
    );
    assert_eq!(log["stdout"], "nobody\nok\n");
    adde.err(
        "create_runtime_env",
        json!({"image": BUSYBOX, "user": "no-such-user"}),
        "invalid_argument",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn labels_workdir_runtime_and_listing() {
    let adde = Adde::docker();
    let session = format!("adde-test-list-{}", std::process::id());
    let env = adde.env(json!({"image": BUSYBOX, "session": session, "labels": {"team": "ml"}, "workdir": "/srv", "ttl_sec": 3600}));
    assert_eq!(inspect(&env.id)["Config"]["Labels"]["team"], "ml");
    assert_eq!(env.json["labels"], json!({"team": "ml"}));
    assert_eq!(command(&adde, &env.id, json!("pwd"))["stdout"], "/srv\n");
    assert!(env.json["expires_at"].as_str().unwrap().ends_with('Z'));

    let listed = adde.ok("list_runtime_envs", json!({"session": session}));
    let envs = listed["environments"].as_array().unwrap();
    assert_eq!(envs.len(), 1);
    assert_eq!(envs[0]["container_id"], env.id.as_str());
    assert_eq!(envs[0]["limits"]["memory_bytes"], 512 << 20);
    assert_eq!(envs[0]["state"], "running");
    docker(&["stop", "-t", "1", &env.id]);
    assert_eq!(
        adde.ok("list_runtime_envs", json!({"session": session}))["environments"],
        json!([])
    );
    let all = adde.ok(
        "list_runtime_envs",
        json!({"session": session, "all": true}),
    );
    assert_eq!(all["environments"][0]["state"], "exited");

    adde.err(
        "create_runtime_env",
        json!({"image": BUSYBOX, "labels": {"io.adde.managed": "false"}}),
        "invalid_argument",
    );
    let json = adde.err(
        "create_runtime_env",
        json!({"image": BUSYBOX, "runtime": "no-such-runtime"}),
        "runtime_not_available",
    );
    assert!(json["error"].as_str().unwrap().contains("runc"), "{json}");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn run_container_is_one_shot() {
    let adde = Adde::docker();
    let payload = tempfile::tempdir().unwrap();
    std::fs::write(payload.path().join("data.csv"), "a,b\n1,2\n").unwrap();
    let out = adde.ok("run_container", json!({
        "image": PYTHON, "filename": "main.py",
        "code_content": "import csv\nprint(list(csv.reader(open('data.csv'))), open('note.txt').read())\n",
        "payload": {"note.txt": "hi"}, "payload_path": payload.path(),
    }));
    assert_eq!(out["log"]["stdout"], "[['a', 'b'], ['1', '2']] hi\n");
    assert_eq!(out["removed"], true);
    let id = out["log"]["container_id"].as_str().unwrap();
    assert!(!docker_ok(&["inspect", id]), "the container must be gone");

    let out = adde.ok(
        "run_container",
        json!({"image": BUSYBOX, "command": "echo partial; sleep 300", "timeout_sec": 1}),
    );
    assert_eq!(out["log"]["timed_out"], true);
    assert_eq!(out["log"]["stdout"], "partial\n");
    assert!(!docker_ok(&[
        "inspect",
        out["log"]["container_id"].as_str().unwrap()
    ]));
    adde.err(
        "run_container",
        json!({"image": BUSYBOX}),
        "invalid_argument",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn ping_reports_the_engine() {
    let adde = Adde::docker();
    let out = adde.ok("ping", json!({}));
    assert_eq!(out["ok"], true);
    let server = docker(&[
        "version",
        "--format",
        "{{.Server.Version}} {{.Server.APIVersion}}",
    ]);
    assert_eq!(
        format!(
            "{} {}",
            out["engine_version"].as_str().unwrap(),
            out["api_version"].as_str().unwrap()
        ),
        server.trim()
    );
    assert!(out["runtimes"].as_array().unwrap().contains(&json!("runc")));
    assert_eq!(out["adde_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(out["state_dir"], adde.state.path().display().to_string());

    let output = adde
        .command()
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .args(["ping", "{}"])
        .output()
        .unwrap();
    assert_error(&parse_output(output), "docker_unavailable");
    std::thread::sleep(Duration::from_millis(1));
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn files_on_a_tmpfs_are_written_and_read_through_the_helper() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": BUSYBOX, "read_only_rootfs": true}));
    adde.ok(
        "write_file",
        json!({"container_id": env.id, "path": "/tmp/scratch/notes.txt", "content": "a\nb\n"}),
    );
    assert_eq!(
        command(&adde, &env.id, json!(["cat", "/tmp/scratch/notes.txt"]))["stdout"],
        "a\nb\n"
    );
    let page = adde.ok(
        "read_file",
        json!({"container_id": env.id, "path": "/tmp/scratch/notes.txt", "offset": 1}),
    );
    assert_eq!(page["content"], "b\n");
    assert_eq!(page["size"], 4);
    adde.err(
        "read_file",
        json!({"container_id": env.id, "path": "/tmp/scratch"}),
        "is_a_directory",
    );
    adde.err(
        "read_file",
        json!({"container_id": env.id, "path": "/tmp/none"}),
        "file_not_found",
    );
}
