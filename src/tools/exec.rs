//! execute_code_block: one exec of adde's in-container supervisor, which receives the file on
//! stdin, runs it, enforces the deadline inside the container and reports how it ended.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::call::Event;
use crate::capture::{Captured, HeadTail};
use crate::engine::{
    is_gvisor, ContainerInfo, Engine, HelperTarget, Label, OutputChunk, Transport,
};
use crate::error::{Error, Result};
use crate::history::{History, RunError, RunLog};
use crate::ids::new_run_id;
use crate::refs;

use super::input::{env_vars, in_range, relative_path};
use crate::protocol::{
    FileSpec, FrameDecoder, HelperFailure, Role, RunSpec, RunStatus, TAG_STATUS, TAG_STDERR,
    TAG_STDOUT, WORKSPACE,
};

pub(super) const DEFAULT_TIMEOUT_SEC: f64 = 30.0;
pub(super) const MAX_TIMEOUT_SEC: f64 = 24.0 * 3600.0;
const DEFAULT_OUTPUT_CAP: usize = 1024 * 1024;
/// Most output kept per stream: the result must fit in memory and in a model's context.
pub(super) const MAX_OUTPUT_CAP: usize = 64 * 1024 * 1024;
/// How long the kill request may take.
const KILL_LIMIT: Duration = Duration::from_secs(5);
/// How long the sweep of a dead supervisor's leftovers may take.
const SWEEP_LIMIT: Duration = Duration::from_secs(10);

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

pub(super) fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT_SEC
}
pub(super) fn default_output_cap() -> usize {
    DEFAULT_OUTPUT_CAP
}

#[derive(Serialize)]
pub struct ExecuteOutput {
    pub log: RunLog,
}

pub async fn execute_code_block(engine: &Engine, input: ExecuteInput) -> Result<ExecuteOutput> {
    let file = relative_path("filename", &input.filename)?;
    let (candidates, executable) = match input.command {
        Some(argv) => (vec![validate_argv(argv)?], false),
        None => interpreters(&file),
    };
    // A file run directly must say how: a #! line, or a binary. Anything else (a .txt, say)
    // would be run by whatever the kernel or libc falls back to.
    let runs_itself = ["#!".as_bytes(), b"\x7fELF"]
        .iter()
        .any(|magic| input.code_content.as_bytes().starts_with(magic));
    if executable && !runs_itself {
        return Err(Error::invalid(
            "filename",
            format!("adde does not know how to run {file}: its extension has no interpreter and it has no #! line; use a known extension (.py, .sh, .js, …), start it with a #! line, or pass `command`"),
        ));
    }
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
        log: execute(engine, run).await?,
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

pub async fn execute_command(engine: &Engine, input: CommandInput) -> Result<ExecuteOutput> {
    let argv = input.command.into_argv()?;
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
        log: execute(engine, run).await?,
    })
}

