//! adde against engines other than the local Docker socket: gVisor (runsc), a TLS endpoint,
//! SSH, and rootful and rootless Podman. `tests/engines/setup.sh` starts them and exports how
//! to reach each; a test whose engine is not set up fails under CI=true and, elsewhere, says
//! that it did not run.

#[path = "../common/mod.rs"]
mod common;

mod contexts;
mod gvisor;
mod podman;
mod rootless_podman;
mod ssh;
mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_error, parse_output, Adde, Out};
use serde_json::{json, Value};

/// Variables naming a second engine, read from what tests/engines/setup.sh exported. `None`
/// (after saying so) when that engine is not set up outside CI; under CI, a failure.
fn second_engine(name: &str, vars: &[&str]) -> Option<Vec<(String, String)>> {
    let upper = name.to_uppercase();
    let values: Option<Vec<String>> = vars.iter().map(|v| std::env::var(v).ok()).collect();
    match values {
        Some(values) => Some(vars.iter().map(|v| v.to_string()).zip(values).collect()),
        None => {
            let why = std::env::var(format!("ADDE_TEST_{upper}_ERROR"))
                .unwrap_or_else(|_| "run `eval \"$(bash tests/engines/setup.sh)\"` first".into());
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("the {name} engine is not set up: {why}");
            }
            eprintln!("NOT RUN: the {name} engine is not set up: {why}");
            None
        }
    }
}

/// What chooses the engine, for adde and the docker CLI alike.
const ENGINE_VARS: [&str; 5] = [
    "DOCKER_HOST",
    "DOCKER_TLS_VERIFY",
    "DOCKER_CERT_PATH",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
];

/// adde pointed at a second engine by environment variables (DOCKER_HOST and the like).
pub struct On {
    pub adde: Adde,
    pub env: Vec<(String, String)>,
}

impl On {
    pub fn new(env: &[(&str, &str)]) -> On {
        On {
            adde: Adde::docker(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// adde with this engine's variables, to be given a tool and its payload.
    pub fn command(&self) -> Command {
        let mut cmd = self.adde.command();
        for key in ENGINE_VARS {
            cmd.env_remove(key);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
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

    pub fn ok(&self, tool: &str, payload: Value) -> Value {
        let out = self.call(tool, payload.clone());
        assert_eq!(out.code, 0, "{tool} {payload} failed: {out:?}");
        out.json
    }

    pub fn err(&self, tool: &str, payload: Value, code: &str) -> Value {
        let out = self.call(tool, payload);
        assert_error(&out, code);
        out.json
    }

    /// The docker CLI against the same engine.
    pub fn docker(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("docker");
        for key in ENGINE_VARS {
            cmd.env_remove(key);
        }
        let out = cmd
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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

    /// Creates an environment removed (on this engine) when the guard drops.
    pub fn env(&self, payload: Value) -> Env<'_> {
        let json = self.ok("create_runtime_env", payload);
        Env {
            on: self,
            id: json["container_id"].as_str().expect("container_id").into(),
            json,
        }
    }

    pub fn exec(&self, env: &Env, command: &str, timeout_sec: f64) -> Value {
        let payload =
            json!({"container_id": env.id, "command": command, "timeout_sec": timeout_sec});
        self.ok("execute_command", payload)["log"].clone()
    }
}

/// An environment on a second engine, removed with its volumes by adde when dropped.
pub struct Env<'a> {
    on: &'a On,
    pub id: String,
    pub json: Value,
}

impl Drop for Env<'_> {
    fn drop(&mut self) {
        let _ = self
            .on
            .call("cleanup_env", json!({"container_id": self.id}));
    }
}

/// The folder where adde's keepers (src/engine/keeper.rs) listen, under `tmp` as TMPDIR.
pub fn keeper_folder(tmp: &Path) -> PathBuf {
    // SAFETY: getuid cannot fail.
    tmp.join(format!("adde-keep-{}", unsafe { libc::getuid() }))
}

pub fn keeper_sockets(tmp: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(keeper_folder(tmp)) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sock"))
        .collect()
}

/// The keepers started with TMPDIR=`tmp`: their pids.
pub fn keepers(tmp: &Path) -> Vec<i32> {
    let tmpdir = format!("TMPDIR={}", tmp.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            cmdline
                .split(|b| *b == 0)
                .any(|a| a == b"__keep_connections")
                && environ.split(|b| *b == 0).any(|v| v == tmpdir.as_bytes())
        })
        .collect()
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TMPDIR of the test's own; the keepers started under it are killed at the end.
pub struct KeeperTmp(tempfile::TempDir);

impl Default for KeeperTmp {
    fn default() -> KeeperTmp {
        KeeperTmp(tempfile::tempdir().unwrap())
    }
}

impl KeeperTmp {
    /// Makes a first call with `on` (whose TMPDIR is this one), which connects on its own and
    /// starts a keeper, and waits until the keeper listens.
    pub fn start_keeper(&self, on: &On) {
        assert_eq!(on.ok("ping", json!({}))["ok"], true);
        self.wait_for_keeper();
    }

    pub fn wait_for_keeper(&self) {
        wait_until("the keeper listens", || {
            keeper_sockets(self.path()).len() == 1
        });
    }

    /// Sends `signal` to the keepers started under this TMPDIR.
    pub fn signal_keepers(&self, signal: i32) {
        for pid in keepers(self.path()) {
            // SAFETY: a signal to a process of this test's own.
            unsafe { libc::kill(pid, signal) };
        }
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for KeeperTmp {
    fn drop(&mut self) {
        self.signal_keepers(libc::SIGKILL);
    }
}
