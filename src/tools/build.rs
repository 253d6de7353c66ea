//! The image factory: staged build contexts, and builds from them, from a folder or from a
//! git repository, all behind the Dockerfile security gate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context;
use crate::dockerfile::{self, Finding, Severity};
use crate::engine::{BuildOutcome, BuildRequest, Engine, Kind, Label, Labels};
use crate::error::{Error, Result};
use crate::state::{self, private_dir};

use super::input::{megabytes, relative_path, required};
use crate::ids::random_hex;

const DEFAULT_MAX_CONTEXT_MB: f64 = 512.0;
const MAX_CONTEXT_MB: f64 = 102_400.0;
const DEFAULT_BUILD_TIMEOUT_SEC: f64 = 1800.0;
const MAX_BUILD_TIMEOUT_SEC: f64 = 24.0 * 3600.0;
const SUMMARY_LINES: usize = 20;

/// Written into a context that has no `.dockerignore`: what should never reach an image.
const DEFAULT_DOCKERIGNORE: &str = "\
# Written by adde: keep secrets, VCS data and caches out of the image.
.git
.hg
.svn
**/.env
**/.env.*
**/.venv
**/venv
**/__pycache__
**/*.pyc
**/*.pyo
**/.pytest_cache
**/.mypy_cache
**/node_modules
**/npm-debug.log*
**/.DS_Store
**/*.pem
**/id_rsa*
";

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrepareInput {
    /// Text files to stage: relative path to content.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Binary files to stage: relative path to base64 content.
    #[serde(default)]
    pub files_base64: BTreeMap<String, String>,
    /// Add to (or replace files in) this existing context instead of making a new one.
    #[serde(default)]
    pub context_id: Option<String>,
    /// Base image of an injected Dockerfile (else ADDE_PYTHON_BASE_IMAGE or
    /// ADDE_NODE_BASE_IMAGE, else python:3.12-slim or node:22-slim).
    #[serde(default)]
    pub base_image: Option<String>,
}

#[derive(Serialize)]
pub struct PrepareOutput {
    pub context_id: String,
    /// Files written by this call.
    pub files: Vec<String>,
    /// "python" or "node" when adde wrote a Dockerfile for the stack it found.
    pub injected_dockerfile: Option<String>,
    /// Whether adde wrote its default .dockerignore.
    pub default_dockerignore: bool,
}

pub async fn prepare_build_context(_: &Engine, input: PrepareInput) -> Result<PrepareOutput> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (path, text) in &input.files {
        files.push((relative_path("files", path)?, text.as_bytes().to_vec()));
    }
    for (path, encoded) in &input.files_base64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| {
                Error::invalid("files_base64", format!("{path}: not valid base64: {e}"))
            })?;
        files.push((relative_path("files_base64", path)?, bytes));
    }
    let base_image = input
        .base_image
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty());
    if let Some(base) = base_image {
        super::images::normalize_reference(base)?;
    }
    let (id, dir) = match &input.context_id {
        Some(id) => (id.clone(), existing_context(id)?),
        None if files.is_empty() => {
            return Err(Error::invalid(
                "files",
                "give at least one file (files or files_base64)",
            ))
        }
        None => {
            let id = format!("ctx-{}", random_hex(8));
            let dir = state::contexts().join(&id);
            private_dir(&dir)?;
            (id, dir)
        }
    };
    let mut written = Vec::new();
    for (path, bytes) in &files {
        let target = dir.join(path);
        // Only the context's root is private: COPY carries folder modes into the image.
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::state(parent, e))?;
        }
        std::fs::write(&target, bytes).map_err(|e| Error::state(&target, e))?;
        written.push(path.clone());
    }
    let default_dockerignore = !dir.join(".dockerignore").exists();
    if default_dockerignore {
        let path = dir.join(".dockerignore");
        std::fs::write(&path, DEFAULT_DOCKERIGNORE).map_err(|e| Error::state(&path, e))?;
    }
    let injected = inject_dockerfile(&dir, base_image)?;
    Ok(PrepareOutput {
        context_id: id,
        files: written,
        injected_dockerfile: injected.map(str::to_string),
        default_dockerignore,
    })
}

