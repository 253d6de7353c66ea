//! The one error type of adde. Every variant has a stable `error_code` (documented in the
//! README) and a message that says what went wrong and what to do about it.

use serde_json::{Map, Value};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error_code adde returns and what it means: the README's table and the Python
/// package's error classes are checked against this list.
pub const CODES: &[(&str, &str)] = &[
    ("unknown_tool", "no such tool"),
    ("usage", "bad command-line arguments"),
    (
        "invalid_json",
        "the payload is not JSON, or not a JSON object",
    ),
    (
        "invalid_payload",
        "a field has the wrong type, is missing, or is unknown",
    ),
    (
        "invalid_argument",
        "a value is refused (blank image, escaping filename, ports without network, …)",
    ),
    ("docker_unavailable", "the engine cannot be reached"),
    (
        "image_not_found",
        "the registry or engine has no such image",
    ),
    (
        "image_not_present",
        "the image is missing and `pull` is `\"never\"`",
    ),
    (
        "pull_failed",
        "the pull failed for another reason (registry unreachable, …)",
    ),
    ("container_not_found", "no such container"),
    ("not_managed", "the container was not created by adde"),
    ("container_not_running", "the environment is stopped"),
    (
        "dependency_install_failed",
        "the installer failed or timed out",
    ),
    (
        "no_package_manager",
        "dependencies were asked for, but the image has neither pip nor npm",
    ),
    (
        "interpreter_not_found",
        "the image has no interpreter for the file's extension",
    ),
    (
        "command_not_found",
        "execute_command's program is not in the environment's PATH",
    ),
    (
        "file_not_found",
        "no such file or folder in the environment",
    ),
    ("is_a_directory", "read_file was given a folder"),
    ("not_regular_file", "read_file or write_file met a FIFO, socket or device"),
    (
        "not_text",
        "read_file met bytes that are not UTF-8; use `\"encoding\": \"base64\"`",
    ),
    (
        "runtime_not_available",
        "the engine has no such OCI runtime",
    ),
    (
        "limits_not_enforced",
        "the engine accepted the environment's limits but did not apply them (rootless Podman on cgroup v1); nothing was created",
    ),
    (
        "session_conflict",
        "the session exists with other settings (image, limits, mounts, …)",
    ),
    (
        "session_not_ready",
        "the session's environment did not come up in time (another call may still be creating it)",
    ),
    ("run_not_found", "no run with that `run_id`"),
    ("no_runs", "no execution recorded yet"),
    (
        "context_not_found",
        "the context_id was not made by prepare_build_context",
    ),
    (
        "context_unreadable",
        "a file in the build context cannot be read",
    ),
    (
        "context_symlink_escape",
        "a symlink in the context points outside it",
    ),
    (
        "context_too_large",
        "the context is over `max_context_mb` after `.dockerignore`",
    ),
    ("dockerfile_missing", "no Dockerfile where the build looked"),
    ("dockerfile_invalid", "the Dockerfile cannot be parsed"),
    (
        "dockerfile_blocked",
        "the security gate blocked the Dockerfile",
    ),
    (
        "build_failed",
        "a build step failed (or the build timed out)",
    ),
    (
        "git_failed",
        "cloning the repository failed; git's message is included",
    ),
    (
        "helper_failed",
        "adde's in-container helper could not do its job",
    ),
    (
        "engine_error",
        "the engine refused a request; its message is included",
    ),
    (
        "state_error",
        "the state directory cannot be written or read",
    ),
    (
        "interrupted",
        "adde was interrupted (Ctrl-C, SIGTERM or SIGHUP); the execution was killed",
    ),
    ("supervisor_died", "the run's supervisor was killed or stopped answering; what the run left was stopped and the run recorded"),
    ("environment_died", "the environment stopped during the run (the cause and how to recover are in the message); the run is recorded"),
    ("environment_paused", "the environment was paused past the run's deadline; the run is stopped at unpause and recorded"),
    ("environment_altered", "code that ran in the environment lowered what every later run would inherit (limits, priority); adde refuses to run more there: recreate it"),
    (
        "code_context_not_found",
        "no code-interpreter context of that name in the environment",
    ),
    (
        "no_agent",
        "the environment has no resident agent (made with `use_image_cmd` or by an older adde, or its agent does not answer); code contexts and background processes need one",
    ),
    ("process_not_found", "no background process with that `process_id` in the environment"),
    (
        "too_many_processes",
        "the environment already runs as many background processes as adde keeps (16)",
    ),
    (
        "policy_denied",
        "the operator's policy does not allow the request",
    ),
    (
        "policy_invalid",
        "the policy file cannot be read or parsed; adde refuses to run unrestricted",
    ),
    (
        "busy",
        "`adde serve` is running and queueing as many calls as it may; retry later",
    ),
    ("internal_error", "a bug in adde; please report it"),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown tool \"{name}\"; the tools are: {}", tools.join(", "))]
    UnknownTool {
        name: String,
        tools: Vec<&'static str>,
    },

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

    #[error("runtime {runtime:?} is not available from the engine; it offers: {available}")]
    RuntimeNotAvailable { runtime: String, available: String },

    #[error("the engine accepted this environment's limits but did not apply them ({}), so code would run unbounded; nothing was kept. Rootless Podman on cgroup v1 does this: use rootful Podman, Docker or a cgroup v2 host; or, if unbounded code is acceptable, the operator can set ADDE_ALLOW_UNENFORCED_LIMITS=1 (each dropped limit is then a warning)", unapplied.join("; "))]
    LimitsNotEnforced {
        /// One "limit: asked …, applied …" per dropped limit.
        unapplied: Vec<String>,
    },

    #[error("session {session} already exists with other settings: {}; ask with the same settings, use another session name, or cleanup_env it", differences.join("; "))]
    SessionConflict {
        session: String,
        /// The fields that differ.
        fields: Vec<String>,
        /// One "field: asked …, has …" per difference.
        differences: Vec<String>,
    },

    #[error("session {session}'s environment did not come up within {seconds} s: another call may still be creating it, or that call failed; call again, or cleanup_env the session and retry")]
    SessionNotReady { session: String, seconds: u64 },

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

    /// The agent's refusal (protocol::ENVIRONMENT_ALTERED), word for word.
    #[error("{0}")]
    EnvironmentAltered(String),

    #[error("no code context {context:?} in environment {id}; run_code or context_create makes one, context_list lists them")]
    CodeContextNotFound { id: String, context: String },

    #[error("environment {id} has no resident agent, which code contexts and background processes need: {reason}. They need an environment created by this adde without use_image_cmd; execute_code_block and execute_command work everywhere")]
    NoAgent { id: String, reason: String },

    #[error("no background process {process_id} in environment {container}; list_processes lists them (an environment forgets them when it stops)")]
    ProcessNotFound {
        container: String,
        process_id: String,
    },

    #[error("the environment already runs {limit} background processes, as many as adde keeps; stop one with signal_process first")]
    TooManyProcesses { limit: u32 },

    #[error("denied by the policy ({rule}): {message}")]
    PolicyDenied {
        field: String,
        value: String,
        rule: String,
        message: String,
    },

    #[error("the policy {path} is invalid: {message}. Fix it (or point ADDE_POLICY elsewhere); adde refuses to run without the policy it was given")]
    PolicyInvalid { path: String, message: String },

    #[error("the server is busy: {concurrent} calls are running and {queued} waiting, its limits; retry later")]
    Busy { concurrent: usize, queued: usize },

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
            Error::LimitsNotEnforced { .. } => "limits_not_enforced",
            Error::SessionConflict { .. } => "session_conflict",
            Error::SessionNotReady { .. } => "session_not_ready",
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
            Error::EnvironmentAltered(_) => "environment_altered",
            Error::CodeContextNotFound { .. } => "code_context_not_found",
            Error::NoAgent { .. } => "no_agent",
            Error::ProcessNotFound { .. } => "process_not_found",
            Error::TooManyProcesses { .. } => "too_many_processes",
            Error::PolicyDenied { .. } => "policy_denied",
            Error::PolicyInvalid { .. } => "policy_invalid",
            Error::Busy { .. } => "busy",
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
            Error::UnknownTool { tools, .. } => {
                map.insert("tools".into(), tools.clone().into());
            }
            Error::SupervisorDied { run_id, .. }
            | Error::EnvironmentDied { run_id, .. }
            | Error::EnvironmentPaused { run_id } => {
                map.insert("run_id".into(), run_id.clone().into());
            }
            Error::PolicyDenied {
                field, value, rule, ..
            } => {
                map.insert("field".into(), field.clone().into());
                map.insert("value".into(), value.clone().into());
                map.insert("rule".into(), rule.clone().into());
            }
            Error::PolicyInvalid { path, .. } => {
                map.insert("policy".into(), path.clone().into());
            }
            Error::SessionConflict { fields, .. } => {
                map.insert("fields".into(), fields.clone().into());
            }
            Error::LimitsNotEnforced { unapplied } => {
                map.insert("unapplied".into(), unapplied.clone().into());
            }
            Error::ProcessNotFound { process_id, .. } => {
                map.insert("process_id".into(), process_id.clone().into());
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
        .map(|f| {
            format!(
                "{} ({}) line {}: {}",
                f.rule,
                f.rule.description(),
                f.line,
                f.message
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's error table is the published contract: the same codes, in the same
    /// order, with the same meanings as the binary's own list.
    #[test]
    fn the_readme_table_lists_every_code() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("| error_code | meaning | extra fields |")
            .nth(1)
            .expect("the README has an error table");
        let rows: Vec<(String, String)> = table
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
                (cells[0].trim_matches('`').to_string(), cells[1].to_string())
            })
            .collect();
        let codes: Vec<(String, String)> = CODES
            .iter()
            .map(|(c, m)| (c.to_string(), m.to_string()))
            .collect();
        assert_eq!(rows, codes);
    }

    /// Every variant's code is in the published list. The match has no wildcard, so a new
    /// variant does not compile until it is added here (and so to the list).
    #[test]
    fn every_variant_has_a_published_code() {
        let io = || std::io::Error::other("x");
        let samples = [
            Error::UnknownTool {
                name: "x".into(),
                tools: vec![],
            },
            Error::Usage("x".into()),
            Error::InvalidJson("x".into()),
            Error::InvalidPayload {
                message: "x".into(),
                field: None,
            },
            Error::invalid("x", "x"),
            Error::DockerUnavailable {
                addr: "x".into(),
                reason: "x".into(),
            },
            Error::ImageNotFound {
                image: "x".into(),
                detail: "x".into(),
            },
            Error::ImageNotPresent { image: "x".into() },
            Error::PullFailed {
                image: "x".into(),
                message: "x".into(),
            },
            Error::ContainerNotFound("x".into()),
            Error::NotManaged("x".into()),
            Error::ContainerNotRunning {
                id: "x".into(),
                reason: "x".into(),
            },
            Error::DependencyInstallFailed {
                manager: "x".into(),
                exit_code: 1,
                output: "x".into(),
            },
            Error::NoPackageManager { wanted: "x".into() },
            Error::InterpreterNotFound {
                filename: "x".into(),
                tried: "x".into(),
            },
            Error::RuntimeNotAvailable {
                runtime: "x".into(),
                available: "x".into(),
            },
            Error::LimitsNotEnforced { unapplied: vec![] },
            Error::SessionConflict {
                session: "x".into(),
                fields: vec![],
                differences: vec![],
            },
            Error::SessionNotReady {
                session: "x".into(),
                seconds: 1,
            },
            Error::FileNotFound("x".into()),
            Error::IsADirectory("x".into()),
            Error::NotRegularFile {
                path: "x".into(),
                kind: "x".into(),
            },
            Error::NotText("x".into()),
            Error::CommandNotFound("x".into()),
            Error::RunNotFound {
                container: "x".into(),
                run_id: "x".into(),
            },
            Error::NoRuns("x".into()),
            Error::ContextNotFound("x".into()),
            Error::ContextUnreadable {
                path: "x".into(),
                message: "x".into(),
            },
            Error::ContextSymlinkEscape {
                path: "x".into(),
                target: "x".into(),
            },
            Error::ContextTooLarge { limit_bytes: 1 },
            Error::DockerfileMissing {
                dockerfile: "x".into(),
                dir: "x".into(),
            },
            Error::DockerfileInvalid {
                dockerfile: "x".into(),
                line: 1,
                message: "x".into(),
            },
            Error::DockerfileBlocked { findings: vec![] },
            Error::BuildFailed {
                failed_layer: "x".into(),
                failed_step: None,
                error_line: "x".into(),
                log_summary: "x".into(),
                warnings: vec![],
            },
            Error::GitFailed {
                url: "x".into(),
                message: "x".into(),
            },
            Error::Helper("x".into()),
            Error::Engine {
                status: 500,
                message: "x".into(),
            },
            Error::State {
                path: "x".into(),
                source: io(),
            },
            Error::Interrupted,
            Error::SupervisorDied {
                run_id: "x".into(),
                cause: "x".into(),
            },
            Error::EnvironmentDied {
                run_id: "x".into(),
                reason: "x".into(),
            },
            Error::EnvironmentPaused { run_id: "x".into() },
            Error::EnvironmentAltered("x".into()),
            Error::CodeContextNotFound {
                id: "x".into(),
                context: "x".into(),
            },
            Error::NoAgent {
                id: "x".into(),
                reason: "x".into(),
            },
            Error::ProcessNotFound {
                container: "x".into(),
                process_id: "x".into(),
            },
            Error::TooManyProcesses { limit: 1 },
            Error::PolicyDenied {
                field: "x".into(),
                value: "x".into(),
                rule: "x".into(),
                message: "x".into(),
            },
            Error::PolicyInvalid {
                path: "x".into(),
                message: "x".into(),
            },
            Error::Busy {
                concurrent: 1,
                queued: 0,
            },
            Error::Internal("x".into()),
        ];
        for error in &samples {
            let listed = CODES.iter().any(|(code, _)| *code == error.code());
            assert!(listed, "{} is not in CODES", error.code());
            exhaustive(error);
        }
        assert_eq!(samples.len(), CODES.len(), "one sample per code");
    }

    fn exhaustive(error: &Error) {
        match error {
            Error::UnknownTool { .. }
            | Error::Usage(_)
            | Error::InvalidJson(_)
            | Error::InvalidPayload { .. }
            | Error::InvalidArgument { .. }
            | Error::DockerUnavailable { .. }
            | Error::ImageNotFound { .. }
            | Error::ImageNotPresent { .. }
            | Error::PullFailed { .. }
            | Error::ContainerNotFound(_)
            | Error::NotManaged(_)
            | Error::ContainerNotRunning { .. }
            | Error::DependencyInstallFailed { .. }
            | Error::NoPackageManager { .. }
            | Error::InterpreterNotFound { .. }
            | Error::RuntimeNotAvailable { .. }
            | Error::LimitsNotEnforced { .. }
            | Error::SessionConflict { .. }
            | Error::SessionNotReady { .. }
            | Error::FileNotFound(_)
            | Error::IsADirectory(_)
            | Error::NotRegularFile { .. }
            | Error::NotText(_)
            | Error::CommandNotFound(_)
            | Error::RunNotFound { .. }
            | Error::NoRuns(_)
            | Error::ContextNotFound(_)
            | Error::ContextUnreadable { .. }
            | Error::ContextSymlinkEscape { .. }
            | Error::ContextTooLarge { .. }
            | Error::DockerfileMissing { .. }
            | Error::DockerfileInvalid { .. }
            | Error::DockerfileBlocked { .. }
            | Error::BuildFailed { .. }
            | Error::GitFailed { .. }
            | Error::Helper(_)
            | Error::Engine { .. }
            | Error::State { .. }
            | Error::Interrupted
            | Error::SupervisorDied { .. }
            | Error::EnvironmentDied { .. }
            | Error::EnvironmentPaused { .. }
            | Error::EnvironmentAltered(_)
            | Error::CodeContextNotFound { .. }
            | Error::NoAgent { .. }
            | Error::ProcessNotFound { .. }
            | Error::TooManyProcesses { .. }
            | Error::PolicyDenied { .. }
            | Error::PolicyInvalid { .. }
            | Error::Busy { .. }
            | Error::Internal(_) => {}
        }
    }
}
