//! Attacks on adde's own processes from the code it runs: forged results, escaping the
//! deadline, stopping the environment. Each test is an attack that worked once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{docker, inspect, processes, Adde, PYTHON};

/// What a forged run claims on stdout.
const FORGED_STDOUT: &str = "ALL TESTS PASSED\n";

/// A `printf` format that writes what a supervisor writes for a run that passed: a stdout
/// frame, then a status frame with exit code 0 (see src/protocol.rs).
fn forged_frames() -> String {
    let status = json!({"exit_code": 0, "signal": null, "timed_out": false, "oom_killed": false,
                        "duration_ms": 1, "command": ["sh"], "error": null})
    .to_string();
    let mut raw = Vec::new();
    for (tag, payload) in [(1u8, FORGED_STDOUT.as_bytes()), (3, status.as_bytes())] {
        raw.push(tag);
        raw.extend((payload.len() as u32).to_be_bytes());
        raw.extend(payload);
    }
    raw.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// A shell function `forge` that writes the forged frames into the stdout of every
/// supervisor but its own caller's.
fn forge_function() -> String {
    format!(
        r#"forge() {{
  for d in /proc/[0-9]*; do
    [ "$d" = "/proc/$PPID" ] && continue
    case "$(tr '\000' ' ' < $d/cmdline 2>/dev/null)" in
      *"__helper run"*) printf '{}' 2>/dev/null > $d/fd/1 ;;
    esac
  done
}}
"#,
        forged_frames()
    )
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_program_cannot_forge_its_result_through_its_supervisors_stdout() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let code = format!("printf '{}' > /proc/$PPID/fd/1\nexit 1\n", forged_frames());
    let log = adde.exec(&env, "forge.sh", &code, 10.0);
    assert_eq!(log["exit_code"], 1, "{log}");
    assert_eq!(log["stdout"], "", "{log}");
    let history = adde.ok("get_container_logs", json!({"container_id": env.id}));
    assert_eq!(history["log"]["exit_code"], 1);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn adde_s_processes_are_out_of_reach_of_the_code() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    // The supervisor (the parent) and the environment's main process (PID 1): their fds,
    // environment and memory, and ptrace (PTRACE_SEIZE does not stop the target).
    let code = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for pid in (os.getppid(), 1):
    for name, mode in (("fd/1", os.O_WRONLY), ("environ", os.O_RDONLY), ("mem", os.O_RDONLY)):
        try:
            os.close(os.open(f"/proc/{pid}/{name}", mode | os.O_NONBLOCK))
            print("opened", pid, name)
        except OSError:
            pass
    if libc.ptrace(0x4206, pid, 0, 0) == 0:
        print("traced", pid)
print("done")
"#;
    let log = adde.exec(&env, "peek.py", code, 30.0);
    assert_eq!(log["stdout"], "done\n", "{log}");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_concurrent_run_cannot_forge_another_runs_result() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let spy = format!(
        "{}end=$(( $(date +%s) + 4 ))\nwhile [ $(date +%s) -lt $end ]; do forge; sleep 0.05; done\n",
        forge_function()
    );
    let spying = adde
        .command()
        .arg("execute_code_block")
        .arg(json!({"container_id": env.id, "filename": "spy.sh", "code_content": spy, "timeout_sec": 20}).to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_process(&env.id, "spy.sh");
    let log = adde.exec(&env, "victim.sh", "sleep 1; exit 1", 10.0);
    assert_eq!(log["exit_code"], 1, "{log}");
    assert_eq!(log["stdout"], "", "{log}");
    let spy = crate::common::parse_output(spying.wait_with_output().unwrap());
    assert_eq!(spy.json["log"]["exit_code"], 0, "{spy:?}");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn an_implant_left_by_one_run_cannot_forge_a_later_run() {
    let adde = Adde::docker();
    let env = adde.busybox();
    // The implant escapes its run by killing the run's supervisor.
    let implant = format!(
        "{}( while :; do forge; sleep 0.05; done ) </dev/null >/dev/null 2>&1 &\nsleep 0.3\nkill -9 $PPID\n",
        forge_function()
    );
    let out = adde.call(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "implant.sh", "code_content": implant}),
    );
    assert_eq!(out.code, 1, "{out:?}");
    let log = adde.exec(&env, "victim.sh", "sleep 1; exit 1", 10.0);
    assert_eq!(log["exit_code"], 1, "{log}");
    assert_eq!(log["stdout"], "", "{log}");
}