impl CommandLine {
    /// The argument vector to run: a shell line goes to `sh -c`.
    pub fn into_argv(self) -> Result<Vec<String>> {
        match self {
            CommandLine::Shell(line) if line.trim().is_empty() => {
                Err(Error::invalid("command", "command is empty"))
            }
            CommandLine::Shell(line) => Ok(vec!["sh".to_string(), "-c".to_string(), line]),
            CommandLine::Argv(argv) => validate_argv(argv),
        }
    }
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
pub async fn execute(engine: &Engine, run: Run) -> Result<RunLog> {
    // adde's own watchdog counts from the start of the call, whatever the engine does.
    let call_started = Instant::now();
    let interrupted = interruption()?;
    let container = refs::container_id("container_id", &run.container)?;
    check_run_limits(run.timeout_sec, run.max_output_bytes)?;
    let mut env = vec!["PYTHONUNBUFFERED=1".to_string()];
    env.extend(env_vars("env", &run.env)?);
    let warm_shaped = warm_python(&run);
    let (inspect, workdir) = running_env(engine, &container, run.workdir).await?;
    let id = inspect.id.clone();
    let spec = RunSpec {
        run_id: new_run_id(),
        warm: warm_shaped && room_for_warm_python(&inspect),
        file: run.file.clone(),
        stdin_len: run.stdin_len,
        candidates: run.candidates,
        timeout_ms: (run.timeout_sec * 1000.0).ceil() as u64,
        background: false,
    };

    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let filename = run.file.map(|f| f.path).unwrap_or_default();
    let mut progress = Progress {
        log: RunLog {
            filename,
            ..RunLog::started(spec.run_id.clone(), id, started_at)
        },
        started: call_started,
        written: None,
        dirty: false,
    };
    let exec = Exec {
        target: inspect.helper_target(),
        env,
        workdir: &workdir,
        deadline: call_started + Duration::from_millis(spec.timeout_ms),
    };
    let report = run_supervised(
        engine,
        &exec,
        &spec,
        run.input,
        run.max_output_bytes,
        interrupted,
        &mut progress,
    )
    .await?;
    let mut log = progress.log;
    let filename = log.filename.clone();
    let (status, lost) = match report.ending {
        Ending::Reported(status) => (status, None),
        Ending::Lost(error) => {
            let elapsed = call_started.elapsed().as_millis() as u64;
            let status = RunStatus {
                exit_code: -1,
                duration_ms: elapsed,
                ..RunStatus::default()
            };
            (status, Some(error))
        }
    };
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
    let mut stderr = report.stderr.finish();
    // A model reading stderr learns why the program stopped.
    if let Some(reason) = kill_reason(&status, run.timeout_sec) {
        if !stderr.text.is_empty() && !stderr.text.ends_with('\n') {
            stderr.text.push('\n');
        }
        stderr.text.push_str(&reason);
    }
    log.exit_code = status.exit_code;
    set_duration(&mut log, status.duration_ms);
    log.timed_out = status.timed_out;
    log.oom_killed = status.oom_killed;
    log.signal = status.signal;
    log.command = status.command;
    log.warm = status.warm;
    log.transport = report.transport;
    log.in_progress = false;
    log.error = lost.as_ref().map(RunError::from);
    progress_output(&mut log, stdout, stderr);
    // A run without a result is recorded too: the history shows what happened to it.
    History::open().record(&log)?;
    match lost {
        Some(error) => Err(error),
        None => Ok(log),
    }
}

/// The least memory an environment needs for warm Python runs: the interpreter waiting for
/// the next run (about 10 MiB) counts against the environment's limit.
const WARM_MIN_MEMORY: i64 = 256 << 20;

/// Whether the agent may run this in a Python started ahead of it (see helper/warm.rs): a
/// `.py` file run by the interpreter its extension picks, with no stdin, unless the operator
/// turned warm runs off with `ADDE_WARM_PYTHON=off`.
fn warm_python(run: &Run) -> bool {
    std::env::var("ADDE_WARM_PYTHON").map_or(true, |v| v != "off")
        && run.stdin_len == 0
        && run.file.as_ref().is_some_and(|file| {
            file.path.ends_with(".py") && run.candidates == interpreters(&file.path).0
        })
}

/// Whether the environment has [`WARM_MIN_MEMORY`], or no memory limit.
fn room_for_warm_python(env: &ContainerInfo) -> bool {
    env.limits.memory_bytes <= 0 || env.limits.memory_bytes >= WARM_MIN_MEMORY
}

/// A run's `timeout_sec` and `max_output_bytes`, checked.
pub(super) fn check_run_limits(timeout_sec: f64, max_output_bytes: usize) -> Result<()> {
    if !(timeout_sec > 0.0 && timeout_sec <= MAX_TIMEOUT_SEC) {
        return Err(Error::invalid(
            "timeout_sec",
            format!("timeout_sec must be above 0 and at most {MAX_TIMEOUT_SEC} (24 hours)"),
        ));
    }
    in_range(
        "max_output_bytes",
        max_output_bytes as f64,
        2.0,
        MAX_OUTPUT_CAP as f64,
    )
    .map(drop)
}

/// Refuses an environment with no resident agent: code contexts and background processes
/// live in it.
pub fn require_agent(env: &ContainerInfo) -> Result<()> {
    if env.helper_target().agent {
        return Ok(());
    }
    Err(Error::NoAgent {
        id: env.id.clone(),
        reason: "it runs the image's own command (use_image_cmd), or was made by an older adde"
            .into(),
    })
}

/// What an agent that did not answer `Hello` in time means to the caller.
pub fn agent_silent(id: &str) -> Error {
    Error::NoAgent {
        id: id.to_string(),
        reason: "its agent did not answer within 2 s (wedged, or killed)".into(),
    }
}

/// The environment, which must be running, and the folder a run starts in there.
pub async fn running_env(
    engine: &Engine,
    container: &str,
    workdir: Workdir,
) -> Result<(ContainerInfo, String)> {
    let inspect = engine.inspect_environment(container).await?;
    if !is_running(&inspect) {
        let reason = why_not_running(&inspect);
        let id = inspect.id.clone();
        return Err(Error::ContainerNotRunning { id, reason });
    }
    let workdir = match workdir {
        Workdir::Workspace => WORKSPACE.to_string(),
        Workdir::Default => inspect
            .workdir
            .clone()
            .unwrap_or_else(|| WORKSPACE.to_string()),
        Workdir::Given(dir) => {
            if engine.path_size(&inspect.id, &dir).await?.is_none() {
                return Err(Error::invalid(
                    "workdir",
                    format!("there is no folder {dir} in the environment"),
                ));
            }
            dir
        }
    };
    Ok((inspect, workdir))
}

/// Completes when adde is asked to stop: Ctrl-C (SIGINT), a closed terminal (SIGHUP) or a
/// cancelled CI job (SIGTERM), or when the caller cancels the call (an MCP client's
/// `notifications/cancelled`). Listening replaces the default action (dying with no JSON and
/// the run going on), so it starts with the call.
pub(super) fn interruption() -> Result<impl std::future::Future<Output = ()>> {
    let cancelled = crate::call::cancelled();
    use tokio::signal::unix::{signal, SignalKind};
    let listen =
        |kind| signal(kind).map_err(|e| Error::Internal(format!("cannot listen for signals: {e}")));
    let mut interrupt = listen(SignalKind::interrupt())?;
    let mut terminate = listen(SignalKind::terminate())?;
    let mut hangup = listen(SignalKind::hangup())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
            _ = cancelled => {}
        }
    })
}

