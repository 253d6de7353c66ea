//! Limits and policy: the operator's policy file, the mount rules, the disk bound, session
//! conflicts, owner scopes and cleanup of environments removed by hand. Each test is an
//! attack that worked before.

use std::os::unix::net::UnixListener;
use std::path::Path;

use serde_json::{json, Value};

use crate::common::{
    assert_error, docker, docker_lines, docker_ok, remove_env_resources, Adde, Out, BUSYBOX,
};

/// Calls adde with extra environment variables.
fn call_with(adde: &Adde, vars: &[(&str, &str)], tool: &str, payload: Value) -> Out {
    adde.call_with(vars, tool, payload)
}

/// A policy file in a temp folder.
fn policy_file(text: &str, name: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    (dir, path)
}

/// An owner no other test (or person) uses, so what a test makes is its own.
fn unique_owner(test: &str) -> String {
    format!("adde-test-{test}-{}", std::process::id())
}

/// Everything an owner has on the engine: containers and volumes (but the helper's volume,
/// which every environment of this binary shares, whoever made it first).
fn owned(owner: &str) -> Vec<String> {
    let filter = format!("label=io.adde.owner={owner}");
    let mut all = docker_lines(&["ps", "-aq", "--filter", &filter]);
    all.extend(
        docker_lines(&["volume", "ls", "-q", "--filter", &filter])
            .into_iter()
            .filter(|v| !v.starts_with("adde-helper-")),
    );
    all
}

fn remove_owned(owner: &str) {
    let filter = format!("label=io.adde.owner={owner}");
    for id in docker_lines(&["ps", "-aq", "--filter", &filter]) {
        let _ = docker_ok(&["rm", "-f", "-v", &id]);
    }
    for volume in docker_lines(&["volume", "ls", "-q", "--filter", &filter]) {
        if !volume.starts_with("adde-helper-") {
            let _ = docker_ok(&["volume", "rm", "-f", &volume]);
        }
    }
}

/// Removes an owner's containers and volumes when dropped.
struct Owned(String);

impl Drop for Owned {
    fn drop(&mut self) {
        remove_owned(&self.0);
    }
}

const MOUNT_ATTACK: &str = r#"{"image": "adde-test/busybox:1", "mounts": [{"source": "/tmp/secret", "target": "/host", "read_only": false}]}"#;

#[test]
fn the_example_llm_policy_denies_the_mount_attack() {
    let adde = Adde::offline();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy-llm.toml");
    let vars = [
        ("ADDE_POLICY", example),
        ("DOCKER_HOST", "unix:///nonexistent/adde.sock"),
    ];
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        serde_json::from_str(MOUNT_ATTACK).unwrap(),
    );
    assert_error(&out, "policy_denied");
    assert_eq!(out.json["field"], "mounts");
    assert_eq!(out.json["rule"], "allow.mounts");
    assert!(
        out.json["value"].as_str().unwrap().contains("/tmp/secret"),
        "{out:?}"
    );
    // Network, ports, other images, writable roots and host-network installs alike.
    for (payload, rule) in [
        (json!({"image": BUSYBOX, "network": true}), "allow.network"),
        (json!({"image": "ubuntu:24.04"}), "images"),
        (
            json!({"image": BUSYBOX, "read_only_rootfs": false}),
            "allow.writable_rootfs",
        ),
        (
            json!({"image": BUSYBOX, "workspace": "volume"}),
            "allow.workspace_volume",
        ),
        (
            json!({"image": BUSYBOX, "memory": "8g"}),
            "limits.max_memory",
        ),
        (
            json!({"image": BUSYBOX, "runtime": "runc"}),
            "allow.runtime",
        ),
    ] {
        let out = call_with(&adde, &vars, "create_runtime_env", payload.clone());
        assert_error(&out, "policy_denied");
        assert_eq!(out.json["rule"], rule, "{payload}");
    }
    let out = call_with(
        &adde,
        &vars,
        "build_image_from_path",
        json!({"path": "/tmp"}),
    );
    assert_error(&out, "policy_denied");
    assert_eq!(out.json["field"], "tool");
    let out = call_with(
        &adde,
        &vars,
        "run_container",
        json!({"image": BUSYBOX, "command": "id", "timeout_sec": 3600}),
    );
    assert_eq!(out.json["rule"], "limits.max_timeout_sec", "{out:?}");
    // The policy is shown, and list_tools lists only what may be called.
    let out = call_with(&adde, &vars, "show_policy", json!({}));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["source"], example);
    assert_eq!(out.json["policy"]["allow"]["mounts"], false);
    assert_eq!(out.json["policy"]["limits"]["max_disk"], "512m");
    let out = call_with(&adde, &vars, "list_tools", json!({}));
    let names: Vec<&str> = out.json["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"execute_code_block") && names.contains(&"show_policy"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"export_files") && !names.contains(&"build_image_from_git"),
        "{names:?}"
    );
}

