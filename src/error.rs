//! The one error type of adde. Every variant has a stable `error_code` (documented in the
//! README) and a message that says what went wrong and what to do about it.

use serde_json::{Map, Value};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown tool \"{name}\"; the tools are: {}", crate::tools::names().join(", "))]
    UnknownTool { name: String },

    #[error("{0}")]
    Usage(String),

    #[error("the payload is not valid JSON: {0}")]
    InvalidJson(String),

    /// The payload's shape: a field of the wrong type, a missing or an unknown field.
    #[error("{message}")]
    InvalidPayload {
        message: String,
        field: Option<String>,
    },

    /// A value that parses but cannot be accepted (a blank image, an escaping filename, ...).
    #[error("{message}")]
    InvalidArgument {
        field: &'static str,
        message: String,
    },

    #[error("cannot reach the Docker engine at {addr}: {reason}. Start the Docker daemon, check that this user may use it, or point DOCKER_HOST at the engine")]
    DockerUnavailable { addr: String, reason: String },

    #[error("image {image} not found: {detail}. Check the name and tag; pull_image fetches images from a registry the engine can reach")]
    ImageNotFound { image: String, detail: String },

    #[error("image {image} is not present and pulling was turned off (pull: \"never\"); run pull_image first")]
    ImageNotPresent { image: String },

    #[error("pulling {image} failed: {message}")]
    PullFailed { image: String, message: String },

    #[error("no container {0}: it does not exist or was already cleaned up")]
    ContainerNotFound(String),

    #[error("{0} was not created by adde; adde only touches what it made")]
    NotManaged(String),

    /// `reason` says what the engine reports and how to recover.
    #[error("environment {id} is not running: {reason}")]
    ContainerNotRunning { id: String, reason: String },

    #[error("installing dependencies with {manager} failed (exit code {exit_code}); see `installer_output`")]
    DependencyInstallFailed {
        manager: String,
        exit_code: i64,
        output: String,
    },

    #[error("cannot install dependencies: the image has no {wanted}; use an image that has it, or install them in a custom image")]
    NoPackageManager { wanted: String },

    #[error("cannot run {filename}: none of {tried} was found in the environment's PATH; use an image that has it, or pass `command`")]
    InterpreterNotFound { filename: String, tried: String },

    #[error("runtime {runtime:?} is not registered with the engine; it has: {available}")]
    RuntimeNotAvailable { runtime: String, available: String },

    #[error("session {session} already exists with image {image}; use that image, another session name, or cleanup_env it")]
    SessionConflict { session: String, image: String },

    #[error("no file or folder {0} in the environment")]
    FileNotFound(String),

    #[error("{0} is a folder; use list_files, or export_files to copy it out")]
    IsADirectory(String),

    #[error("{0} is not UTF-8 text; read it with encoding \"base64\"")]
    NotText(String),

    #[error("{path} is a {kind}, not a regular file; adde reads only regular files")]
    NotRegularFile { path: String, kind: String },

    #[error("cannot run the command: {0} was not found in the environment's PATH")]
    CommandNotFound(String),

    #[error("no run {run_id} recorded for container {container}")]
    RunNotFound { container: String, run_id: String },

    #[error("no execution recorded for container {0}; run execute_code_block first")]
    NoRuns(String),

    #[error("no build context {0}: context_id must come from prepare_build_context (adde builds no other folder by id)")]
    ContextNotFound(String),

    #[error("cannot read {path} in the build context: {message}")]
    ContextUnreadable { path: String, message: String },

    #[error(
        "{path} is a symlink to {target}, outside the build context; remove it or point it inside"
    )]
    ContextSymlinkEscape { path: String, target: String },

    #[error("the build context is over {} MiB after .dockerignore; exclude large files in .dockerignore or raise max_context_mb", limit_bytes >> 20)]
    ContextTooLarge { limit_bytes: u64 },

    #[error("no {dockerfile} in {dir}; add one, or name another with `dockerfile`")]
    DockerfileMissing { dockerfile: String, dir: String },

    #[error("{dockerfile} line {line}: {message}")]
    DockerfileInvalid {
        dockerfile: String,
        line: usize,
        message: String,
    },

    #[error(
        "the Dockerfile is blocked by adde's security policy: {}",
        summarize(findings)
    )]
    DockerfileBlocked {
        findings: Vec<crate::dockerfile::Finding>,
    },

    #[error("the build failed at {failed_layer}: {error_line}")]
    BuildFailed {
        failed_layer: String,
        failed_step: Option<u32>,
        error_line: String,
        log_summary: String,
        warnings: Vec<crate::dockerfile::Finding>,
    },

    #[error("cloning {url} failed: {message}")]
    GitFailed { url: String, message: String },

    #[error("the in-container helper failed: {0}")]
    Helper(String),

    #[error("the Docker engine refused the request ({status}): {message}")]
    Engine { status: u16, message: String },

    #[error("state directory {path}: {source}")]
    State {
        path: String,
        source: std::io::Error,
    },

    #[error("interrupted; the execution was stopped")]
    Interrupted,

    #[error("run {run_id} has no result: {cause}. adde then stopped every process in the environment that is neither its own nor part of another running execution (what the run left behind), so the environment is ready for the next run. The run is recorded; see get_container_logs")]
    SupervisorDied { run_id: String, cause: String },

    /// `reason` says what the engine reports and how to recover.
    #[error("run {run_id} has no result: the environment stopped during it; {reason}. The run is recorded; see get_container_logs")]
    EnvironmentDied { run_id: String, reason: String },

    #[error("run {run_id} could not be stopped at its deadline: the environment is paused (docker pause), so nothing in it can run or be killed. adde's supervisor stops the run as soon as the environment is unpaused (docker unpause). The run is recorded; see get_container_logs")]
    EnvironmentPaused { run_id: String },

    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable, machine-readable code callers branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownTool { .. } => "unknown_tool",
            Error::Usage(_) => "usage",
            Error::InvalidJson(_) => "invalid_json",
            Error::InvalidPayload { .. } => "invalid_payload",
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::DockerUnavailable { .. } => "docker_unavailable",
            Error::ImageNotFound { .. } => "image_not_found",
            Error::ImageNotPresent { .. } => "image_not_present",
            Error::PullFailed { .. } => "pull_failed",
            Error::ContainerNotFound(_) => "container_not_found",
            Error::NotManaged(_) => "not_managed",
            Error::ContainerNotRunning { .. } => "container_not_running",
            Error::DependencyInstallFailed { .. } => "dependency_install_failed",
            Error::NoPackageManager { .. } => "no_package_manager",
            Error::InterpreterNotFound { .. } => "interpreter_not_found",
            Error::RuntimeNotAvailable { .. } => "runtime_not_available",
            Error::SessionConflict { .. } => "session_conflict",
            Error::FileNotFound(_) => "file_not_found",
            Error::IsADirectory(_) => "is_a_directory",
            Error::NotText(_) => "not_text",
            Error::NotRegularFile { .. } => "not_regular_file",
            Error::CommandNotFound(_) => "command_not_found",
            Error::RunNotFound { .. } => "run_not_found",
            Error::NoRuns(_) => "no_runs",
            Error::ContextNotFound(_) => "context_not_found",
            Error::ContextUnreadable { .. } => "context_unreadable",
            Error::ContextSymlinkEscape { .. } => "context_symlink_escape",
            Error::ContextTooLarge { .. } => "context_too_large",
            Error::DockerfileMissing { .. } => "dockerfile_missing",
            Error::DockerfileInvalid { .. } => "dockerfile_invalid",
            Error::DockerfileBlocked { .. } => "dockerfile_blocked",
            Error::BuildFailed { .. } => "build_failed",
            Error::GitFailed { .. } => "git_failed",
            Error::Helper(_) => "helper_failed",
            Error::Engine { .. } => "engine_error",
            Error::State { .. } => "state_error",
            Error::Interrupted => "interrupted",
            Error::SupervisorDied { .. } => "supervisor_died",
            Error::EnvironmentDied { .. } => "environment_died",
            Error::EnvironmentPaused { .. } => "environment_paused",
            Error::Internal(_) => "internal_error",
        }
    }

    /// Fields beyond `error` and `error_code` that help the caller act on the error.
    pub fn details(&self) -> Map<String, Value> {
        let mut map = Map::new();
        match self {
            Error::InvalidPayload { field: Some(f), .. } => {
                map.insert("field".into(), f.clone().into());
            }
            Error::InvalidArgument { field, .. } => {
                map.insert("field".into(), (*field).into());
            }
            Error::DockerUnavailable { addr, .. } => {
                map.insert("docker_host".into(), addr.clone().into());
            }
            Error::DependencyInstallFailed {
                manager,
                exit_code,
                output,
            } => {
                map.insert("package_manager".into(), manager.clone().into());
                map.insert("installer_exit_code".into(), (*exit_code).into());
                map.insert("installer_output".into(), output.clone().into());
            }
            Error::DockerfileBlocked { findings } => {
                map.insert(
                    "findings".into(),
                    serde_json::to_value(findings).unwrap_or_default(),
                );
            }
            Error::DockerfileInvalid { line, .. } => {
                map.insert("line".into(), (*line).into());
            }
            Error::BuildFailed {
                failed_layer,
                failed_step,
                error_line,
                log_summary,
                warnings,
            } => {
                map.insert("failed_layer".into(), failed_layer.clone().into());
                map.insert(
                    "failed_step".into(),
                    serde_json::to_value(failed_step).unwrap_or_default(),
                );
                map.insert("error_line".into(), error_line.clone().into());
                map.insert("build_log_summary".into(), log_summary.clone().into());
                map.insert(
                    "findings".into(),
                    serde_json::to_value(warnings).unwrap_or_default(),
                );
            }
            Error::UnknownTool { .. } => {
                map.insert("tools".into(), crate::tools::names().into());
            }
            Error::SupervisorDied { run_id, .. }
            | Error::EnvironmentDied { run_id, .. }
            | Error::EnvironmentPaused { run_id } => {
                map.insert("run_id".into(), run_id.clone().into());
            }
            _ => {}
        }
        map
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    pub fn state(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::State {
            path: path.display().to_string(),
            source,
        }
    }
}

fn summarize(findings: &[crate::dockerfile::Finding]) -> String {
    findings
        .iter()
        .filter(|f| f.severity == crate::dockerfile::Severity::Block)
        .map(|f| format!("{} line {}: {}", f.rule, f.line, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}