/// A run's record while it goes on, so get_container_logs shows what it printed so far:
/// written once the run has gone on for [`FIRST_RECORD_AFTER`], then at most every second
/// as output arrives. Best effort: the final record reports a state directory that cannot be
/// written.
struct Progress {
    log: RunLog,
    started: Instant,
    written: Option<Instant>,
    /// Output arrived since the last write.
    dirty: bool,
}

/// How often the record of a run in progress is rewritten.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How long a run goes on before its first record. A shorter run has one record, written
/// when it ends: each record replaced frees an inode, and on ext4 without a journal every
/// new file then scans past the inodes freed in the last 30 seconds (`recently_deleted`),
/// which cost a third of `adde serve`'s CPU at 450 runs a second.
const FIRST_RECORD_AFTER: Duration = Duration::from_millis(100);

impl Progress {
    /// Writes the record when it is due; otherwise notes that it will be.
    fn write(&mut self, stdout: &HeadTail, stderr: &HeadTail, transport: Transport) {
        if Instant::now() < self.due() {
            self.dirty = true;
            return;
        }
        self.dirty = false;
        self.log.transport = transport;
        set_duration(&mut self.log, self.started.elapsed().as_millis() as u64);
        progress_output(&mut self.log, stdout.snapshot(), stderr.snapshot());
        let _ = History::open().record(&self.log);
        self.written = Some(Instant::now());
    }

    /// When output that arrived too soon after the last write is due to be written.
    fn due(&self) -> Instant {
        self.written
            .map_or(self.started + FIRST_RECORD_AFTER, |t| t + PROGRESS_EVERY)
    }
}

/// A run's duration, in milliseconds and in ADDE's format ("0.09s").
pub(super) fn set_duration(log: &mut RunLog, ms: u64) {
    log.duration_ms = ms;
    log.execution_time = execution_time(ms);
}