/// A context made by prepare_build_context: `ctx-` and 16 hex digits, under the state dir.
fn existing_context(id: &str) -> Result<PathBuf> {
    let well_formed = id
        .strip_prefix("ctx-")
        .is_some_and(|hex| hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()));
    let dir = state::contexts().join(id);
    if !well_formed || !dir.is_dir() {
        return Err(Error::ContextNotFound(id.to_string()));
    }
    Ok(dir)
}

/// With no Dockerfile, writes one for the stack the files show: Python (requirements.txt or
/// pyproject.toml) or Node (package.json).
fn inject_dockerfile(dir: &Path, base_image: Option<&str>) -> Result<Option<&'static str>> {
    if dir.join("Dockerfile").exists() {
        return Ok(None);
    }
    let has = |name: &str| dir.join(name).is_file();
    let base = |var: &str, default: &str| {
        base_image
            .map(str::to_string)
            .or_else(|| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| default.to_string())
    };
    let (stack, text) = if has("requirements.txt") || has("pyproject.toml") {
        let install = if has("requirements.txt") {
            "COPY requirements.txt ./\nRUN pip install --no-cache-dir -r requirements.txt\nCOPY . .\n"
        } else {
            "COPY . .\nRUN pip install --no-cache-dir .\n"
        };
        let entry = ["main.py", "app.py"].into_iter().find(|f| has(f));
        let cmd = entry.map_or(String::new(), |f| format!("CMD [\"python3\", \"{f}\"]\n"));
        let text = format!(
            "# Written by adde for a Python project.\nFROM {}\nARG PIP_INDEX_URL\nARG PIP_TRUSTED_HOST\nENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1\nWORKDIR /app\n{install}USER 65534\n{cmd}",
            base("ADDE_PYTHON_BASE_IMAGE", "python:3.12-slim")
        );
        ("python", text)
    } else if has("package.json") {
        let text = format!(
            "# Written by adde for a Node project.\nFROM {}\nARG NPM_CONFIG_REGISTRY\nWORKDIR /app\nCOPY package*.json ./\nRUN npm install --omit=dev --no-audit --no-fund\nCOPY . .\nUSER 65534\nCMD [\"npm\", \"start\"]\n",
            base("ADDE_NODE_BASE_IMAGE", "node:22-slim")
        );
        ("node", text)
    } else {
        return Ok(None);
    };
    let path = dir.join("Dockerfile");
    std::fs::write(&path, text).map_err(|e| Error::state(&path, e))?;
    Ok(Some(stack))
}

#[derive(Deserialize, JsonSchema, Clone, Copy, Debug)]
#[serde(rename_all = "lowercase")]
pub enum BuildNetwork {
    /// The engine's default network for RUN steps.
    Default,
    /// No network for RUN steps.
    None,
    /// The host's network, e.g. to reach a package index on the host's loopback.
    Host,
}

/// The options every build tool takes, added to each tool's input type with its source.
macro_rules! build_input {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Image reference to tag the result with; default `agent-env:<task>-<timestamp>`.
            #[serde(default)]
            pub tag: Option<String>,
            /// Build arguments (ARG values).
            #[serde(default)]
            pub build_args: BTreeMap<String, String>,
            /// Dockerfile path inside the context; default "Dockerfile".
            #[serde(default)]
            pub dockerfile: Option<String>,
            /// Stage to stop at in a multi-stage Dockerfile.
            #[serde(default)]
            pub target: Option<String>,
            /// Do not use the build cache.
            #[serde(default)]
            pub no_cache: bool,
            /// Labels for the image; `io.adde.*` keys are adde's own and refused.
            #[serde(default)]
            pub labels: BTreeMap<String, String>,
            /// Network of RUN steps: "default", "none" or "host".
            #[serde(default)]
            pub network: Option<BuildNetwork>,
            /// Allow `ADD` from URLs and git repositories, which the engine fetches from the
            /// host whatever `network` says; default false.
            #[serde(default)]
            pub allow_remote_add: bool,
            /// Largest build context in MiB, after .dockerignore: 1 to 102400.
            #[serde(default = "default_max_context_mb")]
            pub max_context_mb: f64,
            /// Time limit of the build in seconds: above 0, at most 86400 (24 hours).
            #[serde(default = "default_build_timeout")]
            pub timeout_sec: f64,
        }

        impl $name {
            /// The options, checked before anything is done: a clone, a read or the engine.
            fn options(&self) -> Result<BuildOptions> {
                Ok(BuildOptions {
                    tag: checked_tag(self.tag.as_deref())?,
                    build_args: self.build_args.clone(),
                    dockerfile: relative_path(
                        "dockerfile",
                        self.dockerfile.as_deref().unwrap_or("Dockerfile"),
                    )?,
                    target: self.target.clone(),
                    no_cache: self.no_cache,
                    labels: checked_labels(&self.labels)?,
                    network: self.network,
                    allow_remote_add: self.allow_remote_add,
                    max_context_bytes: max_context_bytes(self.max_context_mb)?,
                    timeout: build_timeout(self.timeout_sec)?,
                })
            }
        }
    };
}

