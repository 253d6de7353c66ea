//! The harness shared by the integration tests: run the real `adde` binary, talk to the real
//! engine through the docker CLI to check what adde did, and remove what each test made.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

pub const BUSYBOX: &str = "adde-test/busybox:1";
pub const SCRATCH: &str = "adde-test/scratch:1";
pub const PYTHON: &str = "adde-test/python:3";
pub const FAKE_NODE: &str = "adde-test/fake-node:1";
pub const REGISTRY: &str = "127.0.0.1:5000";

/// The result of one adde call.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

pub fn parse_output(output: Output) -> Out {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    Out {
        code: output.status.code().unwrap_or(-1),
        json,
        stdout,
        stderr,
    }
}

/// adde with its own state directory, so every test has its own run history.
pub struct Adde {
    pub state: tempfile::TempDir,
}

impl Adde {
    /// For tests that never reach the engine.
    pub fn offline() -> Adde {
        Adde {
            state: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// For tests that need the engine and the test images. They are marked `#[ignore]`, so
    /// a plain `cargo test` reports them as not run; tests/run.sh runs them, and there a
    /// missing engine or image is a failure, never a silent pass.
    pub fn docker() -> Adde {
        static READY: OnceLock<Result<(), String>> = OnceLock::new();
        let ready = READY.get_or_init(|| {
            let version = Command::new("docker")
                .args(["version", "--format", "{{.Server.Version}}"])
                .output();
            match version {
                Ok(o) if o.status.success() => {}
                _ => return Err("the Docker engine is not reachable".into()),
            }
            for image in [BUSYBOX, SCRATCH, PYTHON, FAKE_NODE] {
                if !docker_ok(&["image", "inspect", image]) {
                    return Err(format!(
                        "test image {image} is missing: run `bash tests/images/build.sh` first"
                    ));
                }
            }
            Ok(())
        });
        if let Err(why) = ready {
            panic!("{why}: this test needs Docker and could not run");
        }
        Adde::offline()
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_adde"));
        cmd.env("ADDE_STATE_DIR", self.state.path())
            .env_remove("PIP_INDEX_URL")
            .env_remove("NPM_CONFIG_REGISTRY")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null());
        cmd
    }

    pub fn call(&self, tool: &str, payload: Value) -> Out {
        let output = self
            .command()
            .arg(tool)
            .arg(payload.to_string())
            .output()
            .expect("run adde");
        parse_output(output)
    }

    /// Calls a tool with extra environment variables (a policy, say).
    pub fn call_with(&self, vars: &[(&str, &str)], tool: &str, payload: Value) -> Out {
        let mut cmd = self.command();
        for (key, value) in vars {
            cmd.env(key, value);
        }
        parse_output(
            cmd.arg(tool)
                .arg(payload.to_string())
                .output()
                .expect("run adde"),
        )
    }

    /// Calls a tool with the payload on stdin instead of argv.
    pub fn call_stdin(&self, tool: &str, payload: &str) -> Out {
        use std::io::Write;
        let mut child = self
            .command()
            .arg(tool)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run adde");
        let mut stdin = child.stdin.take().unwrap();
        let text = payload.to_string();
        let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
        let output = child.wait_with_output().expect("adde output");
        writer.join().unwrap().expect("write stdin");
        parse_output(output)
    }

    /// A call that must succeed; returns its JSON.
    pub fn ok(&self, tool: &str, payload: Value) -> Value {
        let out = self.call(tool, payload.clone());
        assert_eq!(out.code, 0, "{tool} {payload} failed: {out:?}");
        assert!(
            out.stdout.ends_with("}\n") && out.stdout.lines().count() == 1,
            "{out:?}"
        );
        out.json
    }

    /// A call that must fail with `code`; returns its JSON.
    pub fn err(&self, tool: &str, payload: Value, code: &str) -> Value {
        let out = self.call(tool, payload.clone());
        assert_error(&out, code);
        out.json
    }

    /// Creates an environment that is removed when the guard drops.
    pub fn env(&self, payload: Value) -> Env {
        let json = self.ok("create_runtime_env", payload);
        Env {
            id: json["container_id"]
                .as_str()
                .expect("container_id")
                .to_string(),
            name: json["name"].as_str().expect("name").to_string(),
            json,
        }
    }

    pub fn busybox(&self) -> Env {
        self.env(json!({"image": BUSYBOX}))
    }

    /// Runs code and returns the log.
    pub fn exec(&self, env: &Env, filename: &str, code: &str, timeout_sec: f64) -> Value {
        let out = self.ok(
            "execute_code_block",
            json!({"container_id": env.id, "filename": filename, "code_content": code, "timeout_sec": timeout_sec}),
        );
        out["log"].clone()
    }

    /// The log of an `execute_command` that must succeed.
    pub fn run_command(&self, env: &Env, command: &str, timeout_sec: f64) -> Value {
        let out = self.ok(
            "execute_command",
            json!({"container_id": env.id, "command": command, "timeout_sec": timeout_sec}),
        );
        out["log"].clone()
    }
}

pub fn assert_error(out: &Out, code: &str) {
    assert_eq!(out.code, 1, "expected exit 1 with {code}: {out:?}");
    assert_eq!(out.json["error_code"], code, "{out:?}");
    let message = out.json["error"].as_str().expect("error message");
    assert!(!message.is_empty());
    assert!(
        out.stderr.contains(&format!("adde: error: {message}")),
        "stderr should repeat the error: {out:?}"
    );
    assert_eq!(out.stdout.lines().count(), 1, "one JSON object: {out:?}");
}

/// An environment made by a test; removed with its volumes when dropped, whatever happened.
pub struct Env {
    pub id: String,
    pub name: String,
    pub json: Value,
}

impl Drop for Env {
    fn drop(&mut self) {
        remove_env_resources(&self.id, &self.name);
    }
}

/// Removes something a test made outside adde (a foreign container, a volume, a tagged
/// image) when dropped, whatever happened in the test: a failing assertion leaks nothing.
pub struct Remove(Vec<String>);

impl Remove {
    pub fn container(id: &str) -> Remove {
        Remove(vec!["rm".into(), "-f".into(), "-v".into(), id.into()])
    }

