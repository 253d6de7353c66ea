//! Warm Python runs (the default; `ADDE_WARM_PYTHON=off` turns them off; helper/warm.rs) are
//! indistinguishable from `python3 file.py` for the program: every case runs cold and warm in
//! the same environment and must print the same stdout and stderr and end the same way.

use serde_json::{json, Value};

use crate::common::{is_adde_at_rest, process_table, processes, Adde, Env, PYTHON};

/// Warm runs are the default: what turns them off for a call.
fn warm_vars(warm: bool) -> &'static [(&'static str, &'static str)] {
    if warm {
        &[]
    } else {
        &[("ADDE_WARM_PYTHON", "off")]
    }
}

fn run(adde: &Adde, env: &Env, warm: bool, filename: &str, code: &str, timeout: f64) -> Value {
    let out = adde.call_with(
        warm_vars(warm),
        "execute_code_block",
        json!({"container_id": env.id, "filename": filename, "code_content": code,
                "timeout_sec": timeout}),
    );
    assert_eq!(out.code, 0, "{out:?}");
    out.json["log"].clone()
}

/// Runs `code` cold, then warm, and compares what the program did.
fn same_both_ways(adde: &Adde, env: &Env, filename: &str, code: &str, timeout: f64) -> Value {
    let cold = run(adde, env, false, filename, code, timeout);
    let warm = run(adde, env, true, filename, code, timeout);
    assert_eq!(cold.get("warm"), None, "{cold}");
    assert_eq!(warm["warm"], true, "the run was not warm: {warm}");
    for field in [
        "stdout",
        "stderr",
        "exit_code",
        "signal",
        "timed_out",
        "oom_killed",
    ] {
        assert_eq!(
            cold[field], warm[field],
            "{field} differs for {filename}:\n{code}\ncold: {cold}\nwarm: {warm}"
        );
    }
    warm
}

const IDENTITY: &str = r#"
import sys, os, __main__, builtins
print(sys.argv, __name__, __file__, sys.path[0], os.getcwd())
print(sorted(vars(__main__)), __doc__, __package__, __spec__, __cached__)
print(type(__loader__).__name__, __loader__.name, __loader__.path)
print(__builtins__ is builtins, getattr(sys, "orig_argv", None), sys.executable)
print(sys.flags)
print(sorted(sys.modules))
print(sorted(os.environ.items()))
print(sys._getframe().f_code.co_filename)
"#;

const DESCRIPTORS: &str = r#"
import os, stat, sys
print(repr(sys.stdin.read()), os.isatty(0), sorted(os.listdir("/proc/self/fd")))
for fd in (0, 1, 2):
    mode = os.fstat(fd).st_mode
    print(fd, stat.S_ISCHR(mode), stat.S_ISFIFO(mode), os.get_blocking(fd))
print(os.getsid(0) == os.getpid(), os.getpgrp() == os.getpid(), os.getppid() != 1)
print(sys.stdout.line_buffering, sys.stdout.write_through, sys.stderr.line_buffering)
"#;

