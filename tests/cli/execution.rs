//! execute_code_block: results, interpreters, output capture, and timeouts that kill.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{assert_only_idle, docker, Adde, BUSYBOX, PYTHON};

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn stdout_stderr_and_the_exit_code_come_back_separately() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let log = adde.exec(
        &env,
        "a.sh",
        "echo out1; echo err1 >&2; echo out2; exit 7",
        10.0,
    );
    assert_eq!(log["exit_code"], 7);
    assert_eq!(log["stdout"], "out1\nout2\n");
    assert_eq!(log["stderr"], "err1\n");
    assert_eq!(log["timed_out"], false);
    assert_eq!(log["oom_killed"], false);
    assert!(log["execution_time"].as_str().unwrap().ends_with('s'));
    assert!(log["run_id"].as_str().unwrap().starts_with('r'));
    assert_eq!(log["command"], json!(["sh", "a.sh"]));
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn python_runs_by_extension_and_its_output_is_unbuffered() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    let log = adde.exec(
        &env,
        "pkg/main.py",
        "import sys\nprint('py', sys.version_info[0])\nraise SystemExit(3)\n",
        30.0,
    );
    assert_eq!(log["stdout"], "py 3\n");
    assert_eq!(log["exit_code"], 3);
    assert_eq!(log["command"][0], "python3");
    // Output printed before a timeout is kept: Python's stdout is not block-buffered.
    let log = adde.exec(
        &env,
        "spin.py",
        "print('before the loop')\nwhile True:\n    pass\n",
        2.0,
    );
    assert_eq!(log["timed_out"], true);
    assert_eq!(log["stdout"], "before the loop\n");
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn files_without_a_known_extension_run_directly_and_shebangs_work() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let log = adde.exec(&env, "bin/tool", "#!/bin/sh\necho \"ran $0\"\n", 10.0);
    assert_eq!(log["stdout"], "ran ./bin/tool\n");
    // Files persist in the workspace between runs.
    let log = adde.exec(&env, "check.sh", "ls -l bin/tool | cut -c1-10; pwd", 10.0);
    assert_eq!(log["stdout"], "-rwxr-xr-x\n/workspace\n");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_missing_interpreter_is_a_clear_error() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let json = adde.err(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "main.py", "code_content": "print(1)"}),
        "interpreter_not_found",
    );
    let message = json["error"].as_str().unwrap();
    assert!(
        message.contains("python3") && message.contains("command"),
        "{message}"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_command_overrides_the_interpreter() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let out = adde.ok(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "words.txt", "code_content": "a b c\n",
               "command": ["wc", "-w", "words.txt"]}),
    );
    assert_eq!(out["log"]["stdout"].as_str().unwrap().trim(), "3 words.txt");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_signal_death_reports_128_plus_the_signal() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let log = adde.exec(&env, "crash.sh", "kill -SEGV $$", 10.0);
    assert_eq!(log["exit_code"], 139);
    assert_eq!(log["signal"], "SIGSEGV");
    assert_eq!(log["timed_out"], false);
}

