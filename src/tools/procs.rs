//! Background processes: programs that outlive the call that started them (a dev server, a
//! watcher), kept by the environment's resident agent. Each runs under adde's supervisor like
//! an ordinary run (it owns what it starts, an optional deadline kills its whole tree); the
//! agent keeps the last `max_output_bytes` of each stream and the exit status until asked.
//! An ordinary run's `nohup … &` is still killed when its call returns: only these outlive it.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::{ContainerInfo, Engine};
use crate::error::{Error, Result};
use crate::ids::new_run_id;
use crate::protocol::{
    HelperFailure, ProcRefusal, ProcReply, ProcRequest, ProcState, RunSpec, StreamRead,
};
use crate::refs;

use super::exec::{agent_silent, execution_time, require_agent, running_env, CommandLine, Workdir};
use super::input::{env_vars, in_range};

const DEFAULT_OUTPUT_CAP: usize = 1024 * 1024;
/// Most output kept per stream: it lives in PID 1's memory, counted against the environment's.
const MAX_OUTPUT_CAP: usize = 16 * 1024 * 1024;
const DEFAULT_READ_BYTES: usize = 64 * 1024;
const MAX_READ_BYTES: usize = 4 * 1024 * 1024;
const DEFAULT_WAIT_SEC: f64 = 30.0;
const MAX_WAIT_SEC: f64 = 3600.0;
const MAX_TIMEOUT_SEC: f64 = 7.0 * 24.0 * 3600.0;
/// How long the agent may take past a wait's own time to answer.
const ANSWER_GRACE: Duration = Duration::from_secs(10);

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartProcessInput {
    /// The environment (id, short id or name).
    pub container_id: String,
    /// A string (run with `sh -c`) or an argument list (run directly, no shell).
    pub command: CommandLine,
    /// Working directory; the environment's own when absent.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Extra environment variables for this process.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds after which the process and everything it started are killed. None by default:
    /// it runs until it exits, is signalled, or the environment is removed.
    #[serde(default)]
    pub timeout_sec: Option<f64>,
    /// Most bytes kept of each of stdout and stderr: the latest; older output is dropped and
    /// reads say how many bytes they missed.
    #[serde(default = "default_output_cap")]
    pub max_output_bytes: usize,
}

fn default_output_cap() -> usize {
    DEFAULT_OUTPUT_CAP
}

