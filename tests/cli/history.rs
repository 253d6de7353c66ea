//! get_container_logs: the host-side run history.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};

use crate::common::Adde;

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_last_run_one_run_or_all_runs() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let first = adde.exec(&env, "one.sh", "echo first", 10.0);
    let second = adde.exec(&env, "two.sh", "echo second; echo oops >&2; exit 4", 10.0);

    let out = adde.ok("get_container_logs", json!({"container_id": env.id}));
    assert_eq!(
        out["log"], second,
        "the last run, as execute_code_block returned it"
    );

    let out = adde.ok(
        "get_container_logs",
        json!({"container_id": env.id, "run_id": first["run_id"]}),
    );
    assert_eq!(out["log"], first);

    let out = adde.ok(
        "get_container_logs",
        json!({"container_id": env.id, "all": true}),
    );
    assert_eq!(out["runs"], json!([first, second]));

    adde.err(
        "get_container_logs",
        json!({"container_id": env.id, "run_id": "r0000000000000-00000000"}),
        "run_not_found",
    );
    // A short id finds the history too.
    let out = adde.ok("get_container_logs", json!({"container_id": &env.id[..12]}));
    assert_eq!(out["log"]["run_id"], second["run_id"]);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn tail_lines_returns_exactly_that_many_lines() {
    let adde = Adde::docker();
    let env = adde.busybox();
    adde.exec(
        &env,
        "lines.sh",
        "for i in 1 2 3 4 5; do echo line$i; done; echo e1 >&2; echo e2 >&2",
        10.0,
    );
    let out = adde.ok(
        "get_container_logs",
        json!({"container_id": env.id, "tail_lines": 2}),
    );
    assert_eq!(out["log"]["stdout"], "line4\nline5\n");
    assert_eq!(out["log"]["stderr"], "e1\ne2\n");
    let out = adde.ok(
        "get_container_logs",
        json!({"container_id": env.id, "tail_lines": 1}),
    );
    assert_eq!(out["log"]["stdout"], "line5\n");
    assert_eq!(out["log"]["stderr"], "e2\n");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn runs_are_kept_on_the_host_one_private_file_each() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let log = adde.exec(&env, "a.sh", "echo hi", 10.0);
    let file = adde
        .state
        .path()
        .join("runs")
        .join(&env.id)
        .join(format!("{}.json", log["run_id"].as_str().unwrap()));
    let meta = std::fs::metadata(&file).expect("run record on the host");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(kept, log);
    // The code cannot reach the record: nothing of it is in the container.
    let check = adde.exec(
        &env,
        "look.sh",
        "ls -a / /workspace | grep -c adde-state || true",
        10.0,
    );
    assert_eq!(check["stdout"], "0\n");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn concurrent_runs_each_leave_one_record() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let children: Vec<_> = (0..6)
        .map(|i| {
            let mut cmd = adde.command();
            cmd.arg("execute_code_block")
                .arg(json!({"container_id": env.id, "filename": format!("p{i}.sh"), "code_content": format!("echo {i}")}).to_string())
                .stdout(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for child in children {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    let out = adde.ok(
        "get_container_logs",
        json!({"container_id": env.id, "all": true}),
    );
    let mut seen: Vec<String> = out["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stdout"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    assert_eq!(seen, (0..6).map(|i| format!("{i}\n")).collect::<Vec<_>>());
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn an_environment_with_no_runs_says_so() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let json = adde.err(
        "get_container_logs",
        json!({"container_id": env.id}),
        "no_runs",
    );
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("execute_code_block"),
        "{json}"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_run_in_progress_shows_what_it_printed_so_far() {
    let adde = Adde::docker();
    let env = adde.busybox();
    std::thread::scope(|scope| {
        let running =
            scope.spawn(|| adde.exec(&env, "slow.sh", "echo first; sleep 4; echo second", 30.0));
        // Once the first line is out, the history has the run, in progress, with that line.
        let mut seen = Value::Null;
        for _ in 0..60 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let out = adde.call("get_container_logs", json!({"container_id": env.id}));
            if out.json["log"]["stdout"] == "first\n" {
                seen = out.json["log"].clone();
                break;
            }
        }
        assert_eq!(seen["in_progress"], true, "{seen}");
        assert_eq!(seen["exit_code"], -1);
        let done = running.join().unwrap();
        assert_eq!(done["stdout"], "first\nsecond\n");
        assert!(done.get("in_progress").is_none(), "{done}");
        let stored = adde.ok("get_container_logs", json!({"container_id": env.id}));
        assert_eq!(
            stored["log"], done,
            "the final record replaced the one in progress"
        );
    });
}