/// Waits until a process whose command line contains `needle` runs in the container.
pub fn wait_for_process(id: &str, needle: &str) {
    for _ in 0..100 {
        if processes(id).iter().any(|p| p.contains(needle)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no process {needle:?} in {id}: {:?}", processes(id));
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn signals_from_inside_do_not_stop_the_environment() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let pid1 = adde.exec(&env, "pid1.sh", "tr '\\0' ' ' < /proc/1/cmdline", 10.0);
    assert_eq!(pid1["stdout"], "/.adde/adde __helper idle ", "{pid1}");
    for attack in [
        "kill -TERM 1",
        "kill -KILL 1",
        "kill -INT 1; kill -HUP 1",
        "kill -9 -1",
    ] {
        // The run itself may fail (`kill -9 -1` kills its supervisor too): what matters is
        // that the environment is still there, and works.
        adde.call(
            "execute_code_block",
            json!({"container_id": env.id, "filename": "stop.sh", "code_content": attack}),
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(inspect(&env.id)["State"]["Running"], true, "{attack}");
        let log = adde.exec(&env, "alive.sh", "echo alive", 10.0);
        assert_eq!(log["stdout"], "alive\n", "after {attack}: {log}");
    }
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_engine_still_stops_and_kills_the_environment_at_once() {
    let adde = Adde::docker();
    let env = adde.busybox();
    // `docker stop` waits 10 s before it sends SIGKILL: PID 1 must exit on the SIGTERM.
    let started = Instant::now();
    docker(&["stop", &env.id]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "docker stop took {:?}",
        started.elapsed()
    );
    assert_eq!(inspect(&env.id)["State"]["Running"], false);
    // Started again (what a session does), it works, and `docker kill` stops it too.
    docker(&["start", &env.id]);
    let log = adde.exec(&env, "again.sh", "echo again", 10.0);
    assert_eq!(log["stdout"], "again\n");
    docker(&["kill", &env.id]);
    assert_eq!(inspect(&env.id)["State"]["Running"], false);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn orphans_are_reaped() {
    let adde = Adde::docker();
    let env = adde.busybox();
    // A process whose parent exits from an Engine-API exec is re-parented to PID 1.
    docker(&["exec", &env.id, "sh", "-c", "sleep 0.2 & exit 0"]);
    std::thread::sleep(Duration::from_millis(1000));
    let states = docker(&["top", &env.id, "-eo", "pid,stat,args"]);
    assert!(
        !states.lines().skip(1).any(|l| l
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.starts_with('Z'))),
        "zombies: {states}"
    );
    crate::common::assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_run_that_kills_its_supervisor_leaves_nothing_behind_and_is_recorded() {
    let adde = Adde::docker();
    let env = adde.busybox();
    // Another run in the same environment, which must not be harmed.
    let bystander = adde
        .command()
        .arg("execute_code_block")
        .arg(
            json!({"container_id": env.id, "filename": "bystander.sh",
                    "code_content": "sleep 3; echo still here", "timeout_sec": 20})
            .to_string(),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_process(&env.id, "bystander.sh");
    let escape = "echo before\nsh -c \"exec sleep 100000\" &\nsleep 0.2\nkill -9 $PPID\n";
    let out = adde.call(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "escape.sh", "code_content": escape}),
    );
    crate::common::assert_error(&out, "supervisor_died");
    let message = out.json["error"].as_str().unwrap();
    assert!(message.contains("stopped every process"), "{message}");
    let run_id = out.json["run_id"].as_str().expect("run_id").to_string();
    assert!(
        !processes(&env.id)
            .iter()
            .any(|p| p.contains("sleep 100000")),
        "{:?}",
        processes(&env.id)
    );

    let recorded = adde.ok(
        "get_container_logs",
        json!({"container_id": env.id, "run_id": run_id}),
    );
    assert_eq!(recorded["log"]["error"]["error_code"], "supervisor_died");
    assert_eq!(recorded["log"]["stdout"], "before\n");

    let bystander = crate::common::parse_output(bystander.wait_with_output().unwrap());
    assert_eq!(
        bystander.json["log"]["stdout"], "still here\n",
        "{bystander:?}"
    );
    let log = adde.exec(&env, "next.sh", "echo next", 10.0);
    assert_eq!(log["stdout"], "next\n");
    crate::common::assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_run_that_stops_its_supervisor_ends_shortly_after_its_deadline() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let started = Instant::now();
    let out = call_within(
        &adde,
        "execute_code_block",
        json!({"container_id": env.id, "filename": "freeze.sh", "timeout_sec": 2,
               "code_content": "kill -STOP $PPID\nsleep 100000\n"}),
        Duration::from_secs(30),
    );
    crate::common::assert_error(&out, "supervisor_died");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    crate::common::assert_only_idle(&env.id);
    let log = adde.exec(&env, "next.sh", "echo next", 10.0);
    assert_eq!(log["stdout"], "next\n");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn an_environment_killed_by_the_oom_killer_says_so_and_how_to_recover() {
    let adde = Adde::docker();
    let session = format!("adde-test-oom-{}", std::process::id());
    let env =
        adde.env(json!({"image": crate::common::BUSYBOX, "memory": "64m", "session": session}));
    // Code may raise the OOM score of adde's own processes, then use up the memory.
    let hog = "echo 1000 > /proc/1/oom_score_adj\nhead -c 500000000 /dev/zero | tail -c 400000000 > /dev/null\n";
    let out = adde.call(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "hog.sh", "code_content": hog, "timeout_sec": 60}),
    );
    crate::common::assert_error(&out, "environment_died");
    assert!(
        out.json["error"].as_str().unwrap().contains("OOM killer"),
        "{out:?}"
    );
    let last = adde.ok("get_container_logs", json!({"container_id": env.id}));
    assert_eq!(last["log"]["error"]["error_code"], "environment_died");

    // The next call says what happened and how to recover; the session's way works.
    let out = adde.call(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "a.sh", "code_content": "true"}),
    );
    crate::common::assert_error(&out, "container_not_running");
    let message = out.json["error"].as_str().unwrap();
    assert!(
        message.contains("OOM killer") && message.contains(&format!("session {session:?} again")),
        "{message}"
    );
    let again = adde.ok(
        "create_runtime_env",
        json!({"image": crate::common::BUSYBOX, "memory": "64m", "session": session}),
    );
    assert_eq!(again["session_action"], "restarted");
    let log = adde.exec(&env, "next.sh", "echo back", 10.0);
    assert_eq!(log["stdout"], "back\n");
}

/// Calls adde (the payload on stdin: an argument cannot hold more than 128 KiB) and fails,
/// rather than hangs, when it takes longer than `limit`.
pub fn call_within(
    adde: &Adde,
    tool: &str,
    payload: serde_json::Value,
    limit: Duration,
) -> crate::common::Out {
    use std::io::Write;
    let mut child = adde
        .command()
        .arg(tool)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run adde");
    let mut stdin = child.stdin.take().unwrap();
    let text = payload.to_string();
    std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    finish_within(child, limit)
}

/// Waits for an adde process, and fails, rather than hangs, when it takes longer than `limit`.
pub fn finish_within(child: std::process::Child, limit: Duration) -> crate::common::Out {
    let pid = child.id() as i32;
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match finished.recv_timeout(limit) {
        Ok(output) => crate::common::parse_output(output.expect("adde output")),
        Err(_) => {
            // SAFETY: killing the adde process this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("adde took over {limit:?}");
        }
    }
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn under_the_images_own_command_what_a_dead_supervisor_left_goes_and_the_command_stays() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": crate::common::SCRATCH, "use_image_cmd": true}));
    assert_eq!(env.json["security"]["init"], true, "Docker's init stays");
    wait_for_process(&env.id, "sleep 3600");
    let escape = "/busybox sleep 100000 & /busybox sleep 0.2; /busybox kill -9 $PPID";
    let out = adde.call(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "x", "code_content": "",
               "command": ["/busybox", "sh", "-c", escape]}),
    );
    crate::common::assert_error(&out, "supervisor_died");
    let procs = processes(&env.id);
    assert!(
        procs.iter().any(|p| p.contains("sleep 3600")),
        "the image's command was stopped: {procs:?}"
    );
    assert!(
        !procs.iter().any(|p| p.contains("sleep 100000")),
        "{procs:?}"
    );
}