    pub fn volume(name: &str) -> Remove {
        Remove(vec!["volume".into(), "rm".into(), "-f".into(), name.into()])
    }

    pub fn image(tag: &str) -> Remove {
        Remove(vec!["rmi".into(), "-f".into(), tag.into()])
    }
}

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(&self.0).output();
    }
}

pub fn remove_env_resources(id: &str, name: &str) {
    let _ = Command::new("docker").args(["rm", "-f", "-v", id]).output();
    let filter = format!("label=io.adde.env={name}");
    for volume in docker_lines(&["volume", "ls", "-q", "--filter", &filter]) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &volume])
            .output();
    }
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

pub fn inspect(id: &str) -> Value {
    let text = docker(&["inspect", id]);
    serde_json::from_str::<Value>(&text).expect("inspect JSON")[0].clone()
}

/// Every process in the container as the engine lists them: PID, parent PID, command line.
pub fn process_table(id: &str) -> Vec<(String, String, String)> {
    let field = |s: &str| -> Option<(String, String)> {
        let (first, rest) = s.trim_start().split_once(char::is_whitespace)?;
        Some((first.to_string(), rest.to_string()))
    };
    docker(&["top", id, "-eo", "pid,ppid,args"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (pid, rest) = field(l)?;
            let (ppid, args) = field(&rest)?;
            Some((pid, ppid, args.trim().to_string()))
        })
        .collect()
}

/// The command lines of every process in the container, as the engine lists them.
pub fn processes(id: &str) -> Vec<String> {
    process_table(id)
        .into_iter()
        .map(|(_, _, args)| args)
        .collect()
}

/// Whether a command line is one of adde's own processes at rest: the idler (PID 1), the
/// spare supervisor waiting for the next warm Python run (helper/warm.rs), or a supervisor
/// the agent keeps between runs, waiting for the next (helper/agent.rs; while it supervises a
/// run, its command line names the run instead of the placeholder).
pub fn is_adde_at_rest(args: &str) -> bool {
    args.ends_with("__helper idle")
        || args.ends_with("__helper spare")
        || args.ends_with(&format!(
            "__helper runs {}",
            adde::protocol::RUNS_PLACEHOLDER
        ))
}

/// Whether an environment has only adde's processes at rest (see [`is_adde_at_rest`]) and
/// the interpreter the spare started; nothing else.
pub fn is_only_idle(id: &str) -> bool {
    only_idle(&process_table(id))
}

fn only_idle(rows: &[(String, String, String)]) -> bool {
    let spare = rows
        .iter()
        .find(|(_, _, args)| args.ends_with("__helper spare"))
        .map(|(pid, _, _)| pid);
    let idle = rows
        .iter()
        .filter(|r| r.2.ends_with("__helper idle"))
        .count();
    idle == 1
        && rows
            .iter()
            .all(|(_, ppid, args)| is_adde_at_rest(args) || Some(ppid) == spare)
}

/// Asserts [`is_only_idle`].
pub fn assert_only_idle(id: &str) {
    let rows = process_table(id);
    assert!(only_idle(&rows), "processes left behind: {rows:?}");
}

/// Where tests/images/build.sh keeps its cache (the Python index among it).
pub fn test_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("ADDE_TEST_CACHE") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    base.join("adde-test")
}

/// A PEP 503 package index on 127.0.0.1, serving the test wheel; stopped when dropped.
pub struct PackageIndex {
    pub url: String,
    child: Child,
}

impl PackageIndex {
    pub fn start() -> PackageIndex {
        let root = test_cache().join("index");
        assert!(
            root.join("simple/adde-demo").is_dir(),
            "no test index at {root:?}: run tests/images/build.sh"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let url = format!("http://127.0.0.1:{port}/simple/");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        PackageIndex { url, child }
    }
}

impl Drop for PackageIndex {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