fn default_max_context_mb() -> f64 {
    DEFAULT_MAX_CONTEXT_MB
}
fn default_build_timeout() -> f64 {
    DEFAULT_BUILD_TIMEOUT_SEC
}

build_input!(BuildFromContextInput {
    /// A context_id from prepare_build_context.
    pub context_id: String,
});

build_input!(BuildFromPathInput {
    /// A folder holding a Dockerfile, e.g. a cloned repository.
    pub path: String,
});

build_input!(BuildFromGitInput {
    /// Repository URL (https://, ssh://, git@host:path, or a local path or file:// URL).
    pub url: String,
    /// Branch, tag or full commit id; the default branch when absent.
    #[serde(default)]
    pub r#ref: Option<String>,
    /// Folder inside the repository to build.
    #[serde(default)]
    pub subdir: Option<String>,
});

struct BuildOptions {
    tag: Option<String>,
    build_args: BTreeMap<String, String>,
    /// Relative to the context, without `..`.
    dockerfile: String,
    target: Option<String>,
    no_cache: bool,
    labels: BTreeMap<String, String>,
    network: Option<BuildNetwork>,
    allow_remote_add: bool,
    max_context_bytes: u64,
    timeout: Duration,
}

fn checked_tag(tag: Option<&str>) -> Result<Option<String>> {
    match tag.map(str::trim) {
        Some(tag) if !tag.is_empty() => validate_tag(tag).map(Some),
        _ => Ok(None),
    }
}

/// The caller's labels, none of them empty or in adde's `io.adde.` namespace: those mark what
/// adde made and what it may remove.
fn checked_labels(labels: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    match labels
        .keys()
        .find(|k| k.trim().is_empty() || dockerfile::is_reserved_label(k))
    {
        Some(key) => Err(Error::invalid(
            "labels",
            format!("label {key:?} is refused: keys must not be empty, and io.adde.* labels are adde's own"),
        )),
        None => Ok(labels.clone()),
    }
}

fn max_context_bytes(mb: f64) -> Result<u64> {
    // Written so that NaN fails too.
    if !(1.0..=MAX_CONTEXT_MB).contains(&mb) {
        return Err(Error::invalid(
            "max_context_mb",
            format!("max_context_mb must be at least 1 and at most {MAX_CONTEXT_MB} (100 GiB)"),
        ));
    }
    Ok((mb * 1_048_576.0) as u64)
}