#[test]
fn a_malformed_policy_stops_every_call_and_none_is_shown_as_null() {
    let adde = Adde::offline();
    for (text, name) in [
        ("[limits]\nmax_memroy = \"1g\"\n", "policy.toml"),
        ("[allow]\nnetwork = \"no\"\n", "policy.toml"),
        ("{\"limits\": {\"max_cpus\": -1}}", "policy.json"),
        ("not = [toml", "policy.toml"),
    ] {
        let (_dir, path) = policy_file(text, name);
        for tool in ["list_tools", "show_policy", "create_runtime_env"] {
            let out = call_with(
                &adde,
                &[("ADDE_POLICY", &path)],
                tool,
                json!({"image": BUSYBOX}),
            );
            assert_error(&out, "policy_invalid");
            assert_eq!(out.json["policy"], path.as_str());
        }
    }
    let out = call_with(
        &adde,
        &[("ADDE_POLICY", "/nonexistent/policy.toml")],
        "ping",
        json!({}),
    );
    assert_error(&out, "policy_invalid");
    // No policy anywhere: today's behaviour, and show_policy says so.
    let home = tempfile::tempdir().unwrap();
    let home = home.path().display().to_string();
    let out = call_with(
        &adde,
        &[("XDG_CONFIG_HOME", &home)],
        "show_policy",
        json!({}),
    );
    if !Path::new("/etc/adde/policy.toml").exists() {
        assert_eq!(out.json["policy"], Value::Null, "{out:?}");
        assert!(out.json["searched"].as_array().unwrap().len() >= 2);
    }
    // A JSON policy works as well as TOML, from the default location too.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("adde")).unwrap();
    std::fs::write(
        dir.path().join("adde/policy.toml"),
        "[allow]\nnetwork = false\n",
    )
    .unwrap();
    let config = dir.path().display().to_string();
    let out = call_with(
        &adde,
        &[("XDG_CONFIG_HOME", &config)],
        "create_runtime_env",
        json!({"image": BUSYBOX, "network": true}),
    );
    assert_error(&out, "policy_denied");
    assert_eq!(out.json["field"], "network");
    let (_dir, path) = policy_file("{\"allow\": {\"port_bindings\": false}}", "p.json");
    let out = call_with(
        &adde,
        &[("ADDE_POLICY", &path)],
        "create_runtime_env",
        json!({"image": BUSYBOX, "network": true, "port_bindings": {"80": "8080"}}),
    );
    assert_eq!(out.json["rule"], "allow.port_bindings", "{out:?}");
}

