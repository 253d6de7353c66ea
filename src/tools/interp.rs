//! The code interpreter: `run_code` runs a cell in a persistent context of an environment
//! (Python globals and imports, or a shell's directory, variables and functions, kept between
//! calls), and `context_create`, `context_list`, `context_reset`, `context_close` manage the
//! contexts. The environment's resident agent keeps them (helper/contexts.rs and
//! helper/context_host.rs); the cell's timeout is enforced there.

use futures_util::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::{Duration, Instant};

use super::exec::{
    agent_silent, check_run_limits, default_output_cap, default_timeout, environment_removed,
    interruption, is_running, progress_output, require_agent, running_env, set_duration,
    why_not_running, Workdir,
};
use super::input::{container_path, in_range};
use crate::call::Event;
use crate::capture::HeadTail;
use crate::engine::{ContextEvent, Engine, Transport};
use crate::error::{Error, Result};
use crate::history::{History, RunLog};
use crate::ids::new_run_id;
use crate::protocol::{
    Cell, CellOutcome, ContextInfo, ContextRefusal, ContextReply, ContextRequest, Language,
};
use crate::refs;

const DEFAULT_CONTEXT: &str = "default";
const DEFAULT_RESULT_CAP: u64 = 4 * 1024 * 1024;
const DEFAULT_CELL_CAP: u64 = 16 * 1024 * 1024;
const MAX_RESULT_CAP: u64 = 64 * 1024 * 1024;
/// How often adde checks, while a cell runs or waits, that its environment still runs.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long an interrupted call waits for the cell's reply (its grace, and some slack).
const CANCEL_WAIT: Duration = Duration::from_secs(8);

