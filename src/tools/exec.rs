//! execute_code_block: one exec of adde's in-container supervisor, which receives the file on
//! stdin, runs it, enforces the deadline inside the container and reports how it ended.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::container::LogOutput;
use futures_util::StreamExt;
use schemars::JsonSchema;

use serde::{Deserialize, Serialize};

use crate::capture::HeadTail;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::history::{History, RunLog};
use crate::ids::new_run_id;
use crate::protocol::{
    FileSpec, FrameDecoder, HelperFailure, Role, RunSpec, RunStatus, TAG_STATUS, TAG_STDERR,
    TAG_STDOUT, WORKSPACE,
};

const DEFAULT_TIMEOUT_SEC: f64 = 30.0;
const MAX_TIMEOUT_SEC: f64 = 24.0 * 3600.0;
const DEFAULT_OUTPUT_CAP: usize = 1024 * 1024;
/// How long past the deadline adde waits for the supervisor's report before stepping in.
const REPORT_GRACE: Duration = Duration::from_secs(10);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteInput {
    /// The environment (id, short id or name) from create_runtime_env.
    pub container_id: String,
    /// Where to write the code, relative to /workspace; folders are created. The extension
    /// picks the interpreter: .py, .js/.mjs/.cjs, .ts, .sh, .bash, .rb, .pl, .php, .R; any
    /// other file is made executable and run directly (a shebang works).
    pub filename: String,
    /// The file's content.
    pub code_content: String,
    /// Seconds before the run and everything it started are killed.
    #[serde(default = "default_timeout")]
    pub timeout_sec: f64,
    /// Command line to run instead of the interpreter chosen by extension, e.g.
    /// ["python3", "-X", "dev", "main.py"]. Run in /workspace; no shell involved.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Most bytes kept of each of stdout and stderr (the head and the tail are kept).
    #[serde(default = "default_output_cap")]
    pub max_output_bytes: usize,
}

fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT_SEC
}
fn default_output_cap() -> usize {
    DEFAULT_OUTPUT_CAP
}

#[derive(Serialize)]
pub struct ExecuteOutput {
    pub log: RunLog,
}

