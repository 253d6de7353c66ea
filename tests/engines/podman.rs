//! Rootful Podman's Docker-compatible API (`podman system service`) as the engine.

use std::sync::{Mutex, MutexGuard};

use serde_json::json;

use crate::common::BUSYBOX;
use crate::{second_engine, On};

/// One Podman test at a time: reap removes unused volumes, and a volume being created for an
/// environment is unused until its container exists.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn podman() -> Option<(On, MutexGuard<'static, ()>)> {
    let vars = second_engine("podman", &["ADDE_TEST_PODMAN_HOST"])?;
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    Some((On::new(&[("DOCKER_HOST", &vars[0].1)]), turn))
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn the_core_contract_holds_on_podman() {
    let Some((on, _turn)) = podman() else { return };
    assert_eq!(on.ok("ping", json!({}))["engine_version"], "4.3.1");
    // Any ulimit used to make Podman ask for RLIMIT_NPROC 1048576, which the container could
    // not set: the environment never started.
    let env = on.env(json!({"image": BUSYBOX}));
    assert_eq!(env.json["limits"]["nofile"], 1024, "{}", env.json);
    assert_eq!(env.json["limits"]["pids_limit"], 256, "{}", env.json);
    on.ok(
        "write_file",
        json!({"container_id": env.id, "path": "notes.txt", "content": "on podman\n"}),
    );
    let log = on.exec(
        &env,
        "cat notes.txt; ulimit -n; setsid sleep 300 & sleep 301",
        2.0,
    );
    assert_eq!(log["stdout"], "on podman\n1024\n", "{log}");
    assert_eq!(log["timed_out"], true, "{log}");
    let top = on.docker(&["top", &env.id]);
    assert!(
        !top.contains("sleep 30"),
        "the timeout left processes: {top}"
    );
    let read = on.ok(
        "read_file",
        json!({"container_id": env.id, "path": "notes.txt"}),
    );
    assert_eq!(read["content"], "on podman\n", "{read}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn reap_leaves_the_volumes_of_live_environments_alone() {
    let Some((on, _turn)) = podman() else { return };
    let env = on.env(json!({"image": BUSYBOX}));
    // Podman ORs the label and dangling filters: the live environment's volumes came back as
    // unused, and removing them failed (409) and failed the reap.
    let reaped = on.ok("reap", json!({}));
    let removed = reaped["removed_volumes"].to_string();
    let workspace = on.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}} {{end}}",
        &env.id,
    ]);
    for volume in workspace.split_whitespace() {
        assert!(!removed.contains(volume), "{volume} was reaped: {reaped}");
    }
    let log = on.exec(&env, "echo still here", 10.0);
    assert_eq!(log["stdout"], "still here\n", "{log}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_runtime_podman_would_ignore_is_refused_and_ping_lists_only_its_default() {
    let Some((on, _turn)) = podman() else { return };
    // Podman lists every runtime it is configured for (kata, krun, runj… not installed here)
    // and, asked for runsc, ran the container on runc without a word.
    let ping = on.ok("ping", json!({}));
    assert_eq!(ping["runtimes"], json!([ping["default_runtime"]]), "{ping}");
    let err = on.err(
        "create_runtime_env",
        json!({"image": BUSYBOX, "runtime": "runsc"}),
        "runtime_not_available",
    );
    let message = err["error"].as_str().unwrap();
    assert!(
        message.contains("default runtime, whatever is asked"),
        "{message}"
    );
}
