//! Rootless Podman on a cgroup v1 host: it accepts memory, CPU, pids and ulimit settings,
//! applies none of them and says nothing. adde reads the limits back and refuses.

use std::sync::{Mutex, MutexGuard};

use serde_json::json;

use crate::common::BUSYBOX;
use crate::{second_engine, On};

/// One test at a time: one checks that the engine holds nothing more after its refusal.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn rootless_podman(extra: &[(&str, &str)]) -> Option<(On, MutexGuard<'static, ()>)> {
    let vars = second_engine("rootless_podman", &["ADDE_TEST_ROOTLESS_PODMAN_HOST"])?;
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut env = vec![("DOCKER_HOST", vars[0].1.as_str())];
    env.extend_from_slice(extra);
    Some((On::new(&env), turn))
}

/// What the engine holds of adde's, as `docker ps -a` / `docker volume ls` names it.
fn containers_and_volumes(on: &On) -> (String, String) {
    let filter = "label=io.adde.kind=env";
    let containers = on.docker(&["ps", "-aq", "--filter", filter]);
    let volumes = on.docker(&["volume", "ls", "-q", "--filter", "label=io.adde.env"]);
    (containers, volumes)
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn limits_the_engine_drops_are_refused_and_nothing_is_left() {
    let Some((on, _turn)) = rootless_podman(&[]) else {
        return;
    };
    let before = containers_and_volumes(&on);
    let err = on.err(
        "create_runtime_env",
        json!({"image": BUSYBOX, "memory": "128m", "cpus": 0.25, "pids_limit": 64}),
        "limits_not_enforced",
    );
    // Before: created with `warnings: []`, its limits read back as 0.
    let unapplied = err["unapplied"].to_string();
    for limit in [
        "memory: asked 128m, applied none",
        "memory_swap: asked 128m, applied none",
        "cpus: asked 0.25, applied none",
        "pids_limit: asked 64, applied none",
        "nofile: asked 1024, applied none",
    ] {
        assert!(unapplied.contains(limit), "{limit} missing: {err}");
    }
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("ADDE_ALLOW_UNENFORCED_LIMITS=1"),
        "{err}"
    );
    assert_eq!(
        containers_and_volumes(&on),
        before,
        "the refused environment was left"
    );
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn the_operator_may_accept_them_and_each_is_a_warning() {
    let Some((on, _turn)) = rootless_podman(&[("ADDE_ALLOW_UNENFORCED_LIMITS", "1")]) else {
        return;
    };
    let env = on.env(json!({"image": BUSYBOX, "memory": "128m"}));
    let warnings = env.json["warnings"].to_string();
    assert!(
        warnings.contains("memory: asked 128m, applied none"),
        "{}",
        env.json
    );
    assert!(warnings.contains("pids_limit: asked 256"), "{}", env.json);
    assert_eq!(env.json["limits"]["memory_bytes"], 0, "{}", env.json);
    let log = on.exec(&env, "echo runs", 10.0);
    assert_eq!(log["stdout"], "runs\n", "{log}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn an_accepted_session_is_reused_with_its_warnings() {
    let Some((on, _turn)) = rootless_podman(&[("ADDE_ALLOW_UNENFORCED_LIMITS", "1")]) else {
        return;
    };
    let session = format!("rootless-{}", std::process::id());
    let payload = json!({"image": BUSYBOX, "session": session});
    let env = on.env(payload.clone());
    // The limits read back as none each time: that was a session_conflict with itself.
    let again = on.ok("create_runtime_env", payload);
    assert_eq!(again["session_action"], "reused", "{again}");
    assert_eq!(again["container_id"], env.id.as_str(), "{again}");
    assert!(
        again["warnings"]
            .to_string()
            .contains("memory: asked 512m, applied none"),
        "{again}"
    );
}