pub async fn execute_code_block(input: ExecuteInput) -> Result<ExecuteOutput> {
    let file = super::relative_path("filename", &input.filename)?;
    let (candidates, executable) = match input.command {
        Some(argv) => (vec![validate_argv(argv)?], false),
        None => interpreters(&file),
    };
    let run = Run {
        container: input.container_id,
        file: Some(FileSpec {
            path: file,
            len: input.code_content.len() as u64,
            executable,
        }),
        candidates,
        input: input.code_content.into_bytes(),
        stdin_len: 0,
        timeout_sec: input.timeout_sec,
        workdir: Workdir::Workspace,
        env: BTreeMap::new(),
        max_output_bytes: input.max_output_bytes,
    };
    Ok(ExecuteOutput {
        log: execute(run).await?,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandLine {
    /// A shell command line, run with `sh -c`.
    Shell(String),
    /// An argument vector, run directly with no shell.
    Argv(Vec<String>),
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandInput {
    /// The environment (id, short id or name).
    pub container_id: String,
    /// A string (run with `sh -c`) or an argument list (run directly, no shell).
    pub command: CommandLine,
    /// Seconds before the command and everything it started are killed.
    #[serde(default = "default_timeout")]
    pub timeout_sec: f64,
    /// Working directory; the environment's own when absent.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Extra environment variables for this command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Text given to the command on its standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Most bytes kept of each of stdout and stderr (the head and the tail are kept).
    #[serde(default = "default_output_cap")]
    pub max_output_bytes: usize,
}

pub async fn execute_command(input: CommandInput) -> Result<ExecuteOutput> {
    let argv = match input.command {
        CommandLine::Shell(line) if line.trim().is_empty() => {
            return Err(Error::invalid("command", "command is empty"))
        }
        CommandLine::Shell(line) => vec!["sh".to_string(), "-c".to_string(), line],
        CommandLine::Argv(argv) => validate_argv(argv)?,
    };
    let stdin = input.stdin.unwrap_or_default().into_bytes();
    let run = Run {
        container: input.container_id,
        file: None,
        candidates: vec![argv],
        stdin_len: stdin.len() as u64,
        input: stdin,
        timeout_sec: input.timeout_sec,
        workdir: input.workdir.map_or(Workdir::Default, Workdir::Given),
        env: input.env,
        max_output_bytes: input.max_output_bytes,
    };
    Ok(ExecuteOutput {
        log: execute(run).await?,
    })
}

fn validate_argv(argv: Vec<String>) -> Result<Vec<String>> {
    if argv.is_empty() || argv[0].is_empty() || argv.iter().any(|a| a.contains('\0')) {
        return Err(Error::invalid(
            "command",
            "command must be a non-empty list of arguments without NUL bytes",
        ));
    }
    Ok(argv)
}

/// One supervised execution, whatever asked for it.
pub struct Run {
    pub container: String,
    pub file: Option<FileSpec>,
    pub candidates: Vec<Vec<String>>,
    /// What goes on the helper's stdin: the file's bytes, then the program's stdin.
    pub input: Vec<u8>,
    pub stdin_len: u64,
    pub timeout_sec: f64,
    pub workdir: Workdir,
    pub env: BTreeMap<String, String>,
    pub max_output_bytes: usize,
}

/// Where a run starts.
pub enum Workdir {
    /// /workspace, where code files are written.
    Workspace,
    /// The environment's own working directory.
    Default,
    /// One the caller named; checked before the run.
    Given(String),
}

/// Checks the environment, runs the supervisor, and records the run on the host.
pub async fn execute(run: Run) -> Result<RunLog> {
    let container = super::required("container_id", "container_id", &run.container)?;
    if !(run.timeout_sec > 0.0 && run.timeout_sec <= MAX_TIMEOUT_SEC) {
        return Err(Error::invalid(
            "timeout_sec",
            format!("timeout_sec must be above 0 and at most {MAX_TIMEOUT_SEC} (24 hours)"),
        ));
    }
    if run.max_output_bytes < 2 {
        return Err(Error::invalid(
            "max_output_bytes",
            "max_output_bytes must be at least 2",
        ));
    }
    let mut env = vec!["PYTHONUNBUFFERED=1".to_string()];
    for (key, value) in &run.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(Error::invalid(
                "env",
                format!("{key:?} is not a valid variable name"),
            ));
        }
        env.push(format!("{key}={value}"));
    }
    let spec = RunSpec {
        run_id: new_run_id(),
        file: run.file.clone(),
        stdin_len: run.stdin_len,
        candidates: run.candidates,
        timeout_ms: (run.timeout_sec * 1000.0).ceil() as u64,
    };

    let engine = Engine::connect()?;
    let inspect = engine.inspect_managed(&container).await?;
    let id = inspect.id.clone().unwrap_or(container);
    let state = inspect.state.as_ref();
    if !state.and_then(|s| s.running).unwrap_or(false) {
        let status = state
            .and_then(|s| s.status)
            .map_or("stopped".into(), |s| s.to_string());
        return Err(Error::ContainerNotRunning { id, state: status });
    }
    let workdir = match run.workdir {
        Workdir::Workspace => WORKSPACE.to_string(),
        Workdir::Default => inspect
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| WORKSPACE.to_string()),
        Workdir::Given(dir) => {
            if engine.path_size(&id, &dir).await?.is_none() {
                return Err(Error::invalid(
                    "workdir",
                    format!("there is no folder {dir} in the environment"),
                ));
            }
            dir
        }
    };

    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let exec = Exec {
        id: &id,
        env,
        workdir: &workdir,
    };
    let report = run_supervised(&engine, &exec, &spec, &run.input, run.max_output_bytes).await?;
    let status = report.status;
    let filename = run.file.map(|f| f.path).unwrap_or_default();
    if let Some(failure) = status.error {
        return Err(match failure {
            HelperFailure::InterpreterNotFound { tried } if filename.is_empty() => {
                Error::CommandNotFound(tried.join(", "))
            }
            HelperFailure::InterpreterNotFound { tried } => Error::InterpreterNotFound {
                filename,
                tried: tried.join(", "),
            },
            HelperFailure::Setup { message } => Error::Helper(message),
        });
    }
    let stdout = report.stdout.finish();
    let stderr = report.stderr.finish();
    let log = RunLog {
        exit_code: status.exit_code,
        execution_time: format!("{:.2}s", status.duration_ms as f64 / 1000.0),
        duration_ms: status.duration_ms,
        run_id: spec.run_id,
        timed_out: status.timed_out,
        oom_killed: status.oom_killed,
        signal: status.signal,
        stdout_truncated: stdout.truncated,
        stderr_truncated: stderr.truncated,
        stdout_bytes: stdout.total_bytes,
        stderr_bytes: stderr.total_bytes,
        stdout: stdout.text,
        stderr: stderr.text,
        filename,
        command: status.command,
        container_id: id,
        started_at,
    };
    History::open().record(&log)?;
    Ok(log)
}

/// Where and how the supervisor is started.
struct Exec<'a> {
    id: &'a str,
    env: Vec<String>,
    workdir: &'a str,
}

struct Report {
    status: RunStatus,
    stdout: HeadTail,
    stderr: HeadTail,
}