#[test]
fn builds_on_the_host_network_need_the_policy_s_consent() {
    let adde = Adde::offline();
    let (_dir, path) = policy_file("[limits]\nmax_cpus = 2\n", "policy.toml");
    let out = call_with(
        &adde,
        &[("ADDE_POLICY", &path)],
        "build_image_from_path",
        json!({"path": "/tmp", "network": "host"}),
    );
    assert_error(&out, "policy_denied");
    assert_eq!(out.json["rule"], "allow.host_network");
    let out = call_with(
        &adde,
        &[("ADDE_POLICY", &path)],
        "build_image_from_context",
        json!({"context_id": "ctx-0123456789abcdef", "allow_remote_add": true}),
    );
    assert_eq!(
        out.json["error_code"], "context_not_found",
        "remote ADD stays allowed unless forbidden: {out:?}"
    );
    let (_dir, path) = policy_file("[allow]\nremote_add = false\n", "policy.toml");
    let out = call_with(
        &adde,
        &[("ADDE_POLICY", &path)],
        "build_image_from_context",
        json!({"context_id": "ctx-0123456789abcdef", "allow_remote_add": true}),
    );
    assert_eq!(out.json["rule"], "allow.remote_add", "{out:?}");
    // An install that would get the host network (asked, or chosen for a loopback index).
    for payload in [
        json!({"image": BUSYBOX, "dependencies": ["x"], "install_network": "host"}),
        json!({"image": BUSYBOX, "dependencies": ["x"], "pip_index_url": "http://127.0.0.1:2375/simple"}),
    ] {
        let out = call_with(
            &adde,
            &[("ADDE_POLICY", &path)],
            "create_runtime_env",
            payload,
        );
        assert_eq!(out.json["rule"], "allow.host_network", "{out:?}");
    }
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_denied_request_creates_nothing_and_a_host_network_build_is_a_finding() {
    let adde = Adde::docker();
    let owner = unique_owner("denied");
    let _guard = Owned(owner.clone());
    let (_dir, path) = policy_file("[allow]\nmounts = false\n", "policy.toml");
    let vars = [
        ("ADDE_POLICY", path.as_str()),
        ("ADDE_OWNER", owner.as_str()),
    ];
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        serde_json::from_str(MOUNT_ATTACK).unwrap(),
    );
    assert_error(&out, "policy_denied");
    assert!(owned(&owner).is_empty(), "{:?}", owned(&owner));

    // Without a policy, a host-network build runs, with a warning finding.
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {BUSYBOX}\nUSER 1\nRUN true\n"),
    )
    .unwrap();
    let tag = format!("adde-test/policy-hostnet:{}", std::process::id());
    let out = call_with(
        &adde,
        &[("ADDE_OWNER", &owner)],
        "build_image_from_path",
        json!({"path": context.path(), "network": "host", "tag": tag}),
    );
    let _ = docker_ok(&["rmi", "-f", &tag]);
    assert_eq!(out.code, 0, "{out:?}");
    let rules: Vec<&str> = out.json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"ADDE-W006"), "{rules:?}");
}

/// Creates a listening unix socket at `path`.
fn socket_at(path: &Path) -> UnixListener {
    UnixListener::bind(path).expect("bind a unix socket")
}

