//! run_container: a one-shot run with the hardened defaults. Create, put the payload in, run,
//! collect the log, remove. Nothing is left behind whatever happens: a failure, a timeout,
//! or adde itself being interrupted.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::history::RunLog;
use crate::protocol::{FileSpec, WORKSPACE};

use super::admin::remove_env;
use super::env::{create_runtime_env, CreateEnvInput};
use super::exec::{execute, interpreters, CommandLine, Run, Workdir};
use super::input::{env_vars, relative_path};

/// How long a one-shot environment outlives its run's deadline before `reap` may remove it,
/// should adde be killed before it removes the environment itself.
const EXPIRY_MARGIN_SEC: u64 = 600;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunContainerInput {
    /// Image to run in.
    pub image: String,
    /// A command to run: a string (sh -c) or an argument list. Or give code_content.
    #[serde(default)]
    pub command: Option<CommandLine>,
    /// Code to write to `filename` and run by its extension, as execute_code_block does.
    #[serde(default)]
    pub code_content: Option<String>,
    /// File name for code_content, relative to /workspace.
    #[serde(default)]
    pub filename: Option<String>,
    /// Extra files for /workspace: relative path to text content.
    #[serde(default)]
    pub payload: BTreeMap<String, String>,
    /// A host file or folder copied into /workspace before the run.
    #[serde(default)]
    pub payload_path: Option<String>,
    /// Seconds before the run and everything it started are killed.
    #[serde(default = "default_timeout")]
    pub timeout_sec: f64,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub memory: Option<String>,
    #[serde(default)]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub pids_limit: Option<i64>,
    /// Give the run a network (none by default).
    #[serde(default)]
    pub network: bool,
    /// Most bytes kept of each of stdout and stderr.
    #[serde(default)]
    pub max_output_bytes: Option<usize>,
}

fn default_timeout() -> f64 {
    30.0
}

#[derive(Serialize)]
pub struct RunContainerOutput {
    pub log: RunLog,
    pub image: String,
    /// The environment is gone (always true on success).
    pub removed: bool,
}

pub async fn run_container(
    engine: &Engine,
    input: RunContainerInput,
) -> Result<RunContainerOutput> {
    let (candidates, file) = match (&input.command, &input.code_content) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(Error::invalid(
                "command",
                "give either command or code_content",
            ))
        }
        (Some(CommandLine::Shell(line)), None) => {
            (vec![vec!["sh".into(), "-c".into(), line.clone()]], None)
        }
        (Some(CommandLine::Argv(argv)), None) => (vec![argv.clone()], None),
        (None, Some(code)) => {
            let name = input.filename.as_deref().ok_or_else(|| {
                Error::invalid(
                    "filename",
                    "code_content needs a filename, e.g. \"main.py\"",
                )
            })?;
            let path = relative_path("filename", name)?;
            let (candidates, executable) = interpreters(&path);
            let spec = FileSpec {
                path,
                len: code.len() as u64,
                executable,
            };
            (candidates, Some(spec))
        }
    };
    let mut payload: Vec<(String, Vec<u8>)> = Vec::new();
    for (path, text) in &input.payload {
        payload.push((relative_path("payload", path)?, text.clone().into_bytes()));
    }
    let payload_path = input.payload_path.as_deref().map(PathBuf::from);
    if let Some(path) = &payload_path {
        if !path.exists() {
            return Err(Error::invalid(
                "payload_path",
                format!("{} does not exist", path.display()),
            ));
        }
    }
    // Checked here so that an error names this tool's field, `env`.
    env_vars("env", &input.env)?;
    // The environment is made as create_runtime_env would make it for this payload: the
    // policy's defaults and rules apply to it too (a read-only root, a tmpfs workspace, ...).
    let mut ttl_sec = input.timeout_sec.max(0.0).ceil() as u64 + EXPIRY_MARGIN_SEC;
    if let Some(max) = crate::policy::current()?
        .policy
        .as_ref()
        .and_then(|p| p.limits.max_ttl_sec)
    {
        ttl_sec = ttl_sec.min(max);
    }
    let mut create = serde_json::json!({
        "image": input.image,
        "env_vars": input.env,
        "network": input.network,
        "ttl_sec": ttl_sec,
    });
    for (field, value) in [
        ("memory", input.memory.map(serde_json::Value::from)),
        ("cpus", input.cpus.map(serde_json::Value::from)),
        ("pids_limit", input.pids_limit.map(serde_json::Value::from)),
    ] {
        if let Some(value) = value {
            create[field] = value;
        }
    }
    let create: CreateEnvInput = super::input::parse(super::govern("create_runtime_env", create)?)?;
    let env = create_runtime_env(engine, create).await?.env;

    // From here on the environment exists: whatever happens, it is removed.
    let run = async {
        upload_payload(engine, &env.container_id, &payload, payload_path.as_deref()).await?;
        let input_bytes = input.code_content.clone().unwrap_or_default().into_bytes();
        execute(
            engine,
            Run {
                container: env.container_id.clone(),
                file,
                candidates,
                input: input_bytes,
                stdin_len: 0,
                timeout_sec: input.timeout_sec,
                workdir: Workdir::Workspace,
                env: BTreeMap::new(),
                max_output_bytes: input.max_output_bytes.unwrap_or(1024 * 1024),
            },
        )
        .await
    };
    let result = tokio::select! {
        result = run => result,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    };
    if let Some(container) = engine.inspect_optional(&env.container_id).await? {
        remove_env(engine, &container.id, &container.labels).await?;
    }
    Ok(RunContainerOutput {
        log: result?,
        image: env.image,
        removed: true,
    })
}

/// Puts the payload files and the host payload (a file or a folder's contents) in /workspace.
async fn upload_payload(
    engine: &Engine,
    id: &str,
    files: &[(String, Vec<u8>)],
    host: Option<&std::path::Path>,
) -> Result<()> {
    if files.is_empty() && host.is_none() {
        return Ok(());
    }
    let pack =
        |e: std::io::Error| Error::invalid("payload_path", format!("cannot pack the payload: {e}"));
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, path, bytes.as_slice())
            .map_err(pack)?;
    }
    if let Some(host) = host {
        if host.is_dir() {
            builder.append_dir_all(".", host).map_err(pack)?;
        } else {
            let name = host
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_else(|| "payload".into());
            builder.append_path_with_name(host, name).map_err(pack)?;
        }
    }
    let tar = builder.into_inner().map_err(pack)?;
    engine.upload(id, WORKSPACE, tar).await
}
