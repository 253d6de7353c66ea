//! Background processes: started by one call, kept by the environment's agent after it
//! returns, read by offset, signalled, waited for and listed; bounded, capped by the policy,
//! spared by sweeps, out of reach of the other runs, and gone with the environment.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{assert_only_idle, processes, Adde, Env, BUSYBOX, SCRATCH};

fn start(adde: &Adde, env: &Env, payload: Value) -> String {
    let mut payload = payload;
    payload["container_id"] = json!(env.id);
    let out = adde.ok("start_process", payload);
    assert_eq!(out["state"], "running", "{out}");
    out["process_id"].as_str().unwrap().to_string()
}

fn read(adde: &Adde, env: &Env, process: &str, stdout_offset: u64) -> Value {
    adde.ok(
        "read_process_output",
        json!({"container_id": env.id, "process_id": process, "stdout_offset": stdout_offset}),
    )
}

fn wait(adde: &Adde, env: &Env, process: &str, timeout_sec: f64) -> Value {
    adde.ok(
        "wait_process",
        json!({"container_id": env.id, "process_id": process, "timeout_sec": timeout_sec}),
    )
}

/// Reads until the process has printed `needle`.
fn read_until(adde: &Adde, env: &Env, process: &str, needle: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let out = read(adde, env, process, 0);
        if out["stdout"].as_str().unwrap().contains(needle) {
            return out;
        }
        assert!(Instant::now() < until, "never printed {needle}: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_background_process_outlives_its_call_and_is_read_by_offset_signalled_and_waited_for() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let process = start(
        &adde,
        &env,
        json!({"command": "trap 'echo bye; exit 5' TERM; i=0; while true; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 0.1; done"}),
    );
    let first = read_until(&adde, &env, &process, "line 3\n");
    assert!(first["stdout"]
        .as_str()
        .unwrap()
        .starts_with("line 0\nline 1\n"));
    assert!(first["stderr"].as_str().unwrap().starts_with("err 0\n"));
    assert_eq!(first["state"], "running");
    assert_eq!(first["exit_code"], Value::Null);
    // From the offset of the last read, only what is new.
    let offset = first["stdout_offset"].as_u64().unwrap();
    assert_eq!(first["stdout_bytes"].as_u64().unwrap(), offset);
    std::thread::sleep(Duration::from_millis(400));
    let next = read(&adde, &env, &process, offset);
    let new = next["stdout"].as_str().unwrap();
    assert!(!new.is_empty() && !new.contains("line 0\n"), "{next}");
    assert!(next["stdout_offset"].as_u64().unwrap() > offset);

    let listed = adde.ok("list_processes", json!({"container_id": env.id}));
    let ids: Vec<&Value> = listed["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["process_id"])
        .collect();
    assert_eq!(ids, [&json!(process)]);

    // Waiting past a short timeout: still running.
    let waited = wait(&adde, &env, &process, 0.2);
    assert_eq!(waited["state"], "running");

    let signalled = adde.ok(
        "signal_process",
        json!({"container_id": env.id, "process_id": process, "signal": "TERM"}),
    );
    assert_eq!(signalled["sent"], true);
    let ended = wait(&adde, &env, &process, 10.0);
    assert_eq!(ended["state"], "exited", "{ended}");
    assert_eq!(ended["exit_code"], 5, "the program's trap ran: {ended}");
    assert!(read(&adde, &env, &process, 0)["stdout"]
        .as_str()
        .unwrap()
        .ends_with("bye\n"));
    // A signal to a process that has exited is not sent.
    let again = adde.ok(
        "signal_process",
        json!({"container_id": env.id, "process_id": process}),
    );
    assert_eq!(again["sent"], false);
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn ordinary_runs_still_lose_their_background_jobs_and_sweeps_spare_the_process() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let process = start(&adde, &env, json!({"command": ["sleep", "300"]}));
    // An ordinary run's `nohup … &` is killed when its call returns.
    let log = adde.exec(
        &env,
        "bg.sh",
        "nohup sleep 301 >/dev/null 2>&1 &\necho started",
        10.0,
    );
    assert_eq!(log["stdout"], "started\n");
    // A run that kills its own supervisor makes adde sweep what no live run owns.
    let out = adde.call(
        "execute_command",
        json!({"container_id": env.id, "command": "sleep 302 & kill -9 $PPID"}),
    );
    assert_eq!(out.json["error_code"], "supervisor_died", "{out:?}");
    let left = processes(&env.id);
    assert!(left.iter().any(|p| p == "sleep 300"), "{left:?}");
    assert!(
        !left
            .iter()
            .any(|p| p.starts_with("sleep 30") && p != "sleep 300"),
        "{left:?}"
    );
    let state = wait(&adde, &env, &process, 0.0);
    assert_eq!(state["state"], "running");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn output_is_bounded_and_a_read_says_how_much_it_missed() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let process = start(
        &adde,
        &env,
        json!({"command": "head -c 5000 /dev/zero | tr '\\0' a; echo; echo done", "max_output_bytes": 1000}),
    );
    assert_eq!(wait(&adde, &env, &process, 10.0)["exit_code"], 0);
    let out = read(&adde, &env, &process, 0);
    assert_eq!(out["stdout_bytes"], 5006);
    assert_eq!(out["stdout_skipped"], 4006);
    let text = out["stdout"].as_str().unwrap();
    assert_eq!(text.len(), 1000);
    assert!(text.ends_with("aaa\ndone\n"));
    assert_eq!(out["stdout_offset"], 5006);
    // Pages of at most max_bytes, with `more` until the end.
    let page = adde.ok(
        "read_process_output",
        json!({"container_id": env.id, "process_id": process, "stdout_offset": 4006, "max_bytes": 1024}),
    );
    assert_eq!(page["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(page["more"], false);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_timeout_kills_the_process_and_everything_it_started() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let process = start(
        &adde,
        &env,
        json!({"command": "setsid sleep 200 & sleep 100", "timeout_sec": 1}),
    );
    let ended = wait(&adde, &env, &process, 20.0);
    assert_eq!(ended["state"], "exited", "{ended}");
    assert_eq!(ended["timed_out"], true);
    assert_eq!(ended["exit_code"], 124);
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn bad_requests_and_environments_without_an_agent_have_clear_errors() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let missing = adde.err(
        "start_process",
        json!({"container_id": env.id, "command": ["no-such-program"]}),
        "command_not_found",
    );
    assert!(missing["error"]
        .as_str()
        .unwrap()
        .contains("no-such-program"));
    assert!(
        adde.ok("list_processes", json!({"container_id": env.id}))["processes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let unknown = adde.err(
        "read_process_output",
        json!({"container_id": env.id, "process_id": "r1700000000000-1a2b3c4d"}),
        "process_not_found",
    );
    assert_eq!(unknown["process_id"], "r1700000000000-1a2b3c4d");
    adde.err(
        "wait_process",
        json!({"container_id": env.id, "process_id": "../../x"}),
        "invalid_argument",
    );
    adde.err(
        "signal_process",
        json!({"container_id": env.id, "process_id": "r1700000000000-1a2b3c4d", "signal": "SIGSEGV"}),
        "invalid_argument",
    );
    let image_cmd = adde.env(json!({"image": SCRATCH, "use_image_cmd": true}));
    adde.err(
        "start_process",
        json!({"container_id": image_cmd.id, "command": ["sleep", "1"]}),
        "no_agent",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_policy_caps_the_processes_of_an_environment() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[limits]\nmax_processes = 1\n").unwrap();
    let policy = policy.display().to_string();
    let vars = [("ADDE_POLICY", policy.as_str())];
    let payload = json!({"container_id": env.id, "command": ["sleep", "300"]});
    let first = adde.call_with(&vars, "start_process", payload.clone());
    assert_eq!(first.code, 0, "{first:?}");
    let second = adde.call_with(&vars, "start_process", payload.clone());
    assert_eq!(second.json["error_code"], "policy_denied", "{second:?}");
    assert_eq!(second.json["rule"], "limits.max_processes");
    // Once the first has ended, another may start.
    let id = first.json["process_id"].as_str().unwrap();
    adde.ok(
        "signal_process",
        json!({"container_id": env.id, "process_id": id, "signal": "KILL"}),
    );
    assert_eq!(wait(&adde, &env, id, 10.0)["signal"], "SIGKILL");
    let third = adde.call_with(&vars, "start_process", payload);
    assert_eq!(third.code, 0, "{third:?}");
}

/// Another run of the environment tries to forge the process's status and read or write the
/// agent's channel: it writes a status frame into every file descriptor of every process it
/// can open. It reaches only ordinary processes (its own, and the background program's own
/// pipes, whose bytes the supervisor relays as output), never PID 1 or a supervisor.
#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn other_runs_cannot_forge_or_read_a_background_process_state() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let process = start(&adde, &env, json!({"command": "echo up; sleep 300"}));
    read_until(&adde, &env, &process, "up\n");
    let attack = r#"
frame='\003\000\000\000\017{"exit_code":0}'
for fd in /proc/[0-9]*/fd/*; do
  pid=${fd#/proc/}; pid=${pid%%/*}
  [ "$pid" = "$$" ] && continue
  if printf "$frame" > "$fd" 2>/dev/null; then
    echo "wrote $pid $(tr '\0' ' ' < /proc/$pid/cmdline)"
  fi
done
cat /proc/1/fd/1 </dev/null >/dev/null 2>&1 && echo "read the agent's channel"
true
"#;
    let log = adde.exec(&env, "attack.sh", attack, 20.0);
    let stdout = log["stdout"].as_str().unwrap();
    assert!(!stdout.contains("read the agent's channel"), "{stdout}");
    // The attack did reach what it may: the background program's own pipes.
    assert!(stdout.contains("wrote "), "{stdout}");
    for line in stdout.lines() {
        assert!(
            !line.starts_with("wrote 1 ") && !line.contains("__helper"),
            "reached adde's own process: {line}"
        );
    }
    // The status was not forged: it runs until told otherwise, and then says so.
    let state = read(&adde, &env, &process, 0);
    assert_eq!(state["state"], "running", "{state}");
    // What it wrote into the program's pipes is the program's output, framed as such.
    assert!(state["stdout"]
        .as_str()
        .unwrap()
        .contains(r#"{"exit_code":0}"#));
    adde.ok(
        "signal_process",
        json!({"container_id": env.id, "process_id": process, "signal": "SIGKILL"}),
    );
    let ended = wait(&adde, &env, &process, 10.0);
    assert_eq!(ended["signal"], "SIGKILL", "{ended}");
    assert_eq!(ended["exit_code"], 137);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn processes_are_gone_with_their_environment() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let process = start(&adde, &env, json!({"command": ["sleep", "300"]}));
    adde.ok("cleanup_env", json!({"container_id": env.id}));
    adde.err(
        "read_process_output",
        json!({"container_id": env.id, "process_id": process}),
        "container_not_found",
    );
}

/// PID 1 blocks the stop signals for its signalfd, and a blocked mask survives exec: the
/// programs the agent started used to be deaf to SIGTERM, SIGINT, SIGHUP and SIGQUIT.
#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn programs_started_through_the_agent_block_no_signal() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": BUSYBOX}));
    let log = adde.exec(&env, "mask.sh", "grep SigBlk /proc/self/status", 10.0);
    assert_eq!(log["transport"], "agent");
    assert_eq!(log["stdout"], "SigBlk:\t0000000000000000\n");
}
