//! The code interpreter: run_code in persistent Python and shell contexts kept by the agent.

use std::time::Instant;

use serde_json::{json, Value};

use crate::common::*;

/// Debian's python3 with matplotlib and pandas (tests/images/build.sh).
const PYTHON_DATA: &str = "adde-test/python-data:1";

fn cell(adde: &Adde, env: &Env, code: &str, extra: Value) -> Value {
    let mut payload = json!({"container_id": env.id, "code": code});
    if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
        p.extend(e);
    }
    adde.ok("run_code", payload)
}

fn py(adde: &Adde, env: &Env, code: &str) -> Value {
    cell(adde, env, code, json!({}))
}

fn sh(adde: &Adde, env: &Env, context: &str, code: &str) -> Value {
    cell(
        adde,
        env,
        code,
        json!({"language": "bash", "context": context}),
    )
}

fn plain(result: &Value) -> Vec<String> {
    result["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"]["text/plain"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The processes of the environment other than adde's own at rest and context helpers.
fn others(env: &Env) -> Vec<String> {
    processes(&env.id)
        .into_iter()
        .filter(|p| !is_adde_at_rest(p) && !p.contains("__helper context"))
        .collect()
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn python_cells_keep_their_state_and_show_values_errors_and_rich_results() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    let first = py(&adde, &env, "import math\nx = 41\nprint('hello')\nx + 1");
    assert_eq!(first["stdout"], "hello\n");
    assert_eq!(plain(&first), ["42"]);
    assert_eq!(first["results"][0]["kind"], "execute_result");
    assert_eq!(first["execution_count"], 1);
    assert!(first["error"].is_null());
    assert!(first["interpreter"]
        .as_str()
        .unwrap()
        .starts_with("Python 3."));

    // Globals and imports persist; a statement shows nothing; display() shows several.
    let second = py(&adde, &env, "x += 1\ndisplay(x, math.floor(2.5))\ny = x");
    assert_eq!(plain(&second), ["42", "2"]);
    assert_eq!(second["execution_count"], 2);

    // The _repr_*_ protocol.
    let rich = py(
        &adde,
        &env,
        "class R:\n    def _repr_html_(self): return '<b>r</b>'\n    def _repr_markdown_(self): return '*r*'\n    def _repr_json_(self): return {'r': 1}\n    def _repr_png_(self): return b'\\x89PNG fake'\n    def __repr__(self): return 'R()'\nR()",
    );
    let data = &rich["results"][0]["data"];
    assert_eq!(data["text/html"], "<b>r</b>");
    assert_eq!(data["text/markdown"], "*r*");
    assert_eq!(data["application/json"], json!({"r": 1}));
    assert_eq!(data["image/png"], "iVBORyBmYWtl");
    assert_eq!(data["text/plain"], "R()");

    // Each error kind comes back as {name, value, traceback}; the context goes on.
    let name_error = py(&adde, &env, "undefined_name");
    assert_eq!(name_error["error"]["name"], "NameError");
    assert!(name_error["error"]["traceback"]
        .as_str()
        .unwrap()
        .contains("<cell-"));
    let syntax = py(&adde, &env, "def (:");
    assert_eq!(syntax["error"]["name"], "SyntaxError");
    let raised = py(
        &adde,
        &env,
        "print('before')\nraise ValueError('bad value')",
    );
    assert_eq!(raised["error"]["value"], "bad value");
    assert_eq!(raised["stdout"], "before\n");
    let exited = py(&adde, &env, "import sys; sys.exit(3)");
    assert_eq!(exited["error"]["name"], "SystemExit");
    assert_eq!(plain(&py(&adde, &env, "y")), ["42"]);
    let stderr = py(&adde, &env, "import sys; print('oops', file=sys.stderr)");
    assert_eq!(stderr["stderr"], "oops\n");

    // Every cell is a run in the history.
    let logs = adde.ok(
        "get_container_logs",
        json!({"container_id": env.id, "run_id": first["run_id"]}),
    );
    assert_eq!(logs["log"]["stdout"], "hello\n");
    assert_eq!(logs["log"]["command"], json!(["python", "context:default"]));
    let failed = adde.ok(
        "get_container_logs",
        json!({"container_id": env.id, "run_id": raised["run_id"]}),
    );
    assert_eq!(failed["log"]["exit_code"], 1);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn shell_cells_keep_directory_variables_exports_and_functions() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    let set = sh(
        &adde,
        &env,
        "s",
        "mkdir -p /tmp/w && cd /tmp/w\nFOO=bar\nexport BAR=baz\ngreet() { echo \"hi $1\"; }",
    );
    assert_eq!(set["exit_code"], 0);
    assert_eq!(set["interpreter"], "bash");
    let used = sh(
        &adde,
        &env,
        "s",
        "pwd; echo $FOO; sh -c 'echo $BAR'; greet you; false",
    );
    assert_eq!(used["stdout"], "/tmp/w\nbar\nbaz\nhi you\n");
    assert_eq!(used["exit_code"], 1);
    assert_eq!(used["error"]["name"], "ExitStatus");
    // `exit` ends the shell: the context restarts, and the next cell says so.
    let exit = sh(&adde, &env, "s", "exit 7");
    assert_eq!(exit["context_restarted"], true, "{exit}");
    let after = sh(&adde, &env, "s", "echo ${FOO:-gone}; pwd");
    assert_eq!(after["stdout"], "gone\n/workspace\n");

    // Without bash, the shell context is sh, and says so.
    let busybox = adde.busybox();
    let plain_sh = cell(
        &adde,
        &busybox,
        "A=1\nmkdir -p sub && cd sub",
        json!({"language": "bash"}),
    );
    assert_eq!(plain_sh["interpreter"], "sh");
    let again = cell(&adde, &busybox, "echo $A; pwd", json!({"language": "bash"}));
    assert_eq!(again["stdout"], "1\n/workspace/sub\n");
    // A Python context in an image without Python.
    adde.err(
        "run_code",
        json!({"container_id": busybox.id, "code": "1", "context": "py"}),
        "interpreter_not_found",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_timeout_interrupts_the_cell_and_a_cell_that_will_not_stop_restarts_its_context() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    py(&adde, &env, "kept = 'yes'");
    let started = Instant::now();
    let slept = cell(
        &adde,
        &env,
        "import time\nprint('going')\ntime.sleep(60)",
        json!({"timeout_sec": 1}),
    );
    assert!(started.elapsed().as_secs_f64() < 10.0);
    assert_eq!(slept["timed_out"], true);
    assert_eq!(slept["interrupted"], true);
    assert_eq!(slept["error"]["name"], "KeyboardInterrupt");
    assert_eq!(slept["context_restarted"], false);
    assert_eq!(slept["stdout"], "going\n");
    assert_eq!(plain(&py(&adde, &env, "kept")), ["'yes'"]);

    // A cell that ignores SIGINT, with children that escape into their own sessions and
    // double-fork: everything is killed and the interpreter started afresh.
    let stubborn = cell(
        &adde,
        &env,
        "import signal, subprocess, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n\
         subprocess.Popen(['sleep', '1001'], start_new_session=True)\n\
         subprocess.Popen(['sh', '-c', 'trap \"\" INT; (setsid sleep 1002 &); sleep 1003'])\n\
         while True: time.sleep(1)",
        json!({"timeout_sec": 1}),
    );
    assert_eq!(stubborn["timed_out"], true);
    assert_eq!(stubborn["context_restarted"], true);
    assert_eq!(stubborn["error"]["name"], "ContextRestarted");
    assert!(stubborn["restart_reason"]
        .as_str()
        .unwrap()
        .contains("did not stop"));
    let left = others(&env);
    assert!(
        left.iter().all(|p| !p.contains("sleep")),
        "survivors: {left:?}"
    );
    let fresh = py(&adde, &env, "'kept' in globals()");
    assert_eq!(plain(&fresh), ["False"]);
    assert_eq!(fresh["execution_count"], 1);

    // A shell cell's foreground job gets SIGINT; the shell goes on.
    sh(&adde, &env, "s", "V=1");
    let job = cell(
        &adde,
        &env,
        "sleep 60; echo not-reached",
        json!({"language": "bash", "context": "s", "timeout_sec": 1}),
    );
    assert_eq!(job["exit_code"], 130);
    assert_eq!(job["context_restarted"], false);
    assert_eq!(sh(&adde, &env, "s", "echo $V")["stdout"], "1\n");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn nothing_a_cell_starts_outlives_it() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    py(
        &adde,
        &env,
        "import subprocess, os\nsubprocess.Popen(['sleep', '1004'], start_new_session=True)\nos.system('(setsid sleep 1005 &) ; nohup sleep 1006 >/dev/null 2>&1 &')",
    );
    sh(&adde, &env, "s", "sleep 1007 & (setsid sleep 1008 &)");
    let left = others(&env);
    assert!(
        left.iter().all(|p| !p.contains("sleep")),
        "survivors: {left:?}"
    );
    // Threads are the interpreter's own state: they stay.
    py(
        &adde,
        &env,
        "import threading, time\nt = threading.Thread(target=time.sleep, args=(30,), daemon=True)\nt.start()",
    );
    assert_eq!(plain(&py(&adde, &env, "t.is_alive()")), ["True"]);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn cells_of_one_context_queue_and_cells_of_two_run_side_by_side() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    py(&adde, &env, "import time");
    cell(&adde, &env, "import time", json!({"context": "other"}));
    let run = |context: &'static str| {
        let payload = json!({"container_id": env.id, "code": "time.sleep(1.5)\ntime.time()", "context": context});
        let command = adde.command();
        std::thread::spawn(move || {
            let mut command = command;
            parse_output(
                command
                    .arg("run_code")
                    .arg(payload.to_string())
                    .output()
                    .unwrap(),
            )
        })
    };
    let started = Instant::now();
    let (a, b) = (run("default"), run("default"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let same = started.elapsed().as_secs_f64();
    assert_eq!((a.code, b.code), (0, 0), "{a:?} {b:?}");
    let mut counts = [
        a.json["execution_count"].as_u64(),
        b.json["execution_count"].as_u64(),
    ];
    counts.sort();
    assert_eq!(counts, [Some(2), Some(3)]);
    assert!(same >= 3.0, "one context ran two cells at once ({same} s)");

    let started = Instant::now();
    let (a, b) = (run("default"), run("other"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let apart = started.elapsed().as_secs_f64();
    assert_eq!((a.code, b.code), (0, 0), "{a:?} {b:?}");
    assert!(
        apart < 2.9,
        "two contexts did not run side by side ({apart} s)"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn contexts_are_created_listed_reset_and_closed() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    let created = adde.ok(
        "context_create",
        json!({"container_id": env.id, "context": "work", "language": "bash"}),
    );
    assert_eq!(created["name"], "work");
    assert_eq!(created["interpreter"], "bash");
    adde.err(
        "context_create",
        json!({"container_id": env.id, "context": "work"}),
        "invalid_argument",
    );
    let wrong = adde.err(
        "run_code",
        json!({"container_id": env.id, "context": "work", "code": "1"}),
        "invalid_argument",
    );
    assert_eq!(wrong["field"], "language");
    py(&adde, &env, "z = 5");
    let list = adde.ok("context_list", json!({"container_id": env.id}));
    let names: Vec<&str> = list["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "work"]);
    assert_eq!(list["contexts"][0]["execution_count"], 1);

    let reset = adde.ok("context_reset", json!({"container_id": env.id}));
    assert_eq!(reset["execution_count"], 0);
    assert_eq!(py(&adde, &env, "z")["error"]["name"], "NameError");

    adde.ok(
        "context_close",
        json!({"container_id": env.id, "context": "work"}),
    );
    adde.err(
        "context_reset",
        json!({"container_id": env.id, "context": "work"}),
        "code_context_not_found",
    );
    adde.err(
        "run_code",
        json!({"container_id": env.id, "code": "1", "context": "../x"}),
        "invalid_argument",
    );
    let others_left = others(&env);
    assert!(
        others_left.iter().all(|p| !p.contains("bash")),
        "{others_left:?}"
    );

    // An environment whose main process is the image's command has no agent.
    let served = adde.env(json!({"image": SCRATCH, "use_image_cmd": true}));
    adde.err(
        "run_code",
        json!({"container_id": served.id, "code": "1"}),
        "no_agent",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn rich_outputs_are_bounded_and_can_be_written_as_files() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    let big = cell(
        &adde,
        &env,
        "class Big:\n    def _repr_html_(self): return 'x' * 5000\n    def __repr__(self): return 'Big()'\ndisplay(Big())\n'y' * 3000",
        json!({"max_result_bytes": 2048}),
    );
    assert_eq!(big["results_truncated"], true);
    assert_eq!(big["results"][0]["omitted"]["text/html"], 5000);
    assert_eq!(big["results"][0]["data"]["text/plain"], "Big()");
    let text = big["results"][1]["data"]["text/plain"].as_str().unwrap();
    assert!(text.contains("[adde: output truncated") && text.len() < 2100);

    let filed = cell(
        &adde,
        &env,
        "class H:\n    def _repr_html_(self): return '<i>h</i>'\nH()",
        json!({"output_dir": "out"}),
    );
    let path = filed["results"][0]["files"]["text/html"].as_str().unwrap();
    assert!(path.starts_with("/workspace/out/"), "{filed}");
    assert!(filed["results"][0]["data"].get("text/html").is_none());
    let read = adde.ok("read_file", json!({"container_id": env.id, "path": path}));
    assert_eq!(read["content"], "<i>h</i>");

    let chatty = cell(
        &adde,
        &env,
        "print('z' * 100000)",
        json!({"max_output_bytes": 1000}),
    );
    assert_eq!(chatty["stdout_truncated"], true);
    assert_eq!(chatty["stdout_bytes"], 100001);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_matplotlib_chart_comes_back_as_a_png_and_a_dataframe_as_html() {
    let adde = Adde::docker();
    assert!(
        docker_ok(&["image", "inspect", PYTHON_DATA]),
        "test image {PYTHON_DATA} is missing: run `bash tests/images/build.sh` first"
    );
    let env = adde.env(json!({"image": PYTHON_DATA}));
    let out = cell(
        &adde,
        &env,
        "import io\nimport pandas as pd\nimport matplotlib.pyplot as plt\n\
         df = pd.read_csv(io.StringIO('x,y\\n1,1\\n2,4\\n3,9\\n'))\n\
         display(df.describe())\nfig = plt.figure(figsize=(4, 3), dpi=100)\nplt.plot(df.x, df.y)\nplt.show()\n\
         plt.figure(figsize=(4, 3), dpi=100)\nplt.bar(df.x, df.y)\ndf.head(2)",
        json!({"timeout_sec": 120, "svg": true}),
    );
    assert!(out["error"].is_null(), "{out}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(results[0]["data"]["text/html"]
        .as_str()
        .unwrap()
        .contains("<table"));
    // plt.show() shows the first figure; the value comes next, then (as in Jupyter) the
    // figures still open at the end of the cell.
    assert_eq!(results[2]["kind"], "execute_result");
    for figure in [&results[1], &results[3]] {
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(figure["data"]["image/png"].as_str().unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert!(
            (200..=500).contains(&width) && (150..=400).contains(&height),
            "{width}x{height}"
        );
        assert!(png.len() > 2000, "{}", png.len());
        assert!(figure["data"]["image/svg+xml"]
            .as_str()
            .unwrap()
            .contains("<svg"));
    }
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn another_run_cannot_reach_a_contexts_channel_or_its_interpreter() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    py(&adde, &env, "secret = 'context secret'");
    // A run of the same user looks for the context's helper and interpreter and tries every
    // way in: their fds through /proc (for reading and writing), their memory, ptrace.
    let probe = r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
me = os.getpid()
found, reached = [], []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read()
    except OSError:
        continue
    if b'__helper\0context' not in cmd and b'adde-driver' not in cmd:
        continue
    found.append(pid)
    try:
        fds = os.listdir(f'/proc/{pid}/fd')
    except OSError:
        fds = [str(n) for n in range(8)]
    for fd in fds:
        for mode in (os.O_RDONLY, os.O_WRONLY):
            try:
                os.close(os.open(f'/proc/{pid}/fd/{fd}', mode | os.O_NONBLOCK))
                reached.append(f'{pid}/fd/{fd}')
            except OSError:
                pass
    try:
        open(f'/proc/{pid}/mem', 'rb').close()
        reached.append(f'{pid}/mem')
    except OSError:
        pass
    if libc.ptrace(16, int(pid), 0, 0) == 0:
        reached.append(f'{pid}/ptrace')
        libc.ptrace(17, int(pid), 0, 0)
print(len(found), reached)
"#;
    let log = adde.exec(&env, "probe.py", probe, 30.0);
    assert_eq!(log["stdout"], "2 []\n", "{log}");
    // The context is untouched.
    assert_eq!(plain(&py(&adde, &env, "secret")), ["'context secret'"]);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_sweep_after_a_dead_supervisor_spares_the_contexts() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    py(&adde, &env, "alive = 'yes'");
    sh(&adde, &env, "s", "K=1");
    // A run kills its own supervisor: adde stops every process no live run owns.
    let out = adde.call(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "escape.sh",
               "code_content": "sleep 100000 &\nsleep 0.2\nkill -9 $PPID\n"}),
    );
    assert_error(&out, "supervisor_died");
    assert_eq!(plain(&py(&adde, &env, "alive")), ["'yes'"]);
    assert_eq!(sh(&adde, &env, "s", "echo $K")["stdout"], "1\n");
}