/// A duration in ADDE's format: seconds with two decimals ("0.09s").
pub fn execution_time(ms: u64) -> String {
    format!("{:.2}s", ms as f64 / 1000.0)
}

/// Puts captured output into a run's record.
pub(super) fn progress_output(log: &mut RunLog, stdout: Captured, stderr: Captured) {
    log.stdout_truncated = stdout.truncated;
    log.stderr_truncated = stderr.truncated;
    log.stdout_bytes = stdout.total_bytes;
    log.stderr_bytes = stderr.total_bytes;
    log.stdout = stdout.text;
    log.stderr = stderr.text;
}

/// The line adde adds to stderr when it (or the kernel, for memory) stopped the run.
fn kill_reason(status: &RunStatus, timeout_sec: f64) -> Option<String> {
    if status.timed_out {
        Some(format!(
            "[adde: killed after the {timeout_sec} s timeout, with every process it started]\n"
        ))
    } else if status.oom_killed {
        Some("[adde: a process was killed for going over the environment's memory limit]\n".into())
    } else {
        None
    }
}

pub(super) fn is_running(container: &ContainerInfo) -> bool {
    container.state.running && !container.state.paused
}

/// What the engine says about an environment that is not running, and how to recover.
pub(super) fn why_not_running(container: &ContainerInfo) -> String {
    let state = &container.state;
    let status = if state.status.is_empty() {
        "gone".to_string()
    } else {
        state.status.clone()
    };
    if status == "paused" {
        return "it is paused (docker pause); unpause it with `docker unpause`".into();
    }
    let code = state.exit_code.unwrap_or(0);
    let oom_killed = state.oom_killed;
    let what = match (status.as_str(), code) {
        // gVisor's sandbox is one process to the host's OOM killer: any run out of memory
        // ends the whole environment.
        ("exited" | "dead", 137) if oom_killed && is_gvisor(&container.runtime) => format!(
            "it has {status}: a run ran out of memory, and under gVisor (runtime {}) the OOM \
             killer ends the whole sandbox, not one process (exit code 137). Code that needs \
             more memory needs a larger `memory` limit",
            container.runtime
        ),
        ("exited" | "dead", 137) if oom_killed => format!(
            "it has {status}: the OOM killer killed its main process (exit code 137). Code that \
             raises the OOM score of adde's own processes can do that; code that just needs \
             more memory needs a larger `memory` limit"
        ),
        ("exited" | "dead", 0) => {
            format!("it has {status} (exit code 0: stopped, e.g. by docker stop)")
        }
        ("exited" | "dead", 137) => {
            format!("it has {status} (exit code 137: killed, e.g. by docker kill)")
        }
        ("exited" | "dead", code) => format!("it has {status} (exit code {code})"),
        (other, _) => format!("it is {other}"),
    };
    let session = container.labels.get(Label::Session);
    match session {
        Some(session) => format!(
            "{what}. Call create_runtime_env with session {session:?} again: it restarts it"
        ),
        None => format!("{what}. Create a new one with create_runtime_env"),
    }
}

/// Where and how the supervisor is started, and when its run must end.
struct Exec<'a> {
    target: HelperTarget,
    env: Vec<String>,
    workdir: &'a str,
    deadline: Instant,
}

struct Report {
    ending: Ending,
    transport: Transport,
    stdout: HeadTail,
    stderr: HeadTail,
}

enum Ending {
    /// The supervisor's status frame.
    Reported(RunStatus),
    /// No report will come: why.
    Lost(Error),
}

