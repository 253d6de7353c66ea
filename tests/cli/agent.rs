//! The fast path: an environment's PID 1 is adde's resident agent, reached by attaching to the
//! container. Every call must get exactly its own result, whatever else is attached, and a
//! dead or wedged agent must cost a bounded wait, never a hang.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{assert_only_idle, docker, processes, Adde, BUSYBOX, PYTHON, SCRATCH};

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn calls_go_through_the_agent_and_the_log_says_so() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let log = adde.exec(&env, "a.sh", "echo 42", 10.0);
    assert_eq!(log["stdout"], "42\n");
    assert_eq!(log["transport"], "agent");
    let out = adde.ok(
        "execute_command",
        json!({"container_id": env.id, "command": "cat", "stdin": "fed"}),
    );
    assert_eq!(out["log"]["stdout"], "fed");
    assert_eq!(out["log"]["transport"], "agent");
    let stored = adde.ok("get_container_logs", json!({"container_id": env.id}));
    assert_eq!(stored["log"]["transport"], "agent");
    // The agent's replies are not logged: the container's own output is empty, not an error.
    let own = adde.ok(
        "get_container_logs",
        json!({"container_id": env.id, "container_output": true}),
    );
    assert_eq!(own["container_output"], json!({"stdout": "", "stderr": ""}));

    // ADDE_AGENT=off takes the Engine-API exec path, with the same result.
    let out = adde
        .command()
        .env("ADDE_AGENT", "off")
        .arg("execute_code_block")
        .arg(
            json!({"container_id": env.id, "filename": "a.sh", "code_content": "echo 42"})
                .to_string(),
        )
        .output()
        .unwrap();
    let out: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out["log"]["stdout"], "42\n");
    assert_eq!(out["log"]["transport"], "exec");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn fifty_concurrent_callers_each_get_exactly_their_own_result() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": BUSYBOX, "cpus": 1, "pids_limit": 1024}));
    let results: Vec<(usize, serde_json::Value)> = thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (adde, env) = (&adde, &env);
                scope.spawn(move || {
                    // Outputs of different sizes, and stdin, so frames of many callers interleave.
                    let code = format!(
                        "head -c {} /dev/zero | tr '\\0' {}; echo; cat; echo caller-{i} >&2",
                        100 * i + 1,
                        (b'a' + (i % 26) as u8) as char
                    );
                    let out = adde.ok(
                        "execute_command",
                        json!({"container_id": env.id, "command": code, "stdin": format!("in-{i}"), "timeout_sec": 60}),
                    );
                    (i, out["log"].clone())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, log) in results {
        let letter = (b'a' + (i % 26) as u8) as char;
        let expected = format!("{}\nin-{i}", letter.to_string().repeat(100 * i + 1));
        assert_eq!(log["stdout"], expected, "caller {i}");
        assert_eq!(log["stderr"], format!("caller-{i}\n"), "caller {i}");
        assert_eq!(log["exit_code"], 0, "caller {i}");
        assert_eq!(log["transport"], "agent", "caller {i}");
    }
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn output_that_looks_like_the_agent_s_frames_is_just_output() {
    let adde = Adde::docker();
    let env = adde.busybox();
    // The agent's magic bytes, a frame header for every kind, and a supervisor status frame,
    // printed by the program itself.
    let code = "printf '\\255\\336\\023\\0\\0\\0\\0\\0\\0\\0\\1\\0\\0\\0\\0'; \
                printf '\\003\\0\\0\\0\\002{}'; printf '\\255\\336\\021zzzzzzzz\\0\\0\\0\\2hi'; exit 3";
    let log = adde.exec(&env, "forge.sh", code, 10.0);
    assert_eq!(log["exit_code"], 3);
    assert_eq!(log["stdout_bytes"], 15 + 7 + 17);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_wedged_agent_costs_a_bounded_wait_and_the_call_still_runs() {
    let adde = Adde::docker();
    let env = adde.busybox();
    adde.exec(&env, "warm.sh", "true", 10.0);
    // Stop PID 1 from outside (code inside cannot): the agent answers nothing.
    docker(&["kill", "--signal", "STOP", &env.id]);
    let started = Instant::now();
    let log = adde.exec(&env, "a.sh", "echo still", 10.0);
    let waited = started.elapsed();
    docker(&["kill", "--signal", "CONT", &env.id]);
    assert_eq!(log["stdout"], "still\n");
    assert_eq!(log["transport"], "exec");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // Once it answers again, calls take the fast path again.
    let log = adde.exec(&env, "a.sh", "echo back", 10.0);
    assert_eq!(log["transport"], "agent");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn environments_running_the_image_s_command_use_the_exec_path() {
    let adde = Adde::docker();
    // The scratch image's command idles; it has no shell, so the run names busybox itself.
    let env = adde.env(json!({"image": SCRATCH, "use_image_cmd": true}));
    let out = adde.ok(
        "execute_command",
        json!({"container_id": env.id, "command": ["/busybox", "echo", "42"]}),
    );
    assert_eq!(out["log"]["stdout"], "42\n");
    assert_eq!(out["log"]["transport"], "exec");
}

/// A start bigger than one frame (a command line of a few KiB) used to be parsed frame by
/// frame by the agent: "bad start: EOF while parsing a string".
#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_command_line_longer_than_a_frame_runs_through_the_agent() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let word = "x".repeat(12_000);
    let out = adde.ok(
        "execute_command",
        json!({"container_id": env.id, "command": format!("printf %s {word} | wc -c")}),
    );
    assert_eq!(out["log"]["stdout"].as_str().unwrap().trim(), "12000");
    assert_eq!(out["log"]["transport"], "agent");
    // A background process's request spans frames the same way.
    let started = adde.ok(
        "start_process",
        json!({"container_id": env.id, "command": format!("printf %s {word} | wc -c")}),
    );
    let process = started["process_id"].as_str().unwrap();
    let ended = adde.ok(
        "wait_process",
        json!({"container_id": env.id, "process_id": process, "timeout_sec": 10}),
    );
    assert_eq!(ended["exit_code"], 0, "{ended}");
    let out = adde.ok(
        "read_process_output",
        json!({"container_id": env.id, "process_id": process}),
    );
    assert_eq!(out["stdout"].as_str().unwrap().trim(), "12000");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_program_starts_as_its_own_session_leader_with_a_clean_signal_state() {
    // The supervisor starts programs with posix_spawn (no fork of itself) and the agent
    // starts supervisors the same way: what the program gets must not change with that.
    let adde = Adde::docker();
    let env = adde.busybox();
    let probe = r#"read -r pid comm state ppid pgrp session rest < /proc/$$/stat
echo "leader $([ "$pid" = "$pgrp" ] && [ "$pid" = "$session" ] && echo yes || echo no)"
grep SigBlk /proc/$$/status
ignored=$(grep SigIgn /proc/$$/status | cut -f2)
echo "sigpipe ignored $(( 0x$ignored >> 12 & 1 ))"
env | grep -c '^ADDE_' || true
pwd"#;
    for transport in ["agent", "exec"] {
        let agent = if transport == "agent" { "on" } else { "off" };
        let out = adde
            .command()
            .env("ADDE_AGENT", agent)
            .arg("execute_command")
            .arg(json!({"container_id": env.id, "command": probe, "workdir": "/bin"}).to_string())
            .output()
            .unwrap();
        let out: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out["log"]["transport"], transport);
        assert_eq!(
            out["log"]["stdout"],
            "leader yes\nSigBlk:\t0000000000000000\nsigpipe ignored 0\n0\n/bin\n",
            "{transport}: {out}"
        );
    }
}

/// The container PID of the supervisor of a run, from the run's own `echo $PPID`.
fn supervisor_pid(log: &serde_json::Value) -> String {
    log["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_kept_supervisor_starts_each_run_afresh() {
    // A run without standard input goes to a supervisor the agent kept from an earlier run
    // (no helper start per run): nothing of one run may reach the next, its deadline least.
    let adde = Adde::docker();
    let env = adde.busybox();
    let run = |command: &str, timeout: f64| adde.run_command(&env, command, timeout);
    let first = run(
        "echo $PPID; sleep 300 & setsid sleep 301 & cd /tmp; export LEAK=1; pwd",
        2.0,
    );
    assert_eq!(first["exit_code"], 0, "{first}");
    let supervisor = supervisor_pid(&first);
    // The second outlives the first one's deadline (2 s after it started).
    let second = run(
        "echo $PPID; pwd; echo ${LEAK:-none}; sleep 3; echo done",
        20.0,
    );
    assert_eq!(
        supervisor_pid(&second),
        supervisor,
        "the supervisor was kept"
    );
    assert_eq!(
        (
            &second["exit_code"],
            &second["timed_out"],
            &second["stdout"]
        ),
        (
            &json!(0),
            &json!(false),
            &json!(format!("{supervisor}\n/workspace\nnone\ndone\n"))
        ),
        "{second}"
    );
    let left = processes(&env.id);
    assert!(!left.iter().any(|p| p.contains("sleep 30")), "{left:?}");
    assert_only_idle(&env.id);

    // A run with standard input has it on its supervisor's stdin, where a kept one reads
    // the next run's spec: it gets a supervisor of its own, which ends with it.
    let fed = adde.ok(
        "execute_command",
        json!({"container_id": env.id, "command": "echo $PPID; cat", "stdin": "x"}),
    )["log"]
        .clone();
    assert_eq!(fed["stdout"], format!("{}\nx", supervisor_pid(&fed)));
    assert_ne!(supervisor_pid(&fed), supervisor);
    assert_eq!(supervisor_pid(&run("echo $PPID", 10.0)), supervisor);
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_kill_reaches_the_run_a_kept_supervisor_names_and_no_other() {
    // A kill finds a kept supervisor by the run its command line names now. The agent's
    // list of which helper runs what may be older than that (a kill it started just before
    // the run ended): told so, the kill must still spare the next run.
    let adde = Adde::docker();
    let env = adde.busybox();
    let first = adde.run_command(&env, "echo $PPID", 30.0);
    let (supervisor, ended) = (supervisor_pid(&first), first["run_id"].clone());
    thread::scope(|scope| {
        let next =
            scope.spawn(|| adde.run_command(&env, "echo $PPID; sleep 3; echo survived", 30.0));
        let named = wait_for_named_run(&env.id);
        let kill = |run: &str, list: &str| {
            docker(&[
                "exec",
                "-e",
                &format!("ADDE_AGENT_CHILDREN={list}"),
                &env.id,
                "/.adde/adde",
                "__helper",
                "kill",
                run,
            ])
        };
        kill(
            ended.as_str().unwrap(),
            &format!("{supervisor}:{}", ended.as_str().unwrap()),
        );
        let next = next.join().unwrap();
        assert_eq!(next["run_id"], json!(named));
        assert_eq!(supervisor_pid(&next), supervisor, "{next}");
        assert_eq!(
            next["stdout"],
            format!("{supervisor}\nsurvived\n"),
            "{next}"
        );

        // The run it names is killed.
        let long = scope.spawn(|| adde.run_command(&env, "sleep 300", 600.0));
        let named = wait_for_named_run(&env.id);
        kill(&named, "");
        let long = long.join().unwrap();
        assert_eq!(
            (&long["run_id"], &long["signal"]),
            (&json!(named), &json!("SIGKILL")),
            "{long}"
        );
    });
    assert_only_idle(&env.id);
}

/// The run a kept supervisor of the environment names in its command line, once one does.
fn wait_for_named_run(id: &str) -> String {
    for _ in 0..100 {
        let named = processes(id).into_iter().find_map(|p| {
            let run = p.split("__helper runs \"run_id\":\"").nth(1)?;
            Some(run.split('"').next()?.to_string())
        });
        if let Some(run) = named {
            return run;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("no supervisor names a run: {:?}", processes(id));
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_run_that_changes_what_its_supervisor_passes_on_gets_it_replaced() {
    // A run's code is the same user as its supervisor, and the kernel lets it lower the
    // supervisor's limits and priority from outside; the next program would inherit them.
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    let run = |command: &str| adde.run_command(&env, command, 30.0);
    let probe = "echo $PPID; ulimit -n; cut -d' ' -f19 /proc/$$/stat";
    let before = run(probe);
    let supervisor = supervisor_pid(&before);
    assert_eq!(
        supervisor_pid(&run(probe)),
        supervisor,
        "the supervisor was kept"
    );
    for tamper in [
        "python3 -c \"import resource; resource.prlimit($PPID, resource.RLIMIT_NOFILE, (64, 64))\"",
        "renice -n 7 -p $PPID >/dev/null",
    ] {
        let tampered = run(&format!("echo $PPID; {tamper}"));
        assert_eq!(tampered["exit_code"], 0, "{tampered}");
        let after = run(probe);
        assert_ne!(
            supervisor_pid(&after),
            supervisor_pid(&tampered),
            "{tamper}"
        );
        let unchanged = |log: &serde_json::Value| {
            let text = log["stdout"].as_str().unwrap().to_string();
            text.lines().skip(1).map(String::from).collect::<Vec<_>>()
        };
        assert_eq!(unchanged(&after), unchanged(&before), "{tamper}: {after}");
    }
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_tight_pids_limit_keeps_no_supervisor() {
    // A kept supervisor is a process and two threads of the agent, which the pids limit
    // counts: one is kept per 64 tasks the environment may have.
    let adde = Adde::docker();
    let env = adde.env(json!({"image": BUSYBOX, "pids_limit": 63}));
    let ppid = || supervisor_pid(&adde.run_command(&env, "echo $PPID", 30.0));
    assert_ne!(ppid(), ppid());
    // The last one ends once its stdin closes.
    for _ in 0..50 {
        if processes(&env.id).len() == 1 {
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("a supervisor was kept: {:?}", processes(&env.id));
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn code_that_lowers_pid_1_s_limits_gets_the_agent_refused_not_quietly_passed_on() {
    // PID 1 starts every supervisor, and the kernel lets a run's code (the same user) lower
    // its limits from outside: later runs would inherit them.
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    let tamper = adde.ok(
        "execute_command",
        json!({"container_id": env.id, "command": "python3 -c 'import resource; resource.prlimit(1, resource.RLIMIT_NOFILE, (64, 64))'"}),
    );
    assert_eq!(tamper["log"]["exit_code"], 0, "{tamper}");
    let after = adde.call(
        "execute_command",
        json!({"container_id": env.id, "command": "ulimit -n"}),
    );
    crate::common::assert_error(&after, "environment_altered");
    let message = after.json["error"].as_str().unwrap();
    assert!(
        message.starts_with("code that ran in this environment")
            && message.contains("resource limits")
            && message.ends_with("recreate it"),
        "{message}"
    );
}