#[test]
fn mounts_refuse_sockets_by_type_and_the_kernel_s_and_engine_s_folders() {
    let adde = Adde::offline();
    // A bogus engine: if a check let a mount through, nothing could be created anyway.
    let vars = [("DOCKER_HOST", "unix:///nonexistent/adde.sock")];
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker-bk.sock");
    let _listener = socket_at(&sock);
    // A hard link to a socket, under an innocent name, elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("notes.txt");
    std::fs::hard_link(&sock, &link).unwrap();
    // A symlink to a socket, and a folder holding one deep down.
    let symlink = elsewhere.path().join("innocent");
    std::os::unix::fs::symlink(&sock, &symlink).unwrap();
    let deep = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(deep.path().join("a/b/c")).unwrap();
    let _deep_listener = socket_at(&deep.path().join("a/b/c/agent.sock"));
    let mut sources: Vec<String> = [&sock, &link, &symlink, &deep.path().to_path_buf()]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    sources.extend(
        [
            "/run/docker-bk.sock",
            "/run/containerd",
            "/var/run/docker.sock",
            "/proc",
            "/proc/1/root",
            "/sys",
            "/dev",
            "/var/lib/docker",
            "/var/lib/docker/volumes",
            "/var/lib",
            "/var",
            "/",
            "/var//lib/../run",
        ]
        .map(str::to_string),
    );
    if std::fs::metadata("/var/run/docker.sock").is_ok() {
        // The engine's own socket hard-linked into a folder on the same file system.
        let run_dir = Path::new("/run");
        if let Ok(dir) = tempfile::tempdir_in(run_dir) {
            let linked = dir.path().join("x");
            if std::fs::hard_link("/var/run/docker.sock", &linked).is_ok() {
                let out = call_with(
                    &adde,
                    &vars,
                    "create_runtime_env",
                    json!({"image": BUSYBOX, "mounts": [{"source": linked, "target": "/x"}]}),
                );
                assert_error(&out, "invalid_argument");
            }
        }
    }
    for source in &sources {
        let out = call_with(
            &adde,
            &vars,
            "create_runtime_env",
            json!({"image": BUSYBOX, "mounts": [{"source": source, "target": "/x"}]}),
        );
        assert_error(&out, "invalid_argument");
        assert_eq!(out.json["field"], "mounts", "{source}: {out:?}");
    }
    // An ordinary folder passes these checks (and then fails on the bogus engine).
    let plain = tempfile::tempdir().unwrap();
    std::fs::write(plain.path().join("tool.py"), "x = 1\n").unwrap();
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        json!({"image": BUSYBOX, "mounts": [{"source": plain.path(), "target": "/x"}]}),
    );
    assert_eq!(out.json["error_code"], "docker_unavailable", "{out:?}");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_mounted_socket_never_reaches_the_container() {
    // The original attack, end to end: the folder holding a socket is refused, so the engine
    // never sees the mount.
    let adde = Adde::docker();
    let owner = unique_owner("socket");
    let _guard = Owned(owner.clone());
    let dir = tempfile::tempdir().unwrap();
    let _listener = socket_at(&dir.path().join("engine.sock"));
    let out = call_with(
        &adde,
        &[("ADDE_OWNER", &owner)],
        "create_runtime_env",
        json!({"image": BUSYBOX, "mounts": [{"source": dir.path(), "target": "/host", "read_only": false}]}),
    );
    assert_error(&out, "invalid_argument");
    assert!(owned(&owner).is_empty());
}