/// Runs the supervisor and collects its frames. The supervisor enforces the deadline; adde
/// watches it from the host (the environment may be paused, stopped, or the supervisor gone)
/// and steps in when adde itself is interrupted.
async fn run_supervised(
    engine: &Engine,
    exec: &Exec<'_>,
    spec: &RunSpec,
    input: Vec<u8>,
    cap: usize,
    interrupted: impl std::future::Future<Output = ()>,
    progress: &mut Progress,
) -> Result<Report> {
    let target = &exec.target;
    let spec_json = serde_json::to_string(spec).map_err(|e| Error::Internal(e.to_string()))?;
    let (mut output, transport) = engine
        .run_helper(
            target,
            Role::Run,
            &[&spec_json],
            exec.env.clone(),
            exec.workdir,
            input,
        )
        .await?;

    let mut stdout = HeadTail::new(cap);
    let mut stderr = HeadTail::new(cap);
    // The first record is due once the run has gone on for a while (see `Progress`).
    progress.dirty = true;
    let mut decoder = FrameDecoder::default();
    let mut helper_stderr = Vec::new();
    let mut got_frames = false;
    let mut watch = Overdue::new(exec.deadline);
    tokio::pin!(interrupted);
    let ending = 'relay: loop {
        let chunk = tokio::select! {
            chunk = output.next() => chunk,
            _ = tokio::time::sleep_until(progress.due()), if progress.dirty => {
                progress.write(&stdout, &stderr, transport);
                continue;
            }
            _ = tokio::time::sleep_until(watch.next_check) => {
                match watch.check(engine, target, &spec.run_id).await {
                    Some(error) => break Ending::Lost(error),
                    None => continue,
                }
            }
            _ = &mut interrupted => {
                kill_run(engine, target, &spec.run_id).await;
                // Recorded as lost, with what it printed: the history says what happened.
                break Ending::Lost(Error::Interrupted);
            }
        };
        let Some(chunk) = chunk else {
            // The engine's own failures (e.g. a missing working directory) arrive unframed.
            helper_stderr.extend_from_slice(&decoder.into_pending());
            let said = String::from_utf8_lossy(&helper_stderr).trim().to_string();
            if !got_frames && !said.is_empty() {
                return Err(Error::Helper(format!("it could not start: {said}")));
            }
            break Ending::Lost(after_silent_end(engine, target, &spec.run_id, &said).await);
        };
        match chunk {
            Ok(OutputChunk::Stdout(bytes)) => decoder.push(&bytes),
            Ok(OutputChunk::Stderr(bytes)) => helper_stderr.extend_from_slice(&bytes),
            // The agent's own refusals, as they are.
            Err(e @ (Error::Helper(_) | Error::EnvironmentAltered(_))) => return Err(e),
            Err(e) => return Err(Error::Helper(format!("the output stream broke: {e}"))),
        }
        if decoder.oversized() {
            kill_run(engine, target, &spec.run_id).await;
            return Err(Error::Helper(
                "the supervisor's output holds a frame over 1 MiB: it is corrupt".into(),
            ));
        }
        while let Some((tag, payload)) = decoder.next_frame() {
            got_frames = true;
            match tag {
                TAG_STDOUT | TAG_STDERR => {
                    crate::call::emit(|| Event::Output {
                        stderr: tag == TAG_STDERR,
                        bytes: payload.clone(),
                    });
                    match tag {
                        TAG_STDOUT => stdout.push(&payload),
                        _ => stderr.push(&payload),
                    }
                }
                // The status frame is the supervisor's last word: no need to wait for the end.
                TAG_STATUS => {
                    let status = serde_json::from_slice(&payload)
                        .map_err(|e| Error::Helper(format!("unreadable status report: {e}")))?;
                    break 'relay Ending::Reported(status);
                }
                _ => return Err(Error::Helper(format!("unknown frame type {tag}"))),
            }
        }
        progress.write(&stdout, &stderr, transport);
    };
    Ok(Report {
        ending,
        transport,
        stdout,
        stderr,
    })
}

/// How long past the deadline the supervisor's report may take before adde looks into it
/// (the supervisor drains output for up to 2 s after the kill).
const REPORT_GRACE: Duration = Duration::from_secs(4);
/// How long a supervisor told to stop its run may take to report before adde gives up on it.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// How often adde checks on the environment once the deadline has passed.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// adde's watch over a run whose deadline has passed and whose report has not come.
struct Overdue {
    deadline: Instant,
    next_check: Instant,
    kill_sent: Option<Instant>,
}

impl Overdue {
    fn new(deadline: Instant) -> Overdue {
        Overdue {
            deadline,
            next_check: deadline + CHECK_EVERY,
            kill_sent: None,
        }
    }