/// A background process, as every process tool reports it.
#[derive(Serialize, Debug)]
pub struct ProcessInfo {
    pub process_id: String,
    pub container_id: String,
    /// The command line as asked for.
    pub command: Vec<String>,
    /// "running" or "exited".
    pub state: &'static str,
    /// UTC, RFC 3339.
    pub started_at: String,
    /// Once exited: as a run's (124 after its timeout, 128+N for a signal).
    pub exit_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// Once exited, how long it ran ("12.30s").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_time: Option<String>,
    /// Set when adde lost track of it (its supervisor was killed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes written so far on each stream, kept or not.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

pub async fn start_process(engine: &Engine, input: StartProcessInput) -> Result<ProcessInfo> {
    let container = refs::container_id("container_id", &input.container_id)?;
    let argv = input.command.into_argv()?;
    let timeout_ms = match input.timeout_sec {
        None => 0,
        Some(sec) => {
            in_range("timeout_sec", sec, 0.001, MAX_TIMEOUT_SEC)?;
            (sec * 1000.0).ceil() as u64
        }
    };
    in_range(
        "max_output_bytes",
        input.max_output_bytes as f64,
        2.0,
        MAX_OUTPUT_CAP as f64,
    )?;
    let mut env = vec!["PYTHONUNBUFFERED=1".to_string()];
    env.extend(env_vars("env", &input.env)?);
    let workdir = input.workdir.map_or(Workdir::Default, Workdir::Given);
    let (inspect, workdir) = running_env(engine, &container, workdir).await?;
    let max_running = crate::policy::current()?
        .policy
        .as_ref()
        .and_then(|p| p.limits.max_processes);
    let request = ProcRequest::Start {
        spec: RunSpec {
            run_id: new_run_id(),
            file: None,
            stdin_len: 0,
            candidates: vec![argv],
            timeout_ms,
            background: true,
            warm: false,
        },
        env,
        workdir,
        max_output_bytes: input.max_output_bytes as u64,
        max_running,
    };
    let state = expect_state(ask(engine, &inspect, &request, "").await?)?;
    match state.status.as_ref().and_then(|s| s.error.clone()) {
        Some(HelperFailure::InterpreterNotFound { tried }) => {
            Err(Error::CommandNotFound(tried.join(", ")))
        }
        Some(HelperFailure::Setup { message }) => Err(Error::Helper(message)),
        None => Ok(info(state, &inspect.id)),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadOutputInput {
    /// The environment (id, short id or name).
    pub container_id: String,
    /// The process_id start_process returned.
    pub process_id: String,
    /// Where to start reading stdout: 0, or the `stdout_offset` of the previous read.
    #[serde(default)]
    pub stdout_offset: u64,
    /// Where to start reading stderr: 0, or the `stderr_offset` of the previous read.
    #[serde(default)]
    pub stderr_offset: u64,
    /// Most bytes returned of each stream; `more` says when there is more.
    #[serde(default = "default_read_bytes")]
    pub max_bytes: usize,
}

fn default_read_bytes() -> usize {
    DEFAULT_READ_BYTES
}

#[derive(Serialize)]
pub struct ProcessOutput {
    #[serde(flatten)]
    pub process: ProcessInfo,
    pub stdout: String,
    pub stderr: String,
    /// Pass these to the next read to get only what is new.
    pub stdout_offset: u64,
    pub stderr_offset: u64,
    /// Bytes before what is returned that were dropped to keep the output bounded.
    #[serde(skip_serializing_if = "is_zero")]
    pub stdout_skipped: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub stderr_skipped: u64,
    /// More output is there past `max_bytes`: read again.
    pub more: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub async fn read_process_output(engine: &Engine, input: ReadOutputInput) -> Result<ProcessOutput> {
    in_range(
        "max_bytes",
        input.max_bytes as f64,
        1024.0,
        MAX_READ_BYTES as f64,
    )?;
    let (env, process_id) = target(engine, &input.container_id, &input.process_id).await?;
    let request = ProcRequest::Read {
        id: process_id.clone(),
        stdout_offset: input.stdout_offset,
        stderr_offset: input.stderr_offset,
        max_bytes: input.max_bytes as u64,
    };
    match ask(engine, &env, &request, &process_id).await? {
        ProcReply::Output(output) => {
            let (stdout, stderr): (StreamRead, StreamRead) = (output.stdout, output.stderr);
            Ok(ProcessOutput {
                process: info(output.state, &env.id),
                more: stdout.more || stderr.more,
                stdout: stdout.text,
                stderr: stderr.text,
                stdout_offset: stdout.offset,
                stderr_offset: stderr.offset,
                stdout_skipped: stdout.skipped,
                stderr_skipped: stderr.skipped,
            })
        }
        other => Err(unexpected(&other)),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalInput {
    /// The environment (id, short id or name).
    pub container_id: String,
    /// The process_id start_process returned.
    pub process_id: String,
    /// The signal, sent to the process's group (a shell and what it started): SIGTERM,
    /// SIGINT, SIGHUP, SIGKILL, SIGQUIT, SIGUSR1, SIGUSR2, SIGSTOP or SIGCONT ("TERM" or 15
    /// work too).
    #[serde(default = "default_signal")]
    pub signal: String,
}

fn default_signal() -> String {
    "SIGTERM".into()
}

#[derive(Serialize)]
pub struct SignalOutput {
    /// Whether the signal was sent: false when the process had already exited.
    pub sent: bool,
    /// The process as it was when the signal went; wait_process tells when it ends.
    #[serde(flatten)]
    pub process: ProcessInfo,
}

const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("TERM", libc::SIGTERM),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
];

/// A signal by name ("SIGTERM", "term") or number, among those a caller may send.
fn parse_signal(text: &str) -> Result<i32> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(n, number)| *n == name || name.parse() == Ok(*number))
        .map(|(_, number)| *number)
        .ok_or_else(|| {
            let names: Vec<String> = SIGNALS.iter().map(|(n, _)| format!("SIG{n}")).collect();
            Error::invalid(
                "signal",
                format!(
                    "{text:?} is not a signal adde sends; use one of {}",
                    names.join(", ")
                ),
            )
        })
}

pub async fn signal_process(engine: &Engine, input: SignalInput) -> Result<SignalOutput> {
    let signal = parse_signal(&input.signal)?;
    let (env, process_id) = target(engine, &input.container_id, &input.process_id).await?;
    let request = ProcRequest::Signal {
        id: process_id.clone(),
        signal,
    };
    let state = expect_state(ask(engine, &env, &request, &process_id).await?)?;
    Ok(SignalOutput {
        sent: state.status.is_none(),
        process: info(state, &env.id),
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitInput {
    /// The environment (id, short id or name).
    pub container_id: String,
    /// The process_id start_process returned.
    pub process_id: String,
    /// Seconds to wait for the process to exit; it is still "running" when they pass.
    #[serde(default = "default_wait")]
    pub timeout_sec: f64,
}

fn default_wait() -> f64 {
    DEFAULT_WAIT_SEC
}

pub async fn wait_process(engine: &Engine, input: WaitInput) -> Result<ProcessInfo> {
    let wait = in_range("timeout_sec", input.timeout_sec, 0.0, MAX_WAIT_SEC)?;
    let (env, process_id) = target(engine, &input.container_id, &input.process_id).await?;
    let timeout_ms = (wait * 1000.0).ceil() as u64;
    let request = ProcRequest::Wait {
        id: process_id.clone(),
        timeout_ms,
    };
    let limit = Duration::from_millis(timeout_ms) + ANSWER_GRACE;
    let reply = tokio::time::timeout(limit, ask(engine, &env, &request, &process_id))
        .await
        .map_err(|_| Error::Helper("the environment's agent did not answer the wait".into()))??;
    Ok(info(expect_state(reply)?, &env.id))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListProcessesInput {
    /// The environment (id, short id or name).
    pub container_id: String,
}

#[derive(Serialize)]
pub struct ProcessList {
    /// Oldest first; running ones, and the last ones that exited.
    pub processes: Vec<ProcessInfo>,
}

pub async fn list_processes(engine: &Engine, input: ListProcessesInput) -> Result<ProcessList> {
    let container = refs::container_id("container_id", &input.container_id)?;
    let (inspect, _) = running_env(engine, &container, Workdir::Default).await?;
    match ask(engine, &inspect, &ProcRequest::List, "").await? {
        ProcReply::List(states) => Ok(ProcessList {
            processes: states.into_iter().map(|s| info(s, &inspect.id)).collect(),
        }),
        other => Err(unexpected(&other)),
    }
}

/// The running environment and the checked process id.
async fn target(
    engine: &Engine,
    container: &str,
    process_id: &str,
) -> Result<(ContainerInfo, String)> {
    let container = refs::container_id("container_id", container)?;
    let process_id = refs::run_id("process_id", process_id)?;
    let (env, _) = running_env(engine, &container, Workdir::Default).await?;
    Ok((env, process_id))
}

/// Sends a request to the environment's agent; refusals become adde's errors.
async fn ask(
    engine: &Engine,
    env: &ContainerInfo,
    request: &ProcRequest,
    process_id: &str,
) -> Result<ProcReply> {
    let id = &env.id;
    require_agent(env)?;
    let reply = engine
        .agent_call(id, request)
        .await?
        .ok_or_else(|| agent_silent(id))?;
    match reply {
        ProcReply::Refused(ProcRefusal::NotFound) => Err(Error::ProcessNotFound {
            container: id.to_string(),
            process_id: process_id.to_string(),
        }),
        ProcReply::Refused(ProcRefusal::TooMany {
            running,
            limit,
            by_policy: true,
        }) => Err(Error::PolicyDenied {
            field: "start_process".into(),
            value: running.to_string(),
            rule: "limits.max_processes".into(),
            message: format!(
                "the environment already runs {running} background processes; the policy allows {limit}"
            ),
        }),
        ProcReply::Refused(ProcRefusal::TooMany { limit, .. }) => {
            Err(Error::TooManyProcesses { limit })
        }
        ProcReply::Refused(ProcRefusal::Failed(message)) => Err(Error::Helper(message)),
        reply => Ok(reply),
    }
}

fn expect_state(reply: ProcReply) -> Result<ProcState> {
    match reply {
        ProcReply::State(state) => Ok(state),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(reply: &ProcReply) -> Error {
    Error::Helper(format!("the agent answered out of turn: {reply:?}"))
}

fn info(state: ProcState, container: &str) -> ProcessInfo {
    let started_at = chrono::DateTime::from_timestamp_millis(state.started_at_ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let status = state.status;
    ProcessInfo {
        process_id: state.id,
        container_id: container.to_string(),
        command: state.command,
        state: if status.is_some() {
            "exited"
        } else {
            "running"
        },
        started_at,
        exit_code: status.as_ref().map(|s| s.exit_code),
        signal: status.as_ref().and_then(|s| s.signal.clone()),
        timed_out: status.as_ref().is_some_and(|s| s.timed_out),
        oom_killed: status.as_ref().is_some_and(|s| s.oom_killed),
        execution_time: status
            .as_ref()
            .filter(|s| s.error.is_none())
            .map(|s| execution_time(s.duration_ms)),
        error: status.and_then(|s| match s.error {
            Some(HelperFailure::Setup { message }) => Some(message),
            _ => None,
        }),
        stdout_bytes: state.stdout_bytes,
        stderr_bytes: state.stderr_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number_and_nothing_else() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("kill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("2").unwrap(), libc::SIGINT);
        for bad in ["SIGSEGV", "0", "-1", "", "TERM; rm"] {
            assert_eq!(parse_signal(bad).unwrap_err().code(), "invalid_argument");
        }
    }
}