/// Free bytes of the file system holding the engine's data root.
fn free_bytes(path: &str) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail", path])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_tmpfs_workspace_bounds_the_disk_and_the_result_says_what_is_enforced() {
    let adde = Adde::docker();
    let owner = unique_owner("disk");
    let _guard = Owned(owner.clone());
    let vars = [("ADDE_OWNER", owner.as_str())];
    let data_root = docker(&["info", "--format", "{{.DockerRootDir}}"])
        .trim()
        .to_string();
    let driver = docker(&["info", "--format", "{{.Driver}}"])
        .trim()
        .to_string();

    // The default environment says what it does not bound.
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        json!({"image": BUSYBOX}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let disk = &out.json["limits"]["disk"];
    assert_eq!(disk["size"], "1g");
    assert!(
        disk["workspace"]
            .as_str()
            .unwrap()
            .starts_with("not enforced"),
        "{disk}"
    );
    let warnings = out.json["warnings"].to_string();
    assert!(
        warnings.contains("disk: workspace not enforced"),
        "{warnings}"
    );
    if !["overlay2", "btrfs", "zfs"].contains(&driver.as_str()) {
        assert!(disk["rootfs"].as_str().unwrap().contains(&driver), "{disk}");
        assert!(warnings.contains("disk: rootfs not enforced"), "{warnings}");
    }
    remove_env_resources(
        out.json["container_id"].as_str().unwrap(),
        out.json["name"].as_str().unwrap(),
    );

    // A 64 MiB tmpfs workspace on a read-only root: writing 200 MiB fails with ENOSPC, and
    // the host's disk does not pay for it.
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        json!({"image": BUSYBOX, "disk": "64m", "workspace": "tmpfs", "read_only_rootfs": true}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.json["container_id"].as_str().unwrap().to_string();
    let disk = &out.json["limits"]["disk"];
    assert_eq!(disk["bytes"], 64 << 20);
    assert!(
        disk["workspace"]
            .as_str()
            .unwrap()
            .starts_with("64m (tmpfs"),
        "{disk}"
    );
    assert!(
        disk["rootfs"].as_str().unwrap().starts_with("read-only"),
        "{disk}"
    );
    assert_eq!(
        out.json["warnings"],
        json!([]),
        "everything is bounded: {out:?}"
    );
    let before = free_bytes(&data_root);
    let run = |command: &str| {
        let out = call_with(
            &adde,
            &vars,
            "execute_command",
            json!({"container_id": id, "command": command, "timeout_sec": 60}),
        );
        assert_eq!(out.code, 0, "{out:?}");
        out.json["log"].clone()
    };
    let log = run(
        "dd if=/dev/zero of=/workspace/fill bs=1M count=200; echo exit=$?; ls -l /workspace/fill",
    );
    assert!(
        log["stderr"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{log}"
    );
    assert!(log["stdout"].as_str().unwrap().contains("exit=1"), "{log}");
    let log = run("dd if=/dev/zero of=/tmp/fill bs=1M count=200; echo exit=$?");
    assert!(
        log["stderr"]
            .as_str()
            .unwrap()
            .contains("No space left on device"),
        "{log}"
    );
    let log = run("dd if=/dev/zero of=/fill bs=1M count=200; echo exit=$?");
    assert!(
        log["stderr"]
            .as_str()
            .unwrap()
            .contains("Read-only file system"),
        "{log}"
    );
    let after = free_bytes(&data_root);
    let dropped = before.saturating_sub(after);
    eprintln!("host free space of {data_root}: {before} -> {after} bytes (dropped {dropped} after writing 600 MiB)");
    assert!(dropped < 64 << 20, "the host lost {dropped} bytes of disk");
    // Files written through the archive API land on the tmpfs too (once there is room).
    let log = run("rm /workspace/fill; df -k /workspace | tail -1");
    assert!(log["stdout"].as_str().unwrap().contains("65536"), "{log}");
    let out = call_with(
        &adde,
        &vars,
        "write_file",
        json!({"container_id": id, "path": "note.txt", "content": "hi"}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = call_with(
        &adde,
        &vars,
        "read_file",
        json!({"container_id": id, "path": "note.txt"}),
    );
    assert_eq!(out.json["content"], "hi", "{out:?}");

    // A user that is a uid owns its tmpfs workspace.
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        json!({"image": BUSYBOX, "disk": "16m", "workspace": "tmpfs", "user": "1000:1000"}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.json["container_id"].as_str().unwrap().to_string();
    let log = run_as(
        &adde,
        &vars,
        &id,
        "id -u; touch /workspace/mine && stat -c %u /workspace /workspace/mine",
    );
    assert_eq!(log["stdout"], "1000\n1000\n1000\n", "{log}");
}

fn run_as(adde: &Adde, vars: &[(&str, &str)], id: &str, command: &str) -> Value {
    let out = call_with(
        adde,
        vars,
        "execute_command",
        json!({"container_id": id, "command": command}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    out.json["log"].clone()
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_session_asked_for_with_other_settings_is_a_conflict_naming_each_field() {
    let adde = Adde::docker();
    let owner = unique_owner("conflict");
    let _guard = Owned(owner.clone());
    let vars = [("ADDE_OWNER", owner.as_str())];
    let session = format!("policy-conflict-{}", std::process::id());
    let first =
        json!({"image": BUSYBOX, "session": session, "memory": "256m", "env_vars": {"TOKEN": "a"}});
    let out = call_with(&adde, &vars, "create_runtime_env", first.clone());
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["session_action"], "created");
    // The same settings: reused.
    let out = call_with(&adde, &vars, "create_runtime_env", first);
    assert_eq!(out.json["session_action"], "reused", "{out:?}");
    // Other limits, network, env values, rootfs, disk: each named, nothing reused.
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        json!({"image": BUSYBOX, "session": session, "memory": "512m", "network": true, "env_vars": {"TOKEN": "b"}, "read_only_rootfs": true, "disk": "2g", "cpus": 1}),
    );
    assert_error(&out, "session_conflict");
    let fields: Vec<&str> = out.json["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "memory",
            "cpus",
            "network",
            "read_only_rootfs",
            "disk",
            "env_vars"
        ],
        "{out:?}"
    );
    assert!(
        !out.json["error"].as_str().unwrap().contains("\"b\""),
        "values of env vars are not shown"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        json!({"image": BUSYBOX, "session": session, "memory": "256m", "env_vars": {"TOKEN": "a"}, "mounts": [{"source": dir.path(), "target": "/m"}]}),
    );
    assert_eq!(out.json["fields"], json!(["mounts"]), "{out:?}");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn cleanup_all_and_reap_act_on_the_caller_s_own_environments() {
    let adde = Adde::docker();
    let alice = unique_owner("alice");
    let bob = unique_owner("bob");
    let _guards = (Owned(alice.clone()), Owned(bob.clone()));
    let tag = format!("t{}", std::process::id());
    let out = call_with(
        &adde,
        &[("ADDE_OWNER", &alice)],
        "create_runtime_env",
        json!({"image": BUSYBOX, "ttl_sec": 1, "labels": {"policy-test": tag}}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let id = out.json["container_id"].as_str().unwrap().to_string();
    assert_eq!(out.json["owner"], alice.as_str());
    std::thread::sleep(std::time::Duration::from_secs(2));
    // Bob's sweeping calls leave Alice's environment alone.
    let out = call_with(&adde, &[("ADDE_OWNER", &bob)], "reap", json!({}));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.json["removed_environments"].to_string().contains(&id));
    let out = call_with(
        &adde,
        &[("ADDE_OWNER", &bob)],
        "cleanup_env",
        json!({"all": true, "labels": {"policy-test": tag}}),
    );
    assert_eq!(out.json["removed"], json!([]), "{out:?}");
    let out = call_with(
        &adde,
        &[("ADDE_OWNER", &bob)],
        "list_runtime_envs",
        json!({}),
    );
    assert!(!out.json.to_string().contains(&id));
    assert!(docker_ok(&["inspect", &id]));
    // Unless Bob asks for every owner (and a policy may forbid that).
    let (_dir, path) = policy_file("[allow]\nall_owners = false\n", "policy.toml");
    let out = call_with(
        &adde,
        &[("ADDE_OWNER", &bob), ("ADDE_POLICY", &path)],
        "cleanup_env",
        json!({"all": true, "all_owners": true, "labels": {"policy-test": tag}}),
    );
    assert_error(&out, "policy_denied");
    let out = call_with(
        &adde,
        &[("ADDE_OWNER", &bob)],
        "cleanup_env",
        json!({"all": true, "all_owners": true, "labels": {"policy-test": tag}}),
    );
    assert_eq!(out.json["removed"], json!([id]), "{out:?}");
    // Alice's own reap removes her expired environment.
    let out = call_with(
        &adde,
        &[("ADDE_OWNER", &alice)],
        "create_runtime_env",
        json!({"image": BUSYBOX, "ttl_sec": 1}),
    );
    let id = out.json["container_id"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let out = call_with(&adde, &[("ADDE_OWNER", &alice)], "reap", json!({}));
    assert_eq!(out.json["removed_environments"], json!([id]), "{out:?}");
    assert!(owned(&alice).is_empty(), "{:?}", owned(&alice));
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn sweeps_spare_the_volumes_of_a_create_in_progress_but_not_a_crashed_one() {
    let adde = Adde::docker();
    let owner = unique_owner("pending");
    let _guard = Owned(owner.clone());
    let vars = [("ADDE_OWNER", owner.as_str())];
    let now = unix_now();
    // Volumes as create_runtime_env makes them before their container (which an install
    // may delay for minutes): one whose create is still within its time, one whose create
    // died long ago.
    let volume = |kind: &str, until: i64| {
        let name = format!("adde-{kind}-{}-{}", std::process::id(), until);
        docker(&[
            "volume",
            "create",
            "--label",
            "io.adde.managed=true",
            "--label",
            "io.adde.kind=volume",
            "--label",
            &format!("io.adde.owner={owner}"),
            "--label",
            &format!("io.adde.env=adde-{kind}"),
            "--label",
            &format!("io.adde.pending_until={until}"),
            &name,
        ]);
        name
    };
    let coming = volume("coming", now + 600);
    let crashed = volume("crashed", now - 1);
    let out = call_with(&adde, &vars, "reap", json!({}));
    assert_eq!(out.code, 0, "{out:?}");
    let removed = out.json["removed_volumes"].to_string();
    assert!(removed.contains(&crashed), "{out:?}");
    assert!(!removed.contains(&coming), "{out:?}");
    assert!(docker_ok(&["volume", "inspect", &coming]));
    // cleanup_env's sweep of unused volumes waits likewise.
    let out = call_with(&adde, &vars, "cleanup_env", json!({"all": true}));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(docker_ok(&["volume", "inspect", &coming]), "{out:?}");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn cleanup_by_session_name_and_after_the_container_was_removed_by_hand() {
    let adde = Adde::docker();
    let owner = unique_owner("byhand");
    let _guard = Owned(owner.clone());
    let vars = [("ADDE_OWNER", owner.as_str())];
    // By session name, with characters a container name cannot hold.
    let session = format!("my session/{}", std::process::id());
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        json!({"image": BUSYBOX, "session": session}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = call_with(&adde, &vars, "cleanup_env", json!({"session": session}));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["removed"].as_array().unwrap().len(), 1);
    assert!(owned(&owner).is_empty(), "{:?}", owned(&owner));

    // docker rm -f, then cleanup_env by session, by id and by name: the volumes go too.
    for by in ["session", "id", "name"] {
        let session = format!("byhand-{by}-{}", std::process::id());
        let out = call_with(
            &adde,
            &vars,
            "create_runtime_env",
            json!({"image": BUSYBOX, "session": session, "dependencies": []}),
        );
        assert_eq!(out.code, 0, "{out:?}");
        let id = out.json["container_id"].as_str().unwrap().to_string();
        let name = out.json["name"].as_str().unwrap().to_string();
        docker(&["rm", "-f", &id]);
        assert!(
            !owned(&owner).is_empty(),
            "the workspace volume is left behind"
        );
        let target = match by {
            "session" => session.clone(),
            "id" => id[..12].to_string(),
            _ => name.clone(),
        };
        let out = call_with(&adde, &vars, "cleanup_env", json!({"container_id": target}));
        assert_eq!(out.code, 0, "{by}: {out:?}");
        assert!(
            !out.json["volumes_removed"].as_array().unwrap().is_empty(),
            "{by}: {out:?}"
        );
        assert!(owned(&owner).is_empty(), "{by}: {:?}", owned(&owner));
    }
    // Nothing of that name at all is still container_not_found.
    let out = call_with(
        &adde,
        &vars,
        "cleanup_env",
        json!({"container_id": "adde-nothing-here"}),
    );
    assert_error(&out, "container_not_found");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn under_the_llm_policy_code_runs_in_a_bounded_environment() {
    let adde = Adde::docker();
    let owner = unique_owner("llm");
    let _guard = Owned(owner.clone());
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policy-llm.toml");
    let vars = [("ADDE_POLICY", example), ("ADDE_OWNER", owner.as_str())];
    // run_container's own environment takes the policy's defaults: a read-only root and a
    // tmpfs workspace, with the payload in it.
    let out = call_with(
        &adde,
        &vars,
        "run_container",
        json!({"image": BUSYBOX, "payload": {"data.txt": "42\n"},
               "command": "cat data.txt; touch /x 2>&1; df -k /workspace | tail -1"}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let stdout = out.json["log"]["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("42\n"), "{stdout}");
    assert!(stdout.contains("Read-only file system"), "{stdout}");
    assert!(stdout.contains("262144"), "a 256m workspace: {stdout}");
    assert!(owned(&owner).is_empty(), "{:?}", owned(&owner));
    // create_runtime_env likewise, with an expiry.
    let out = call_with(
        &adde,
        &vars,
        "create_runtime_env",
        json!({"image": BUSYBOX}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["security"]["read_only_rootfs"], true);
    assert_eq!(out.json["limits"]["disk"]["size"], "256m");
    assert_eq!(out.json["limits"]["memory"], "512m");
    assert!(out.json["expires_at"].is_string());
    assert_eq!(out.json["warnings"], json!([]), "{out:?}");
}