/// Runs `code` with a 2 s timeout and checks the run was killed on time, with nothing left.
fn assert_killed_at_deadline(
    adde: &Adde,
    env: &crate::common::Env,
    code: &str,
) -> serde_json::Value {
    let started = Instant::now();
    let log = adde.exec(env, "slow.sh", code, 2.0);
    let elapsed = started.elapsed();
    assert_eq!(log["timed_out"], true, "{log}");
    assert_eq!(log["exit_code"], 124);
    assert_eq!(log["signal"], "SIGKILL");
    assert!(
        elapsed >= Duration::from_secs(2),
        "returned before the deadline: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "returned long after the deadline: {elapsed:?}"
    );
    assert_only_idle(&env.id);
    log
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_timeout_kills_an_infinite_loop() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let log = assert_killed_at_deadline(&adde, &env, "echo started; while true; do :; done");
    assert_eq!(log["stdout"], "started\n");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_timeout_kills_background_children() {
    let adde = Adde::docker();
    let env = adde.busybox();
    assert_killed_at_deadline(&adde, &env, "sleep 300 & sleep 301 & (sleep 302 &) ; wait");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_timeout_kills_setsid_children() {
    let adde = Adde::docker();
    let env = adde.busybox();
    assert_killed_at_deadline(
        &adde,
        &env,
        "setsid sleep 300 & setsid sh -c 'sleep 301 & sleep 302' & sleep 303",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_timeout_kills_loops_that_ignore_sigterm() {
    let adde = Adde::docker();
    let env = adde.busybox();
    assert_killed_at_deadline(&adde, &env, "trap '' TERM INT HUP; sh -c \"trap '' TERM; while true; do sleep 1; done\" & while true; do :; done");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn processes_left_running_by_a_finished_run_are_stopped() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let log = adde.exec(&env, "daemon.sh", "setsid sleep 300 & echo done", 10.0);
    assert_eq!(log["exit_code"], 0);
    assert_eq!(log["timed_out"], false);
    assert_eq!(log["stdout"], "done\n");
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn output_is_capped_keeping_head_and_tail() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let out = adde.ok(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "big.sh", "max_output_bytes": 1000,
               "code_content": "echo FIRST; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo LAST; echo small >&2"}),
    );
    let log = &out["log"];
    let stdout = log["stdout"].as_str().unwrap();
    assert_eq!(log["stdout_truncated"], true);
    assert_eq!(log["stdout_bytes"], 3_000_000 + 12);
    assert!(stdout.starts_with("FIRST\nxxx"), "{}", &stdout[..20]);
    assert!(
        stdout.ends_with("xxx\nLAST\n"),
        "{}",
        &stdout[stdout.len() - 20..]
    );
    assert!(stdout.contains("bytes omitted"));
    assert!(stdout.len() < 1100, "{}", stdout.len());
    assert_eq!(log["stderr"], "small\n");
    assert_eq!(log["stderr_truncated"], false);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_default_cap_is_one_mebibyte_per_stream() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let log = adde.exec(
        &env,
        "big.sh",
        "head -c 2097152 /dev/zero | tr '\\0' y",
        30.0,
    );
    assert_eq!(log["stdout_truncated"], true);
    let len = log["stdout"].as_str().unwrap().len();
    assert!((1_048_576..1_048_576 + 100).contains(&len), "{len}");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn bytes_that_are_not_utf8_are_replaced() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let log = adde.exec(&env, "bin.sh", "printf 'ok \\377\\376 end\\n'", 10.0);
    assert_eq!(log["stdout"], "ok \u{fffd}\u{fffd} end\n");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_run_killed_for_memory_says_so() {
    let adde = Adde::docker();
    // Room for adde's own helper (a 26 MB debug binary in tests) beside the hog.
    let env = adde.env(json!({"image": BUSYBOX, "memory": "64m"}));
    // tail keeps the whole newline-free stream in memory until the limit is hit. Under
    // cgroup v1 without swap the kernel first reclaims (and refaults) the running binaries'
    // pages: 16 s to the OOM kill on a quiet 2-core machine, past 30 s on a loaded one.
    let log = adde.exec(
        &env,
        "hog.sh",
        "head -c 500000000 /dev/zero | tail -c 400000000 > /dev/null",
        120.0,
    );
    assert_eq!(log["oom_killed"], true, "{log}");
    assert_ne!(log["exit_code"], 0);
    assert_eq!(log["timed_out"], false);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn large_code_goes_through_stdin_intact() {
    let adde = Adde::docker();
    let env = adde.busybox();
    // 300 KB of code: more than one argv argument may hold (128 KiB).
    let line =
        "echo 0123456789012345678901234567890123456789012345678901234567890123456789 > /dev/null\n";
    let code = format!("{}echo end\n", line.repeat(300_000 / line.len()));
    let payload = json!({"container_id": env.id, "filename": "long.sh", "code_content": code});
    let out = adde.call_stdin("execute_code_block", &payload.to_string());
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json["log"]["stdout"], "end\n");
    let log = adde.exec(&env, "size.sh", "wc -c < long.sh", 10.0);
    assert_eq!(
        log["stdout"].as_str().unwrap().trim(),
        code.len().to_string()
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn concurrent_runs_in_one_environment_do_not_interfere() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let mut cmd = adde.command();
            let code = if i == 0 {
                "sleep 300 & while true; do :; done".to_string()
            } else {
                format!("for n in 1 2 3; do echo run{i}-$n; sleep 0.2; done; echo err{i} >&2; exit {i}")
            };
            cmd.arg("execute_code_block").arg(
                json!({"container_id": env.id, "filename": format!("c{i}.sh"), "code_content": code, "timeout_sec": 2})
                    .to_string(),
            );
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for (i, child) in runs.into_iter().enumerate() {
        let out = crate::common::parse_output(child.wait_with_output().unwrap());
        let log = &out.json["log"];
        if i == 0 {
            assert_eq!(log["timed_out"], true, "{out:?}");
        } else {
            assert_eq!(log["timed_out"], false, "{out:?}");
            assert_eq!(log["exit_code"], i as i64);
            assert_eq!(log["stdout"], format!("run{i}-1\nrun{i}-2\nrun{i}-3\n"));
            assert_eq!(log["stderr"], format!("err{i}\n"));
        }
    }
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_stopped_environment_is_reported_not_running() {
    let adde = Adde::docker();
    let env = adde.busybox();
    docker(&["stop", "-t", "1", &env.id]);
    let json = adde.err(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "a.sh", "code_content": "true"}),
        "container_not_running",
    );
    assert!(json["error"].as_str().unwrap().contains("exited"), "{json}");
    adde.err(
        "execute_code_block",
        json!({"container_id": "adde-no-such-env", "filename": "a.sh", "code_content": "true"}),
        "container_not_found",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn interrupting_adde_kills_the_run() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let child = adde
        .command()
        .arg("execute_code_block")
        .arg(json!({"container_id": env.id, "filename": "long.sh", "code_content": "setsid sleep 300 & sleep 301", "timeout_sec": 600}).to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the run's processes are there, then Ctrl-C adde.
    for _ in 0..100 {
        if crate::common::processes(&env.id)
            .iter()
            .any(|p| p.contains("sleep 301"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = crate::common::parse_output(child.wait_with_output().unwrap());
    crate::common::assert_error(&out, "interrupted");
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn stream_true_prints_output_as_it_arrives_then_the_result_last() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let out = adde.call(
        "execute_command",
        json!({"container_id": env.id, "command": "echo one; sleep 1; echo two >&2", "stream": true}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, events) = lines.split_last().unwrap();
    assert_eq!(
        events,
        &[
            json!({"event": "stdout", "data": "one\n"}),
            json!({"event": "stderr", "data": "two\n"}),
        ]
    );
    assert_eq!(last["log"]["stdout"], "one\n");
    assert_eq!(last["log"]["stderr"], "two\n");
    // Without it, one JSON object as always; a stream that is not a boolean is refused.
    assert_eq!(adde.exec(&env, "a.sh", "echo x", 10.0)["stdout"], "x\n");
    adde.err(
        "execute_command",
        json!({"container_id": env.id, "command": "true", "stream": "yes"}),
        "invalid_payload",
    );
}