    /// Checks on the environment: a paused or stopped one cannot report, a running one gets
    /// a kill request after REPORT_GRACE, and KILL_GRACE after that its run is given up.
    async fn check(
        &mut self,
        engine: &Engine,
        target: &HelperTarget,
        run_id: &str,
    ) -> Option<Error> {
        let run_id = run_id.to_string();
        match engine.inspect(&target.id).await {
            Ok(c) if c.state.paused => return Some(Error::EnvironmentPaused { run_id }),
            Ok(c) if !is_running(&c) => {
                let reason = why_not_running(&c);
                return Some(Error::EnvironmentDied { run_id, reason });
            }
            Err(Error::ContainerNotFound(_)) => return Some(environment_removed(run_id)),
            _ => {}
        }
        let now = Instant::now();
        match self.kill_sent {
            None if now >= self.deadline + REPORT_GRACE => {
                kill_run(engine, target, &run_id).await;
                self.kill_sent = Some(now);
            }
            Some(sent) if now >= sent + KILL_GRACE => {
                let swept = sweep(engine, target, &run_id).await;
                let cause = format!(
                    "its supervisor did not report {} s past the deadline, even when told to \
                     stop the run, and was stopped{}",
                    (now - self.deadline).as_secs(),
                    swept.err().map_or(String::new(), |e| format!(" ({e})"))
                );
                return Some(Error::SupervisorDied { run_id, cause });
            }
            _ => {}
        }
        self.next_check = Instant::now() + CHECK_EVERY;
        None
    }
}

pub(super) fn environment_removed(run_id: String) -> Error {
    Error::EnvironmentDied {
        run_id,
        reason: "it was removed (cleanup_env or docker rm). Create a new one with \
                 create_runtime_env"
            .into(),
    }
}

/// The supervisor's output ended without its report: it was killed (by the code, e.g.
/// `kill -9 $PPID` or `kill -9 -1`, or by the OOM killer), or the environment stopped.
/// What the run left behind is stopped, and the error says which happened.
async fn after_silent_end(
    engine: &Engine,
    target: &HelperTarget,
    run_id: &str,
    said: &str,
) -> Error {
    let run_id = run_id.to_string();
    let swept = sweep(engine, target, "").await;
    // The engine may take a moment to notice that the container itself is gone.
    let settle_until = Instant::now()
        + if swept.is_ok() {
            Duration::ZERO
        } else {
            KILL_GRACE
        };
    loop {
        match engine.inspect(&target.id).await {
            Ok(c) if !is_running(&c) => {
                let reason = why_not_running(&c);
                return Error::EnvironmentDied { run_id, reason };
            }
            Err(Error::ContainerNotFound(_)) => return environment_removed(run_id),
            _ if Instant::now() >= settle_until => break,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut cause = "its supervisor ended without reporting: it was killed, by the code (e.g. \
                     `kill -9 $PPID` or `kill -9 -1`) or by the OOM killer"
        .to_string();
    if !said.is_empty() {
        cause.push_str(&format!(" (it said: {said})"));
    }
    if let Err(e) = swept {
        cause.push_str(&format!("; stopping what it left failed: {e}"));
    }
    Error::SupervisorDied { run_id, cause }
}

async fn kill_run(engine: &Engine, target: &HelperTarget, run_id: &str) {
    let _ = engine
        .run_helper_collect(target, Role::Kill, &[run_id], Vec::new(), KILL_LIMIT)
        .await;
}

/// Stops what runs whose supervisor died left behind (and run `run_id`, when given).
async fn sweep(engine: &Engine, target: &HelperTarget, run_id: &str) -> Result<()> {
    let (stdout, stderr) = engine
        .run_helper_collect(target, Role::Sweep, &[run_id], Vec::new(), SWEEP_LIMIT)
        .await?;
    match String::from_utf8_lossy(&stdout).trim().parse::<u64>() {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Helper(format!(
            "its sweep failed: {}",
            String::from_utf8_lossy(&stderr).trim()
        ))),
    }
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