fn default_context() -> String {
    DEFAULT_CONTEXT.to_string()
}
fn default_language() -> Language {
    Language::Python
}
fn default_result_cap() -> u64 {
    DEFAULT_RESULT_CAP
}
fn default_cell_cap() -> u64 {
    DEFAULT_CELL_CAP
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunCodeInput {
    /// The environment (id, short id or name).
    pub container_id: String,
    /// The cell: Python source, or shell commands.
    pub code: String,
    /// "python" (the default) or "bash" (sh where the image has no bash).
    #[serde(default = "default_language")]
    pub language: Language,
    /// The context to run in; made on first use. Several contexts may live side by side.
    #[serde(default = "default_context")]
    pub context: String,
    /// Seconds before the cell is interrupted (KeyboardInterrupt, or SIGINT to the shell's
    /// job); a cell that does not stop 2 s later is killed with its context, which restarts.
    #[serde(default = "default_timeout")]
    pub timeout_sec: f64,
    /// Most bytes kept of each of stdout and stderr (the head and the tail are kept).
    #[serde(default = "default_output_cap")]
    pub max_output_bytes: usize,
    /// Most bytes of one rich output (an image, a table); larger ones are left out and said so.
    #[serde(default = "default_result_cap")]
    pub max_result_bytes: u64,
    /// Most bytes of all of the cell's rich outputs together.
    #[serde(default = "default_cell_cap")]
    pub max_cell_bytes: u64,
    /// Matplotlib figures as SVG too (besides PNG).
    #[serde(default)]
    pub svg: bool,
    /// Write each rich output (image, HTML, …) as a file in this folder of the environment
    /// (relative to /workspace, or absolute) and return its path instead of its data.
    #[serde(default)]
    pub output_dir: Option<String>,
}

/// One cell's result.
#[derive(Serialize)]
pub struct CodeResult {
    pub run_id: String,
    pub container_id: String,
    pub context: String,
    pub language: Language,
    pub interpreter: String,
    pub execution_count: u64,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// Rich outputs in display order: `{"kind", "data": {MIME type: value}, "files"?,
    /// "omitted"?}`.
    pub results: Vec<Value>,
    pub results_truncated: bool,
    /// Python: `{"name", "value", "traceback"}`; shell: `{"name": "ExitStatus", "value"}`.
    pub error: Option<Value>,
    /// Shell cells: the status of the cell's last command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    pub interrupted: bool,
    pub context_restarted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_reason: Option<String>,
    pub duration_ms: u64,
    pub started_at: String,
}

pub async fn run_code(engine: &Engine, input: RunCodeInput) -> Result<CodeResult> {
    let interrupted = interruption()?;
    let container = refs::container_id("container_id", &input.container_id)?;
    let context = context_name(&input.context)?;
    check_run_limits(input.timeout_sec, input.max_output_bytes)?;
    let cap = |field, value: u64| in_range(field, value as f64, 1024.0, MAX_RESULT_CAP as f64);
    cap("max_result_bytes", input.max_result_bytes)?;
    cap("max_cell_bytes", input.max_cell_bytes)?;
    if input.language == Language::Bash && input.code.contains('\0') {
        return Err(Error::invalid(
            "code",
            "a shell cell cannot hold a NUL byte",
        ));
    }
    let output_dir = input
        .output_dir
        .as_deref()
        .map(|dir| container_path("output_dir", dir))
        .transpose()?;
    let (id, workdir) = reach(engine, &container).await?;
    let cell = Cell {
        language: input.language,
        code: input.code,
        workdir,
        timeout_ms: (input.timeout_sec * 1000.0).ceil() as u64,
        max_output_bytes: input.max_result_bytes,
        max_results_bytes: input.max_cell_bytes,
        svg: input.svg,
        output_dir,
    };
    let run_id = new_run_id();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let call_started = Instant::now();
    let request = ContextRequest::Run {
        context: context.clone(),
        cell,
    };
    let Some((mut events, cancel)) = engine.context_call(&id, &request).await? else {
        return Err(agent_silent(&id));
    };
    let mut stdout = HeadTail::new(input.max_output_bytes);
    let mut stderr = HeadTail::new(input.max_output_bytes);
    let mut cancel = Some(cancel);
    let mut give_up: Option<Instant> = None;
    let mut next_check = Instant::now() + CHECK_EVERY;
    tokio::pin!(interrupted);
    let ending: Result<CellOutcome> = loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut interrupted, if cancel.is_some() => {
                if let Some(cancel) = cancel.take() {
                    let _ = cancel.send(());
                }
                give_up = Some(Instant::now() + CANCEL_WAIT);
                continue;
            }
            _ = tokio::time::sleep_until(give_up.unwrap_or(next_check)) => {
                if give_up.is_some_and(|at| Instant::now() >= at) {
                    break Err(Error::Interrupted);
                }
                next_check = Instant::now() + CHECK_EVERY;
                match environment_gone(engine, &id, &run_id).await {
                    Some(error) => break Err(error),
                    None => continue,
                }
            }
        };
        match event {
            Some(Ok(ContextEvent::Stdout(bytes))) => {
                crate::call::emit(|| Event::Output {
                    stderr: false,
                    bytes: bytes.clone(),
                });
                stdout.push(&bytes);
            }
            Some(Ok(ContextEvent::Stderr(bytes))) => {
                crate::call::emit(|| Event::Output {
                    stderr: true,
                    bytes: bytes.clone(),
                });
                stderr.push(&bytes);
            }
            Some(Ok(ContextEvent::Reply(ContextReply::Ran(outcome)))) => {
                break match give_up {
                    Some(_) => Err(Error::Interrupted),
                    None => Ok(outcome),
                }
            }
            Some(Ok(ContextEvent::Reply(ContextReply::Refused(refusal)))) => {
                return Err(refused(&id, &context, input.language, refusal));
            }
            Some(Ok(ContextEvent::Reply(_))) => {
                break Err(Error::Helper("the context answered something else".into()))
            }
            Some(Err(e)) => break Err(e),
            None => {
                break Err(environment_gone(engine, &id, &run_id)
                    .await
                    .unwrap_or_else(|| {
                        Error::Helper("the agent's channel closed before the cell's reply".into())
                    }))
            }
        }
    };

    let (outcome, lost) = match ending {
        Ok(outcome) => (outcome, None),
        Err(error) => {
            let outcome = CellOutcome {
                duration_ms: call_started.elapsed().as_millis() as u64,
                ..CellOutcome::default()
            };
            (outcome, Some(error))
        }
    };
    let stdout = stdout.finish();
    let stderr = stderr.finish();
    let mut log = RunLog {
        exit_code: match (&outcome.exit_code, outcome.timed_out, &outcome.error) {
            (_, true, _) => crate::protocol::TIMEOUT_EXIT_CODE,
            (Some(code), _, _) => *code,
            (None, _, Some(_)) => 1,
            (None, _, None) if lost.is_some() => -1,
            (None, _, None) => 0,
        },
        timed_out: outcome.timed_out,
        command: vec![
            input.language.as_str().to_string(),
            format!("context:{context}"),
        ],
        in_progress: false,
        transport: Transport::Agent,
        error: lost.as_ref().map(Into::into),
        ..RunLog::started(run_id.clone(), id.clone(), started_at.clone())
    };
    set_duration(&mut log, outcome.duration_ms);
    progress_output(&mut log, stdout, stderr);
    // Every cell is in the history, like every run (its rich outputs are not kept).
    History::open().record(&log)?;
    if let Some(error) = lost {
        return Err(error);
    }
    Ok(CodeResult {
        run_id,
        container_id: id,
        context,
        language: input.language,
        interpreter: outcome.interpreter,
        execution_count: outcome.execution_count,
        stdout: log.stdout,
        stderr: log.stderr,
        stdout_truncated: log.stdout_truncated,
        stderr_truncated: log.stderr_truncated,
        stdout_bytes: log.stdout_bytes,
        stderr_bytes: log.stderr_bytes,
        results: outcome.results,
        results_truncated: outcome.results_truncated,
        error: outcome.error,
        exit_code: outcome.exit_code,
        timed_out: outcome.timed_out,
        interrupted: outcome.interrupted,
        context_restarted: outcome.context_restarted,
        restart_reason: outcome.restart_reason,
        duration_ms: log.duration_ms,
        started_at,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextCreateInput {
    /// The environment (id, short id or name).
    pub container_id: String,
    /// The new context's name.
    #[serde(default = "default_context")]
    pub context: String,
    /// "python" (the default) or "bash".
    #[serde(default = "default_language")]
    pub language: Language,
}

pub async fn context_create(engine: &Engine, input: ContextCreateInput) -> Result<ContextInfo> {
    let context = context_name(&input.context)?;
    let container = refs::container_id("container_id", &input.container_id)?;
    let (id, workdir) = reach(engine, &container).await?;
    let request = ContextRequest::Create {
        context: context.clone(),
        language: input.language,
        workdir,
    };
    match ask(engine, &id, &request).await? {
        ContextReply::Context(info) => Ok(info),
        ContextReply::Refused(refusal) => Err(refused(&id, &context, input.language, refusal)),
        _ => Err(Error::Helper("the context answered something else".into())),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextListInput {
    /// The environment (id, short id or name).
    pub container_id: String,
}

#[derive(Serialize)]
pub struct ContextList {
    pub container_id: String,
    pub contexts: Vec<ContextInfo>,
}

pub async fn context_list(engine: &Engine, input: ContextListInput) -> Result<ContextList> {
    let container = refs::container_id("container_id", &input.container_id)?;
    let (id, _) = reach(engine, &container).await?;
    match ask(engine, &id, &ContextRequest::List).await? {
        ContextReply::Contexts(contexts) => Ok(ContextList {
            container_id: id,
            contexts,
        }),
        _ => Err(Error::Helper("the agent answered something else".into())),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextNameInput {
    /// The environment (id, short id or name).
    pub container_id: String,
    /// The context.
    #[serde(default = "default_context")]
    pub context: String,
}

/// Restarts a context's interpreter: its state is gone, its name stays.
pub async fn context_reset(engine: &Engine, input: ContextNameInput) -> Result<ContextInfo> {
    let context = context_name(&input.context)?;
    let container = refs::container_id("container_id", &input.container_id)?;
    let (id, _) = reach(engine, &container).await?;
    let request = ContextRequest::Reset {
        context: context.clone(),
    };
    match ask(engine, &id, &request).await? {
        ContextReply::Context(info) => Ok(info),
        ContextReply::Refused(refusal) => Err(refused(&id, &context, Language::Python, refusal)),
        _ => Err(Error::Helper("the context answered something else".into())),
    }
}

#[derive(Serialize)]
pub struct ContextClosed {
    pub ok: bool,
    pub context: String,
}

/// Ends a context and everything it runs.
pub async fn context_close(engine: &Engine, input: ContextNameInput) -> Result<ContextClosed> {
    let context = context_name(&input.context)?;
    let container = refs::container_id("container_id", &input.container_id)?;
    let (id, _) = reach(engine, &container).await?;
    let request = ContextRequest::Close {
        context: context.clone(),
    };
    match ask(engine, &id, &request).await? {
        ContextReply::Closed => Ok(ContextClosed { ok: true, context }),
        ContextReply::Refused(refusal) => Err(refused(&id, &context, Language::Python, refusal)),
        _ => Err(Error::Helper("the context answered something else".into())),
    }
}

/// A context's name: 1 to 64 letters, digits, '.', '_' or '-'.
fn context_name(name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(Error::invalid(
            "context",
            format!("context name {name:?} must be 1 to 64 letters, digits, '.', '_' or '-'"),
        ));
    }
    Ok(name.to_string())
}

/// The running environment's full id and working directory, if its agent can keep contexts.
async fn reach(engine: &Engine, container: &str) -> Result<(String, String)> {
    let (env, workdir) = running_env(engine, container, Workdir::Default).await?;
    require_agent(&env)?;
    Ok((env.id, workdir))
}

/// A request with no cell: its reply.
async fn ask(engine: &Engine, id: &str, request: &ContextRequest) -> Result<ContextReply> {
    let Some((mut events, _cancel)) = engine.context_call(id, request).await? else {
        return Err(agent_silent(id));
    };
    // A reset waits for the interpreter to start (30 s at most) behind nothing else.
    let reply = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            if let ContextEvent::Reply(reply) = event? {
                return Ok(reply);
            }
        }
        Err(Error::Helper(
            "the agent's channel closed before it answered".into(),
        ))
    })
    .await;
    reply.unwrap_or_else(|_| Err(Error::Helper("the agent did not answer within 60 s".into())))
}

/// Why the environment can no longer answer, if it cannot (stopped, paused, removed).
async fn environment_gone(engine: &Engine, id: &str, run_id: &str) -> Option<Error> {
    let run_id = run_id.to_string();
    match engine.inspect(id).await {
        Ok(c) if c.state.paused => Some(Error::EnvironmentPaused { run_id }),
        Ok(c) if !is_running(&c) => Some(Error::EnvironmentDied {
            run_id,
            reason: why_not_running(&c),
        }),
        Err(Error::ContainerNotFound(_)) => Some(environment_removed(run_id)),
        _ => None,
    }
}

fn refused(id: &str, context: &str, language: Language, refusal: ContextRefusal) -> Error {
    match refusal {
        ContextRefusal::NotFound { .. } => Error::CodeContextNotFound {
            id: id.to_string(),
            context: context.to_string(),
        },
        ContextRefusal::Exists { context } => Error::invalid(
            "context",
            format!(
                "a context named {context:?} already exists; run_code runs in it, context_reset \
                 restarts it, context_close ends it"
            ),
        ),
        ContextRefusal::WrongLanguage { context, language } => Error::invalid(
            "language",
            format!(
                "context {context:?} is a {} context; use another context name for {}",
                language.as_str(),
                if language == Language::Python {
                    "bash"
                } else {
                    "python"
                }
            ),
        ),
        ContextRefusal::NoInterpreter { tried } => Error::InterpreterNotFound {
            filename: format!("cells of a {} context", language.as_str()),
            tried: tried.join(", "),
        },
        ContextRefusal::TooMany { limit } => Error::invalid(
            "context",
            format!("an environment keeps at most {limit} contexts; context_close one first"),
        ),
        ContextRefusal::Failed { message } => Error::Helper(message),
    }
}