/// Runs the supervisor and collects its frames. The supervisor enforces the deadline; adde
/// steps in (a kill request through a second exec) only if no report arrives well after it,
/// or when adde itself is interrupted.
async fn run_supervised(
    engine: &Engine,
    exec: &Exec<'_>,
    spec: &RunSpec,
    input: &[u8],
    cap: usize,
) -> Result<Report> {
    let id = exec.id;
    let spec_json = serde_json::to_string(spec).map_err(|e| Error::Internal(e.to_string()))?;
    let argv = Role::Run.exec_argv(&[&spec_json]);
    let mut output = engine
        .exec(id, argv, exec.env.clone(), exec.workdir, input)
        .await?;

    let mut report = Report {
        status: RunStatus::default(),
        stdout: HeadTail::new(cap),
        stderr: HeadTail::new(cap),
    };
    let mut decoder = FrameDecoder::default();
    let mut helper_stderr = Vec::new();
    let mut got_status = false;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(spec.timeout_ms) + REPORT_GRACE;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut overdue = false;
    // The status frame is the supervisor's last word: no need to wait for the stream's end.
    while !got_status {
        let chunk = tokio::select! {
            chunk = output.next() => chunk,
            _ = tokio::time::sleep_until(deadline), if !overdue => {
                overdue = true;
                kill_run(engine, id, &spec.run_id).await;
                continue;
            }
            _ = &mut interrupted => {
                kill_run(engine, id, &spec.run_id).await;
                return Err(Error::Interrupted);
            }
        };
        let Some(chunk) = chunk else { break };
        match chunk {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                decoder.push(&message)
            }
            Ok(LogOutput::StdErr { message }) => helper_stderr.extend_from_slice(&message),
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => return Err(Error::Helper(format!("the output stream broke: {e}"))),
        }
        while let Some((tag, payload)) = decoder.next_frame() {
            match tag {
                TAG_STDOUT => report.stdout.push(&payload),
                TAG_STDERR => report.stderr.push(&payload),
                TAG_STATUS => {
                    report.status = serde_json::from_slice(&payload)
                        .map_err(|e| Error::Helper(format!("unreadable status report: {e}")))?;
                    got_status = true;
                }
                _ => return Err(Error::Helper(format!("unknown frame type {tag}"))),
            }
        }
    }
    if !got_status {
        // The engine's own failures (e.g. a missing working directory) arrive unframed.
        helper_stderr.extend_from_slice(&decoder.into_pending());
        let said = String::from_utf8_lossy(&helper_stderr);
        return Err(Error::Helper(format!(
            "it ended without reporting{}{}",
            if said.trim().is_empty() { "" } else { ": " },
            said.trim()
        )));
    }
    Ok(report)
}

async fn kill_run(engine: &Engine, id: &str, run_id: &str) {
    let argv = Role::Kill.exec_argv(&[run_id]);
    let _ = tokio::time::timeout(Duration::from_secs(5), engine.exec_collect(id, argv, &[])).await;
}

/// The command lines to try for a file, by extension, and whether the file must be made
/// executable (files with no known extension run directly).
pub fn interpreters(file: &str) -> (Vec<Vec<String>>, bool) {
    let ext = std::path::Path::new(file)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    let with = |programs: &[&[&str]]| {
        programs
            .iter()
            .map(|p| {
                p.iter()
                    .map(|s| s.to_string())
                    .chain([file.to_string()])
                    .collect()
            })
            .collect()
    };
    let candidates = match ext {
        "py" => with(&[&["python3"], &["python"]]),
        "js" | "mjs" | "cjs" => with(&[&["node"]]),
        "ts" => with(&[&["tsx"], &["ts-node"], &["deno", "run"], &["bun", "run"]]),
        "sh" => with(&[&["sh"]]),
        "bash" => with(&[&["bash"]]),
        "rb" => with(&[&["ruby"]]),
        "pl" => with(&[&["perl"]]),
        "php" => with(&[&["php"]]),
        "R" | "r" => with(&[&["Rscript"]]),
        _ => return (vec![vec![format!("./{file}")]], true),
    };
    (candidates, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_picks_the_interpreter() {
        let (py, exe) = interpreters("a/b.py");
        assert_eq!(
            py,
            vec![vec!["python3", "a/b.py"], vec!["python", "a/b.py"]]
        );
        assert!(!exe);
        assert_eq!(interpreters("x.mjs").0, vec![vec!["node", "x.mjs"]]);
        assert_eq!(interpreters("x.R").0, vec![vec!["Rscript", "x.R"]]);
        assert_eq!(interpreters("run").0, vec![vec!["./run"]]);
        assert!(interpreters("tool.bin").1);
    }
}
