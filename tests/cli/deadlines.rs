//! Deadlines hold whatever the I/O does: input nobody reads, a paused environment, FIFOs, and
//! adde itself being told to stop.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{assert_error, assert_only_idle, docker, parse_output, Adde, BUSYBOX};
use crate::integrity::{call_within, finish_within, wait_for_process};

const MIB: usize = 1 << 20;

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn input_the_program_does_not_read_does_not_hold_up_its_deadline() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let stdin = "x".repeat(MIB);
    let limit = Duration::from_secs(20);
    // `yes` never reads its input and writes without end.
    let out = call_within(
        &adde,
        "execute_command",
        json!({"container_id": env.id, "command": "yes", "stdin": stdin, "timeout_sec": 2}),
        limit,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["log"]["timed_out"], true);
    // Leaving the input unread is no error, nor is reading only part of it.
    let out = call_within(
        &adde,
        "execute_command",
        json!({"container_id": env.id, "command": "sleep 100", "stdin": stdin, "timeout_sec": 2}),
        limit,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["log"]["timed_out"], true);
    let out = call_within(
        &adde,
        "execute_command",
        json!({"container_id": env.id, "command": "head -c 5", "stdin": stdin, "timeout_sec": 10}),
        limit,
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["log"]["stdout"], "xxxxx");
    assert_eq!(out.json["log"]["exit_code"], 0);
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_paused_environment_is_reported_shortly_after_the_deadline() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let started = Instant::now();
    let run = adde
        .command()
        .arg("execute_code_block")
        .arg(
            json!({"container_id": env.id, "filename": "long.sh", "code_content": "sleep 60",
                    "timeout_sec": 3})
            .to_string(),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_process(&env.id, "sleep 60");
    docker(&["pause", &env.id]);
    let out = finish_within(run, Duration::from_secs(30));
    let elapsed = started.elapsed();
    docker(&["unpause", &env.id]);
    assert_error(&out, "environment_paused");
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    let last = adde.ok("get_container_logs", json!({"container_id": env.id}));
    assert_eq!(last["log"]["error"]["error_code"], "environment_paused");
    // Unpaused, the supervisor finds its deadline passed and stops the run.
    for _ in 0..50 {
        if crate::common::is_only_idle(&env.id) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn fifos_are_refused_not_waited_on() {
    let adde = Adde::docker();
    // /tmp is a tmpfs here, which adde reaches through its helper.
    let env = adde.env(json!({"image": BUSYBOX, "read_only_rootfs": true}));
    let log = adde.exec(&env, "fifos.sh", "mkfifo /tmp/f /workspace/w.sh", 10.0);
    assert_eq!(log["exit_code"], 0, "{log}");
    let limit = Duration::from_secs(20);
    for path in ["/tmp/f", "/workspace/w.sh"] {
        let out = call_within(
            &adde,
            "read_file",
            json!({"container_id": env.id, "path": path}),
            limit,
        );
        assert_error(&out, "not_regular_file");
    }
    let out = call_within(
        &adde,
        "write_file",
        json!({"container_id": env.id, "path": "/tmp/f", "content": "x"}),
        limit,
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.json["error"].as_str().unwrap().contains("FIFO"),
        "{out:?}"
    );
    // A code file that is a FIFO.
    let out = call_within(
        &adde,
        "execute_code_block",
        json!({"container_id": env.id, "filename": "w.sh", "code_content": "echo hi"}),
        limit,
    );
    assert_error(&out, "helper_failed");
    assert!(
        out.json["error"].as_str().unwrap().contains("FIFO"),
        "{out:?}"
    );
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn adde_told_to_stop_stops_the_run_and_says_so() {
    let adde = Adde::docker();
    let env = adde.busybox();
    for (signal, marker) in [(libc::SIGTERM, "sleep 301"), (libc::SIGHUP, "sleep 302")] {
        let child = adde
            .command()
            .arg("execute_code_block")
            .arg(
                json!({"container_id": env.id, "filename": "long.sh", "timeout_sec": 600,
                        "code_content": format!("setsid sleep 300 & {marker}")})
                .to_string(),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_process(&env.id, marker);
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = parse_output(child.wait_with_output().unwrap());
        assert_error(&out, "interrupted");
        assert_only_idle(&env.id);
    }
}
