//! gVisor (runsc) as the environment's runtime, on the local engine.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::BUSYBOX;
use crate::{second_engine, On};

fn gvisor() -> Option<(On, String)> {
    let vars = second_engine("runsc", &["ADDE_TEST_RUNSC"])?;
    Some((On::new(&[]), vars[0].1.clone()))
}

/// The processes in the sandbox, as its own /proc shows them (`docker top` asks runsc, whose
/// answer here lists the host's processes instead).
fn sandbox_processes(on: &On, id: &str) -> Vec<String> {
    on.docker(&["exec", id, "ps", "-o", "pid,args"])
        .lines()
        .skip(1)
        .map(|l| l.trim().to_string())
        .filter(|l| !l.ends_with("ps -o pid,args"))
        .collect()
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn the_runtime_asked_for_is_the_one_the_engine_runs() {
    let Some((on, runsc)) = gvisor() else { return };
    let env = on.env(json!({"image": BUSYBOX, "runtime": runsc}));
    assert_eq!(env.json["security"]["runtime"], runsc.as_str());
    let runtime = on.docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", &env.id]);
    assert_eq!(runtime.trim(), runsc);
    // gVisor's own kernel answers, not the host's.
    let log = on.exec(&env, "dmesg | head -1; uname -r", 10.0);
    assert_eq!(log["exit_code"], 0, "{log}");
    assert!(log["stdout"].as_str().unwrap().contains("gVisor"), "{log}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn the_timeout_kills_setsid_and_double_fork_escapes_without_a_subreaper() {
    let Some((on, runsc)) = gvisor() else { return };
    let env = on.env(json!({"image": BUSYBOX, "runtime": runsc}));
    let started = Instant::now();
    let log = on.exec(
        &env,
        "setsid sh -c 'sleep 300' & (sleep 301 &) ; (setsid sleep 302 &); sleep 303",
        2.0,
    );
    assert_eq!(log["timed_out"], true, "{log}");
    assert!(started.elapsed() < Duration::from_secs(15), "{log}");
    let left = sandbox_processes(&on, &env.id);
    assert!(
        left.len() == 1 && left[0].ends_with("__helper idle"),
        "processes left behind: {left:?}"
    );
    // A run that ends by itself leaves nothing running either.
    let log = on.exec(&env, "(sleep 304 &); (setsid sleep 305 &); echo done", 10.0);
    assert_eq!(log["stdout"], "done\n", "{log}");
    let left = sandbox_processes(&on, &env.id);
    assert!(left.len() == 1, "processes left behind: {left:?}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn pids_limit_counts_the_codes_processes_and_reaching_it_keeps_the_sandbox() {
    let Some((on, runsc)) = gvisor() else { return };
    // The default limit, 256; 400 background processes used to crash the whole sandbox.
    let env = on.env(json!({"image": BUSYBOX, "runtime": runsc}));
    assert_eq!(env.json["limits"]["pids_limit"], 256, "{}", env.json);
    let engine_limit = on.docker(&["inspect", "-f", "{{.HostConfig.PidsLimit}}", &env.id]);
    assert!(
        engine_limit.trim().parse::<i64>().unwrap() > 256 * 9,
        "the engine's limit must leave room for gVisor's threads: {engine_limit}"
    );
    let log = on.exec(
        &env,
        "i=0; while [ $i -lt 400 ]; do sleep 30 & i=$((i+1)); done; echo all started",
        60.0,
    );
    assert_ne!(log["stdout"], "all started\n", "{log}");
    assert!(
        log["stderr"].as_str().unwrap().contains("can't fork"),
        "{log}"
    );
    let log = on.exec(&env, "echo alive", 10.0);
    assert_eq!(log["stdout"], "alive\n", "{log}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn an_oom_that_ends_the_sandbox_is_reported_promptly() {
    let Some((on, runsc)) = gvisor() else { return };
    let env = on.env(json!({"image": crate::common::PYTHON, "runtime": runsc, "memory": "64m"}));
    let started = Instant::now();
    let out = on.call(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "hog.py", "timeout_sec": 60,
               "code_content": "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n"}),
    );
    let elapsed = started.elapsed();
    crate::common::assert_error(&out, "environment_died");
    let message = out.json["error"].as_str().unwrap();
    assert!(
        message.contains("gVisor") && message.contains("memory"),
        "{message}"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "took {elapsed:?}: {message}"
    );
}
