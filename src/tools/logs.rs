//! get_container_logs: runs from the host-side history (which outlives the environment), and
//! the container's own output for environments that run the image's command.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::capture::tail_lines;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::history::{History, RunLog};
use crate::refs;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsInput {
    /// The environment (id or short id; a name while it still exists).
    pub container_id: String,
    /// Return only the last N lines of each stream; 0 returns everything.
    #[serde(default)]
    pub tail_lines: usize,
    /// Return this run instead of the last one.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Return every run, oldest first, as `runs`.
    #[serde(default)]
    pub all: bool,
    /// Also return the container's own stdout and stderr (what the image's command printed,
    /// for environments created with use_image_cmd).
    #[serde(default)]
    pub container_output: bool,
}

#[derive(Serialize, Default)]
pub struct LogsOutput {
    pub container_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<RunLog>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<RunLog>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_output: Option<ContainerOutput>,
}

#[derive(Serialize)]
pub struct ContainerOutput {
    pub stdout: String,
    pub stderr: String,
}

pub async fn get_container_logs(engine: &Engine, input: LogsInput) -> Result<LogsOutput> {
    // Both reach host paths in the history: checked before any path is joined.
    let given = refs::container_id("container_id", &input.container_id)?;
    let run_id = input
        .run_id
        .as_deref()
        .map(|id| refs::run_id("run_id", id))
        .transpose()?;
    if input.all && run_id.is_some() {
        return Err(Error::invalid(
            "run_id",
            "give run_id or all: true, not both",
        ));
    }
    let history = History::open();
    // The history answers alone for environments already cleaned up; the engine is asked
    // only for names, environments with no run yet, and container output.
    let mut runs_image_cmd = None;
    let id = match history.resolve(&given) {
        Some(id) => id,
        None => {
            let container = engine.inspect_managed(&given).await?;
            runs_image_cmd = Some(container.labels.use_image_cmd());
            container.id
        }
    };
    let runs = history.runs(&id)?;
    let tail = |mut log: RunLog| {
        log.stdout = tail_lines(&log.stdout, input.tail_lines);
        log.stderr = tail_lines(&log.stderr, input.tail_lines);
        log
    };
    let mut out = LogsOutput {
        container_id: id.clone(),
        ..LogsOutput::default()
    };
    if let Some(run_id) = &run_id {
        let run = runs.into_iter().find(|r| &r.run_id == run_id);
        out.log = Some(tail(run.ok_or_else(|| Error::RunNotFound {
            container: id.clone(),
            run_id: run_id.clone(),
        })?));
    } else if input.all {
        out.runs = Some(runs.into_iter().map(tail).collect());
    } else {
        out.log = runs.into_iter().last().map(tail);
    }

    let show_container = input.container_output
        || (out.log.is_none() && out.runs.is_none() && runs_image_cmd == Some(true));
    if show_container {
        let limit = (input.tail_lines > 0).then_some(input.tail_lines);
        // An environment whose main process is adde's agent prints nothing of its own, and
        // its output (the agent's replies) is not logged: there is nothing to read back.
        let agent = engine.inspect_managed(&id).await?.helper_target().agent;
        let (stdout, stderr) = if agent {
            (Vec::new(), Vec::new())
        } else {
            engine.logs(&id, limit).await?
        };
        out.container_output = Some(ContainerOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        });
    } else if out.log.is_none() && out.runs.is_none() {
        return Err(Error::NoRuns(id));
    }
    Ok(out)
}