fn build_timeout(seconds: f64) -> Result<Duration> {
    if !(seconds > 0.0 && seconds <= MAX_BUILD_TIMEOUT_SEC) {
        return Err(Error::invalid(
            "timeout_sec",
            format!("timeout_sec must be above 0 and at most {MAX_BUILD_TIMEOUT_SEC} (24 hours)"),
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Serialize)]
pub struct BuildOutput {
    pub status: &'static str,
    pub image_id: String,
    pub tag: String,
    pub size_mb: f64,
    /// The last meaningful lines of the build.
    pub build_log_summary: String,
    /// Security-policy warnings (nothing blocking, or the build would not have run).
    pub findings: Vec<Finding>,
    pub steps: u32,
    pub context_bytes: u64,
    pub duration_ms: u64,
}

pub async fn build_image_from_context(
    engine: &Engine,
    input: BuildFromContextInput,
) -> Result<BuildOutput> {
    let options = input.options()?;
    let dir = existing_context(input.context_id.trim())?;
    build(engine, &dir, options, &input.context_id).await
}

pub async fn build_image_from_path(
    engine: &Engine,
    input: BuildFromPathInput,
) -> Result<BuildOutput> {
    let options = input.options()?;
    let given = required("path", "path", &input.path)?;
    let dir = PathBuf::from(&given);
    if !dir.exists() {
        return Err(Error::invalid("path", format!("{given} does not exist")));
    }
    if !dir.is_dir() {
        return Err(Error::invalid(
            "path",
            format!("{given} is not a directory"),
        ));
    }
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::invalid("path", format!("{given}: {e}")))?;
    let task = dir
        .file_name()
        .map_or("build".into(), |n| n.to_string_lossy().into_owned());
    build(engine, &dir, options, &task).await
}

pub async fn build_image_from_git(
    engine: &Engine,
    input: BuildFromGitInput,
) -> Result<BuildOutput> {
    let options = input.options()?;
    let url = required("url", "url", &input.url)?;
    if url.starts_with('-') || url.contains("::") {
        return Err(Error::invalid(
            "url",
            format!("{url:?} is not a repository URL"),
        ));
    }
    let subdir = input
        .subdir
        .as_deref()
        .map(|s| relative_path("subdir", s))
        .transpose()?;
    let git_ref = input
        .r#ref
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if git_ref.is_some_and(|r| r.starts_with('-')) {
        return Err(Error::invalid("ref", "ref may not start with '-'"));
    }
    let staging = state::git_staging().join(random_hex(8));
    private_dir(&staging)?;
    let result = async {
        clone(&url, git_ref, &staging).await?;
        let dir = match &subdir {
            // A subdir that is a symlink must not build a host folder.
            Some(sub) => context::resolve_inside(&staging, sub)?.filter(|d| d.is_dir()),
            None => Some(staging.clone()),
        };
        let Some(dir) = dir else {
            return Err(Error::invalid(
                "subdir",
                format!(
                    "{} is not a folder of the repository",
                    subdir.unwrap_or_default()
                ),
            ));
        };
        let task = url
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("git")
            .to_string();
        build(engine, &dir, options, &task).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// A shallow clone of `url` at `git_ref` into `dir`, without its .git folder.
async fn clone(url: &str, git_ref: Option<&str>, dir: &Path) -> Result<()> {
    let git = |args: &[&str]| {
        let mut command = tokio::process::Command::new("git");
        command
            .args(args)
            .current_dir(dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            // No ext:: or fd:: transports: a URL must not run commands.
            .env("GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh")
            .stdin(std::process::Stdio::null());
        command
    };
    let run = |mut command: tokio::process::Command| async move {
        let out = command.output().await.map_err(|e| Error::GitFailed {
            url: url.to_string(),
            message: format!("cannot run git: {e}"),
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::GitFailed {
                url: url.to_string(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    };
    let is_commit =
        git_ref.is_some_and(|r| r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit()));
    match git_ref {
        Some(commit) if is_commit => {
            run(git(&["init", "-q", "."])).await?;
            run(git(&["fetch", "-q", "--depth", "1", "--", url, commit])).await?;
            run(git(&["checkout", "-q", "FETCH_HEAD"])).await?;
        }
        Some(branch) => {
            run(git(&[
                "clone",
                "-q",
                "--depth",
                "1",
                "--no-tags",
                "--branch",
                branch,
                "--",
                url,
                ".",
            ]))
            .await?
        }
        None => {
            run(git(&[
                "clone",
                "-q",
                "--depth",
                "1",
                "--no-tags",
                "--",
                url,
                ".",
            ]))
            .await?
        }
    }
    let dot_git = dir.join(".git");
    std::fs::remove_dir_all(&dot_git).map_err(|e| Error::state(&dot_git, e))
}

/// The shared build: tag, Dockerfile gate, context walk, the engine build, and the record
/// that lets prune_build_cache find what the build left behind.
async fn build(
    engine: &Engine,
    dir: &Path,
    options: BuildOptions,
    task: &str,
) -> Result<BuildOutput> {
    let started = Instant::now();
    let tag = options.tag.unwrap_or_else(|| default_tag(task));
    let dockerfile = options.dockerfile;
    let missing = || Error::DockerfileMissing {
        dockerfile: dockerfile.clone(),
        dir: dir.display().to_string(),
    };
    // Read where the engine will read it: a symlink out of the context is refused.
    let path = context::resolve_inside(dir, &dockerfile)?.ok_or_else(missing)?;
    let text = std::fs::read_to_string(path).map_err(|_| missing())?;
    let policy = dockerfile::Policy {
        allow_remote_add: options.allow_remote_add,
        build_args: &options.build_args,
    };
    let mut findings = dockerfile::gate(&text, &policy).map_err(|e| Error::DockerfileInvalid {
        dockerfile: dockerfile.clone(),
        line: e.line,
        message: e.message,
    })?;
    // A policy must grant the host network (checked before this call); without a policy it
    // is allowed, and said.
    if matches!(options.network, Some(BuildNetwork::Host)) {
        findings.push(dockerfile::Finding {
            rule: dockerfile::Rule::HostNetworkBuild,
            severity: Severity::Warning,
            line: 0,
            instruction: "network: \"host\"".to_string(),
            message: "RUN steps run in the host's network namespace: they can reach every service listening on the host's loopback (the engine's TCP port, databases, metadata endpoints)".to_string(),
        });
    }
    if findings.iter().any(|f| f.severity == Severity::Block) {
        return Err(Error::DockerfileBlocked { findings });
    }
    let walk = context::walk(
        dir,
        &[dockerfile.as_str(), ".dockerignore"],
        options.max_context_bytes,
    )?;
    let context_bytes = walk.bytes;

    let build_id = random_hex(8);
    let mut labels = Labels::new(Kind::Image).with(Label::Build, build_id.clone());
    labels.extend_user(options.labels);
    let request = BuildRequest {
        tag: tag.clone(),
        dockerfile,
        build_args: options.build_args.into_iter().collect(),
        labels,
        target: options.target,
        no_cache: options.no_cache,
        network_mode: options.network.map(|n| format!("{n:?}").to_lowercase()),
    };
    // Recorded before the engine starts, and at every step: a build stopped by its timeout
    // or by adde being killed leaves its intermediate images findable by prune and reap.
    record_build(&build_id, &tag, &[], false)?;
    let mut record_error = None;
    let building = engine.build(&request, context::tar_stream(walk), |steps| {
        if let Err(e) = record_build(&build_id, &tag, steps, false) {
            record_error.get_or_insert(e);
        }
    });
    // Dropping the build's request (at the timeout, or when the caller cancels the call)
    // closes its connection, and the engine stops the build there.
    let outcome = tokio::select! {
        done = tokio::time::timeout(options.timeout, building) => match done {
            Ok(outcome) => outcome?,
            Err(_) => BuildOutcome {
                error: Some(format!(
                    "the build took longer than {} s and was stopped",
                    options.timeout.as_secs_f64()
                )),
                ..Default::default()
            },
        },
        // The record stays unfinished: prune and reap find what the build left.
        _ = crate::call::cancelled() => return Err(Error::Interrupted),
    };
    if let Some(e) = record_error {
        return Err(e);
    }
    record_build(&build_id, &tag, &outcome.intermediates, true)?;
    let summary = log_summary(&outcome.lines);
    if let Some(error) = outcome.error {
        let (failed_step, failed_layer) = match outcome.step {
            Some((n, header)) => (Some(n), header),
            None => (None, "the Dockerfile".to_string()),
        };
        return Err(Error::BuildFailed {
            failed_layer,
            failed_step,
            error_line: error.trim().to_string(),
            log_summary: summary,
            warnings: findings,
        });
    }
    let image = engine
        .require_image(&tag, "not present after the build")
        .await?;
    Ok(BuildOutput {
        status: "success",
        image_id: image.id,
        tag,
        size_mb: megabytes(image.size),
        build_log_summary: summary,
        findings,
        steps: outcome.step.map_or(0, |(n, _)| n),
        context_bytes,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// The last meaningful lines: step headers and what the steps printed, not the builder's
/// bookkeeping.
fn log_summary(lines: &[String]) -> String {
    let meaningful: Vec<&String> = lines
        .iter()
        .filter(|l| {
            !(l.starts_with(" ---> ")
                || l.starts_with("Removing intermediate container")
                || l.starts_with("Sending build context")
                || l.trim().is_empty())
        })
        .collect();
    let start = meaningful.len().saturating_sub(SUMMARY_LINES);
    meaningful[start..]
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// What prune_build_cache and reap need to find a build's leftovers.
#[derive(Serialize, Deserialize)]
pub struct BuildRecord {
    pub build_id: String,
    pub tag: String,
    pub intermediates: Vec<String>,
    /// When the record was last written: the build's end once it is `finished`.
    pub finished_at: chrono::DateTime<chrono::Utc>,
    /// False while the build runs, and forever for one whose adde was killed.
    #[serde(default = "finished_by_default")]
    pub finished: bool,
}

/// Records written before builds were tracked while running were written at their end.
fn finished_by_default() -> bool {
    true
}

fn record_build(build_id: &str, tag: &str, intermediates: &[String], finished: bool) -> Result<()> {
    let dir = state::builds();
    private_dir(&dir)?;
    let record = BuildRecord {
        build_id: build_id.to_string(),
        tag: tag.to_string(),
        intermediates: intermediates.to_vec(),
        finished_at: chrono::Utc::now(),
        finished,
    };
    let path = dir.join(format!("{build_id}.json"));
    let body = serde_json::to_vec(&record).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, body).map_err(|e| Error::state(&path, e))
}

/// A valid image reference: `[host[:port]/]path[:tag]`, lowercase path components.
pub fn validate_tag(tag: &str) -> Result<String> {
    let bad = |why: &str| {
        Err(Error::invalid(
            "tag",
            format!("{tag:?} is not a valid image reference: {why}"),
        ))
    };
    if tag.contains('@') {
        return bad("a tag cannot hold a digest");
    }
    let (name, version) = match tag.rsplit_once(':') {
        Some((name, version)) if !version.contains('/') => (name, Some(version)),
        _ => (tag, None),
    };
    if let Some(version) = version {
        let ok = !version.is_empty()
            && version.len() <= 128
            && version
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return bad("the tag may hold letters, digits, '_', '.' and '-' (at most 128)");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        parts.remove(0);
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.chars().all(|ch| {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
            })
            && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
    };
    if parts.is_empty() || !parts.iter().all(|c| component_ok(c)) {
        return bad("the name must be lowercase letters, digits and '.', '_', '-' between them");
    }
    Ok(tag.to_string())
}

/// `agent-env:<task>-<UTC timestamp>`.
fn default_tag(task: &str) -> String {
    let task: String = task
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let task = task.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let task = if task.is_empty() { "build" } else { task };
    format!(
        "agent-env:{task}-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_checked_like_image_references() {
        for good in [
            "agent-env:task-1",
            "myimage",
            "127.0.0.1:5000/team/app:v1.2",
            "a/b_c.d-e:latest",
        ] {
            assert_eq!(validate_tag(good).unwrap(), good);
        }
        for bad in [
            "Agent:1",
            "app:",
            "app:-x",
            "app@sha256:00",
            "a//b",
            "app:has space",
            ":x",
        ] {
            assert_eq!(
                validate_tag(bad).err().unwrap().code(),
                "invalid_argument",
                "{bad}"
            );
        }
    }

    #[test]
    fn default_tags_follow_the_agent_env_convention() {
        let tag = default_tag("ctx-ABCD/../x y");
        assert!(tag.starts_with("agent-env:ctx-abcd-..-x-y-"), "{tag}");
        assert!(validate_tag(&tag).is_ok(), "{tag}");
        assert!(default_tag("!!!").starts_with("agent-env:build-"));
    }

    #[test]
    fn the_summary_keeps_what_the_steps_said() {
        let lines: Vec<String> = [
            "Step 1/2 : FROM a",
            " ---> 0123456789ab",
            "Step 2/2 : RUN make",
            " ---> Running in 1",
            "cc -o app",
            "Removing intermediate container 1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            log_summary(&lines),
            "Step 1/2 : FROM a\nStep 2/2 : RUN make\ncc -o app"
        );
    }
}
