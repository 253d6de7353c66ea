//! The run history, kept on the host (never in the container, where user code could alter it)
//! so that it survives cleanup_env. One JSON file per run under
//! `<state dir>/runs/<container id>/<run id>.json`, written to a temporary name and renamed
//! into place: concurrent runs never interleave, and a crash of adde never leaves half a
//! record. (No fsync: a run log is not worth a disk flush on every execution.)

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::private_dir;

/// One execution's result: what execute_code_block returns as `log` and what is kept.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct RunLog {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    /// Wall time of the program, ADDE's format: "0.09s".
    pub execution_time: String,
    pub duration_ms: u64,
    pub run_id: String,
    pub timed_out: bool,
    pub oom_killed: bool,
    /// The signal that ended the program, if one did.
    pub signal: Option<String>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub filename: String,
    pub command: Vec<String>,
    pub container_id: String,
    pub started_at: String,
    /// Set while the run goes on: what it printed so far (rewritten every second or so).
    /// A run whose adde was killed keeps it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_progress: bool,
    /// How adde reached the environment: "agent" (its resident agent) or "exec" (an
    /// Engine-API exec).
    #[serde(default)]
    pub transport: crate::engine::Transport,
    /// The program ran in a Python started ahead of the run (the default; see helper/warm.rs).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warm: bool,
    /// Set when the run has no result (its supervisor or the environment died, or the
    /// environment was paused past the deadline): the error execute_code_block returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
}

impl RunLog {
    /// The record of a run that has just started: no output, no status yet.
    pub fn started(run_id: String, container_id: String, started_at: String) -> RunLog {
        RunLog {
            exit_code: -1,
            stdout: String::new(),
            stderr: String::new(),
            execution_time: "0.00s".into(),
            duration_ms: 0,
            run_id,
            timed_out: false,
            oom_killed: false,
            signal: None,
            stdout_truncated: false,
            stderr_truncated: false,
            stdout_bytes: 0,
            stderr_bytes: 0,
            filename: String::new(),
            command: Vec::new(),
            container_id,
            started_at,
            in_progress: true,
            transport: crate::engine::Transport::Exec,
            warm: false,
            error: None,
        }
    }
}

/// Why a run has no result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct RunError {
    pub error_code: String,
    pub error: String,
}

impl From<&Error> for RunError {
    fn from(error: &Error) -> RunError {
        RunError {
            error_code: error.code().to_string(),
            error: error.to_string(),
        }
    }
}

pub struct History {
    root: PathBuf,
}

impl History {
    pub fn open() -> Self {
        History {
            root: crate::state::runs(),
        }
    }

    pub fn record(&self, log: &RunLog) -> Result<()> {
        let dir = self.root.clone().join(&log.container_id);
        private_dir(&dir)?;
        let tmp = dir.join(format!(".{}.tmp", log.run_id));
        let done = dir.join(format!("{}.json", log.run_id));
        let body = serde_json::to_vec(log).map_err(|e| Error::Internal(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&body)?;
            fs::rename(&tmp, &done)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::state(&done, e)
        })
    }

    /// The full container id whose runs are kept, given a full id or a unique prefix.
    pub fn resolve(&self, container: &str) -> Option<String> {
        let dir = self.root.clone();
        if dir.join(container).is_dir() {
            return Some(container.to_string());
        }
        let mut matches = fs::read_dir(&dir)
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.starts_with(container));
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    }

    /// Every run of a container, oldest first.
    pub fn runs(&self, container_id: &str) -> Result<Vec<RunLog>> {
        let dir = self.root.clone().join(container_id);
        let mut names: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::state(&dir, e)),
        };
        names.sort();
        names
            .iter()
            .map(|name| {
                let path = dir.join(name);
                let text = fs::read(&path).map_err(|e| Error::state(&path, e))?;
                serde_json::from_slice(&text).map_err(|e| {
                    Error::state(
                        &path,
                        std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    )
                })
            })
            .collect()
    }
}
