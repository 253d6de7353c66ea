//! Rootful Podman's Docker-compatible API (`podman system service`) as the engine.

use serde_json::json;

use crate::common::BUSYBOX;
use crate::{second_engine, On};

fn podman() -> Option<On> {
    let vars = second_engine("podman", &["ADDE_TEST_PODMAN_HOST"])?;
    Some(On::new(&[("DOCKER_HOST", &vars[0].1)]))
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn the_core_contract_holds_on_podman() {
    let Some(on) = podman() else { return };
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