const SIGNALS: &str = r#"
import signal
print([(s.name, str(signal.getsignal(s))) for s in signal.Signals])
print(sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
with open("/proc/self/status") as f:
    print([l for l in f if l.startswith(("SigBlk", "SigIgn", "SigCgt", "NoNewPrivs"))])
"#;

const TRACEBACK: &str = r#"
import sys
def inner(x):
    return 1 / x
def outer():
    try:
        inner(0)
    except ZeroDivisionError as e:
        raise ValueError("while dividing") from e
print("before", flush=True)
outer()
"#;

const ATEXIT_AND_THREADS: &str = r#"
import atexit, sys, threading, time
atexit.register(lambda: print("atexit ran", file=sys.stderr))
def late():
    time.sleep(0.3)
    print("thread done after main")
threading.Thread(target=late).start()
def boom():
    raise RuntimeError("in a thread")
t = threading.Thread(target=boom, name="worker")
t.start(); t.join()
print("main ends")
raise SystemExit(4)
"#;

const MULTIPROCESSING: &str = r#"
import multiprocessing as mp
def square(x):
    return x * x
if __name__ == "__main__":
    with mp.Pool(2) as pool:
        print(pool.map(square, range(6)))
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        print(pool.map(square, range(3)))
    p = mp.Process(target=square, args=(3,)); p.start(); p.join(); print(p.exitcode)
"#;

const BUFFERING: &str = r#"
import os, sys
sys.stdout.write("no newline, ")
sys.stderr.write("err, ")
print("then a line")
sys.stdout.write("unflushed before _exit")
os._exit(9)
"#;

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn warm_python_runs_are_indistinguishable_from_cold_ones() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    // The first warm-eligible run starts the spare the next one uses.
    let first = run(&adde, &env, true, "prime.py", "print(42)", 30.0);
    assert_eq!(first["stdout"], "42\n");

    same_both_ways(&adde, &env, "pkg/sub/main.py", IDENTITY, 30.0);
    same_both_ways(&adde, &env, "fds.py", DESCRIPTORS, 30.0);
    same_both_ways(&adde, &env, "signals.py", SIGNALS, 30.0);
    let traceback = same_both_ways(&adde, &env, "tb.py", TRACEBACK, 30.0);
    assert_eq!(traceback["exit_code"], 1);
    assert!(traceback["stderr"]
        .as_str()
        .unwrap()
        .starts_with("Traceback (most recent call last):\n  File \"/workspace/tb.py\", line 7"));
    let threads = same_both_ways(&adde, &env, "threads.py", ATEXIT_AND_THREADS, 30.0);
    assert_eq!(threads["exit_code"], 4);
    same_both_ways(&adde, &env, "mp.py", MULTIPROCESSING, 60.0);
    same_both_ways(&adde, &env, "buffering.py", BUFFERING, 30.0);
    for (name, code, exit) in [
        ("exit3.py", "import sys\nsys.exit(3)", 3),
        ("exitmsg.py", "import sys\nsys.exit('bye')", 1),
        ("exitnone.py", "raise SystemExit", 0),
        ("syntax.py", "x = (\n", 1),
        ("interrupt.py", "raise KeyboardInterrupt", 130),
        (
            "term.py",
            "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)",
            143,
        ),
        ("warn.py", "import warnings\nwarnings.warn('careful')", 0),
        (
            "encoding.py",
            "# -*- coding: latin-1 -*-\nprint('caf\u{e9}')",
            0,
        ),
    ] {
        let log = same_both_ways(&adde, &env, name, code, 30.0);
        assert_eq!(log["exit_code"], exit, "{name}: {log}");
    }

    // The deadline kills the warm run's whole tree, as it kills a cold one's.
    let hang = "import subprocess, time\nsubprocess.Popen(['sleep', '300'])\nprint('started', flush=True)\ntime.sleep(300)";
    let log = same_both_ways(&adde, &env, "hang.py", hang, 2.0);
    assert_eq!(log["timed_out"], true);
    assert_eq!(log["exit_code"], 124);
    // What is left is adde's at rest (the idler, the spare waiting for the next warm run, the
    // supervisor kept from the cold run) and the spare's interpreter.
    let left: Vec<String> = processes(&env.id)
        .into_iter()
        .filter(|p| !is_adde_at_rest(p))
        .collect();
    assert!(
        left.len() == 1 && left[0].starts_with("python3 -c"),
        "processes left behind: {left:?}"
    );
    // And the next warm run is served.
    let after = run(&adde, &env, true, "after.py", "print('ok')", 30.0);
    assert_eq!(
        (after["stdout"].clone(), after["warm"].clone()),
        (json!("ok\n"), json!(true))
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_warm_run_that_kills_everything_it_can_leaves_the_next_runs_served() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    run(&adde, &env, true, "prime.py", "pass", 30.0);
    // `kill -9 -1` reaches the run's supervisor and the spare: the run is reported as such,
    // not hung, and the dead spare is noticed (the next warm-eligible run is cold).
    killer(&adde, &env, false);
    let next = run(&adde, &env, true, "a.py", "print(1)", 30.0);
    assert_eq!(
        (next["stdout"].clone(), next.get("warm")),
        (json!("1\n"), None)
    );
    // A warm run that does it is reported the same, and a new spare serves the next run.
    killer(&adde, &env, true);
    let then = run(&adde, &env, true, "a.py", "print(2)", 30.0);
    assert_eq!(
        (then["stdout"].clone(), then["warm"].clone()),
        (json!("2\n"), json!(true))
    );
}

fn killer(adde: &Adde, env: &Env, warm: bool) {
    let code = "import os, signal\nos.kill(-1, signal.SIGKILL)";
    let out = adde.call_with(
        warm_vars(warm),
        "execute_code_block",
        json!({"container_id": env.id, "filename": "k.py", "code_content": code}),
    );
    crate::common::assert_error(&out, "supervisor_died");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn python_runs_are_warm_by_default_except_where_memory_is_tight_or_the_operator_says_off() {
    let adde = Adde::docker();
    let roomy = adde.env(json!({"image": PYTHON}));
    let first = run(&adde, &roomy, true, "a.py", "print(1)", 30.0);
    let second = run(&adde, &roomy, true, "a.py", "print(2)", 30.0);
    assert_eq!((first.get("warm"), &second["warm"]), (None, &json!(true)));
    let off = run(&adde, &roomy, false, "a.py", "print(3)", 30.0);
    assert_eq!((&off["stdout"], off.get("warm")), (&json!("3\n"), None));

    // Under 256 MiB the interpreter idling for the next run would weigh too much.
    let tight = adde.env(json!({"image": PYTHON, "memory": "128m"}));
    for i in 0..3 {
        let log = run(&adde, &tight, true, "a.py", &format!("print({i})"), 30.0);
        assert_eq!(log.get("warm"), None, "{log}");
    }
    let spares = processes(&tight.id)
        .into_iter()
        .filter(|p| p.ends_with("__helper spare"))
        .count();
    assert_eq!(spares, 0);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn interrupting_adde_kills_a_warm_run() {
    // A warm run's supervisor is the spare, whose command line was made before the run and
    // does not name it: the kill must find it all the same (the agent names it).
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    run(&adde, &env, true, "prime.py", "pass", 30.0);
    let supervisor = process_table(&env.id)
        .into_iter()
        .find(|(_, _, args)| args.ends_with("__helper spare"))
        .map(|(pid, _, _)| pid)
        .expect("a spare waits after a warm-eligible run");
    let code = "import time\nopen('/workspace/started', 'w').close()\ntime.sleep(300)\n";
    let child = adde
        .command()
        .arg("execute_code_block")
        .arg(json!({"container_id": env.id, "filename": "long.py", "code_content": code, "timeout_sec": 600}).to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = || {
        std::process::Command::new("docker")
            .args(["exec", &env.id, "test", "-e", "/workspace/started"])
            .status()
            .is_ok_and(|s| s.success())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !started() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = crate::common::parse_output(child.wait_with_output().unwrap());
    crate::common::assert_error(&out, "interrupted");
    // The supervisor that ran it (the spare it was handed to) is gone with its program.
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while processes_with_pid(&env.id).contains(&supervisor) && std::time::Instant::now() < gone {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !processes_with_pid(&env.id).contains(&supervisor),
        "the warm run still runs"
    );
    crate::common::assert_only_idle(&env.id);
}

fn processes_with_pid(id: &str) -> Vec<String> {
    process_table(id)
        .into_iter()
        .map(|(pid, _, _)| pid)
        .collect()
}
