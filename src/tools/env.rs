//! create_runtime_env and cleanup_env: hardened, long-lived environments and their removal.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount, MountType, MountVolumeOptions, PortBinding,
    ResourcesUlimits,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::{self, Engine, LABEL_EXPIRES_AT, LABEL_USE_IMAGE_CMD, LABEL_VOLUMES};
use crate::error::{Error, Result};
use crate::helper::{InstallSpec, INSTALL_MARKER, NO_PACKAGE_MANAGER_EXIT};
use crate::ids::random_hex;
use crate::protocol::{DEPS_DIR, HELPER_FLAG, HELPER_PATH, WORKSPACE};

use super::helper_volume::HelperVolume;
use super::images::normalize_reference;

const DEFAULT_MEMORY: &str = "512m";
const DEFAULT_CPUS: f64 = 0.5;
const DEFAULT_PIDS: i64 = 256;
const DEFAULT_NOFILE: i64 = 1024;
/// Installer output kept in an error: the end, where the reason is.
const INSTALLER_OUTPUT_CAP: usize = 64 * 1024;

#[derive(Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    /// Pull only when the image is not present (the default).
    #[default]
    Missing,
    /// Never pull: a missing image is an error.
    Never,
    /// Pull even when the image is present.
    Always,
}

#[derive(Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    Pip,
    Npm,
}

#[derive(Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum InstallNetwork {
    Bridge,
    Host,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvInput {
    /// Image to run, e.g. "python:3.12-slim". Pulled when missing (see `pull`).
    pub image: String,
    /// Packages to install before the environment starts: pip for images with Python, npm
    /// for images with Node (detected from the image). Installed with network access even
    /// when `network` is false; the code you run never gets one unless `network` is true.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Environment variables for everything run in the environment.
    #[serde(default)]
    pub env_vars: BTreeMap<String, String>,
    /// Give the environment a network (Docker's bridge). Off by default.
    #[serde(default)]
    pub network: bool,
    /// Container port to host port, e.g. {"3000": "8080"} or {"53/udp": "5353"}. Published
    /// on 127.0.0.1 only; needs `network: true`.
    #[serde(default)]
    pub port_bindings: BTreeMap<String, String>,
    /// Run the image's own command (a server, say) instead of idling.
    #[serde(default)]
    pub use_image_cmd: bool,
    /// Memory limit, e.g. "512m", "2g"; swap is disabled (memory+swap = memory).
    #[serde(default = "default_memory")]
    pub memory: String,
    /// CPU limit in cores, e.g. 0.5.
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Most processes (and threads) the environment may have at once.
    #[serde(default = "default_pids")]
    pub pids_limit: i64,
    /// Most open files per process.
    #[serde(default = "default_nofile")]
    pub nofile: i64,
    /// When to pull the image: "missing" (default), "never", "always".
    #[serde(default)]
    pub pull: PullPolicy,
    /// Force the installer ("pip" or "npm") instead of detecting it.
    #[serde(default)]
    pub package_manager: Option<PackageManager>,
    /// Package index for pip (else PIP_INDEX_URL from adde's environment, else pip's default).
    #[serde(default)]
    pub pip_index_url: Option<String>,
    /// Registry for npm (else NPM_CONFIG_REGISTRY from adde's environment, else npm's default).
    #[serde(default)]
    pub npm_registry: Option<String>,
    /// Network of the install step: "bridge", or "host" to reach an index on the host's
    /// loopback. Default: "host" when the index is on 127.0.0.1/localhost, else "bridge".
    #[serde(default)]
    pub install_network: Option<InstallNetwork>,
    /// Time limit of the install step in seconds.
    #[serde(default = "default_install_timeout")]
    pub install_timeout_sec: u64,
    /// Get-or-create by name: the same session returns the same environment while it lives,
    /// restarts it when stopped, and creates it when gone.
    #[serde(default, alias = "name")]
    pub session: Option<String>,
    /// Host folders to mount, e.g. tools/ or skills/ an agent imports; read-only by default.
    /// The Docker socket can never be mounted.
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// User to run as ("1000", "1000:1000" or a name from the image); the workspace is made
    /// writable for it.
    #[serde(default)]
    pub user: Option<String>,
    /// Make the root filesystem read-only; /workspace and /tmp stay writable.
    #[serde(default)]
    pub read_only_rootfs: bool,
    /// Working directory of commands (default /workspace; code blocks always go to /workspace).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Labels for the container (adde's own `io.adde.*` labels are reserved).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// OCI runtime, e.g. "runsc"; checked against the engine's runtimes before anything is made.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Seconds after which `reap` removes the environment.
    #[serde(default)]
    pub ttl_sec: Option<u64>,
}

#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// Absolute host path.
    pub source: String,
    /// Absolute path in the environment.
    pub target: String,
    #[serde(default = "yes")]
    pub read_only: bool,
}

fn yes() -> bool {
    true
}

fn default_memory() -> String {
    DEFAULT_MEMORY.into()
}
fn default_cpus() -> f64 {
    DEFAULT_CPUS
}
fn default_pids() -> i64 {
    DEFAULT_PIDS
}
fn default_nofile() -> i64 {
    DEFAULT_NOFILE
}
fn default_install_timeout() -> u64 {
    600
}

#[derive(Serialize, Debug)]
pub struct CreateEnvOutput {
    #[serde(flatten)]
    pub env: EnvDescription,
    /// Whether the image had to be pulled for this call.
    pub image_pulled: bool,
    /// For sessions: "created", "reused" or "restarted".
    pub session_action: Option<&'static str>,
    /// Warnings from the engine, e.g. a limit the kernel cannot enforce.
    pub warnings: Vec<String>,
}

/// An environment as the engine reports it: what was actually applied.
#[derive(Serialize, Debug)]
pub struct EnvDescription {
    pub container_id: String,
    pub name: String,
    pub session: Option<String>,
    pub workspace: String,
    pub image: String,
    pub image_id: String,
    /// "running", "exited", ...
    pub state: String,
    pub created: String,
    /// When `reap` may remove it (UTC), if it has a TTL.
    pub expires_at: Option<String>,
    pub use_image_cmd: bool,
    /// "none" unless `network` was true.
    pub network: String,
    /// Published ports: "3000/tcp" -> "127.0.0.1:8080".
    pub port_bindings: BTreeMap<String, String>,
    pub user: Option<String>,
    pub workdir: String,
    pub mounts: Vec<MountInfo>,
    pub limits: Limits,
    pub security: Security,
    pub dependencies: Option<InstalledDeps>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Debug)]
pub struct MountInfo {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

#[derive(Serialize, Debug, Clone)]
pub struct Limits {
    pub memory: String,
    pub memory_bytes: i64,
    pub memory_swap_bytes: i64,
    pub cpus: f64,
    pub pids_limit: i64,
    pub nofile: i64,
}

#[derive(Serialize, Debug)]
pub struct Security {
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub init: bool,
    pub network_mode: String,
    pub read_only_rootfs: bool,
    /// The OCI runtime ("runc" unless another was asked for).
    pub runtime: String,
}

#[derive(Serialize, Debug)]
pub struct InstalledDeps {
    pub package_manager: String,
    pub packages: Vec<String>,
    pub path: String,
}

/// Everything validated before the engine is contacted.
struct EnvPlan {
    image: String,
    limits: Limits,
    env: Vec<String>,
    ports: BTreeMap<String, String>,
    packages: Vec<String>,
    installer_env: Vec<String>,
    install_network: InstallNetwork,
    session: Option<String>,
    binds: Vec<Mount>,
    user: Option<String>,
    read_only_rootfs: bool,
    workdir: String,
    labels: Vec<(String, String)>,
    runtime: Option<String>,
    expires_at: Option<i64>,
}

fn plan(input: &CreateEnvInput) -> Result<EnvPlan> {
    let image = normalize_reference(&super::required("image", "image name", &input.image)?)?;
    let memory_bytes = parse_memory(&input.memory)?;
    if !(input.cpus > 0.0 && input.cpus <= 1024.0) {
        return Err(Error::invalid(
            "cpus",
            "cpus must be a number of cores above 0, e.g. 0.5",
        ));
    }
    if input.pids_limit < 16 {
        return Err(Error::invalid(
            "pids_limit",
            "pids_limit must be at least 16",
        ));
    }
    if input.nofile < 64 {
        return Err(Error::invalid("nofile", "nofile must be at least 64"));
    }
    if input.install_timeout_sec == 0 {
        return Err(Error::invalid(
            "install_timeout_sec",
            "install_timeout_sec must be above 0",
        ));
    }
    let mut env = Vec::new();
    for (key, value) in &input.env_vars {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(Error::invalid(
                "env_vars",
                format!("{key:?} is not a valid variable name (no '=', no NUL, not empty)"),
            ));
        }
        env.push(format!("{key}={value}"));
    }
    let ports = parse_ports(&input.port_bindings)?;
    if !ports.is_empty() && !input.network {
        return Err(Error::invalid(
            "port_bindings",
            "port_bindings need network: true; an environment with no network publishes nothing",
        ));
    }
    let packages = input
        .dependencies
        .iter()
        .map(|dep| validate_dependency(dep))
        .collect::<Result<Vec<_>>>()?;

    let pass_through = |field: &Option<String>, vars: &[&str]| {
        field
            .clone()
            .or_else(|| vars.iter().find_map(|v| std::env::var(v).ok()))
            .filter(|v| !v.trim().is_empty())
    };
    let pip_index = pass_through(&input.pip_index_url, &["PIP_INDEX_URL"]);
    let npm_registry = pass_through(
        &input.npm_registry,
        &["NPM_CONFIG_REGISTRY", "npm_config_registry"],
    );
    let mut installer_env = vec!["PIP_BREAK_SYSTEM_PACKAGES=1".to_string()];
    for var in [
        "PIP_EXTRA_INDEX_URL",
        "PIP_TRUSTED_HOST",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    ] {
        if let Ok(value) = std::env::var(var) {
            installer_env.push(format!("{var}={value}"));
        }
    }
    if let Some(index) = &pip_index {
        installer_env.push(format!("PIP_INDEX_URL={index}"));
    }
    if let Some(registry) = &npm_registry {
        installer_env.push(format!("NPM_CONFIG_REGISTRY={registry}"));
    }
    let on_loopback = [&pip_index, &npm_registry]
        .into_iter()
        .flatten()
        .any(|url| is_loopback_url(url));
    let install_network = input.install_network.unwrap_or(if on_loopback {
        InstallNetwork::Host
    } else {
        InstallNetwork::Bridge
    });

    let session = input
        .session
        .as_deref()
        .map(|s| super::required("session", "session name", s))
        .transpose()?;
    let binds = input
        .mounts
        .iter()
        .map(validate_mount)
        .collect::<Result<Vec<_>>>()?;
    let user = input
        .user
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            let ok = u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
            ok.then(|| u.to_string()).ok_or_else(|| {
                Error::invalid("user", format!("{u:?} is not a user name or uid[:gid]"))
            })
        })
        .transpose()?;
    let workdir = match input
        .workdir
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        Some(dir) if dir.starts_with('/') && !dir.contains('\0') => dir.to_string(),
        Some(dir) => {
            return Err(Error::invalid(
                "workdir",
                format!("workdir {dir:?} must be an absolute path"),
            ))
        }
        None => WORKSPACE.to_string(),
    };
    let mut labels = Vec::new();
    for (key, value) in &input.labels {
        if key.starts_with("io.adde.") || key.is_empty() {
            return Err(Error::invalid(
                "labels",
                format!("label {key:?} is reserved for adde or empty"),
            ));
        }
        labels.push((key.clone(), value.clone()));
    }
    let runtime = input
        .runtime
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let expires_at = match input.ttl_sec {
        Some(0) => return Err(Error::invalid("ttl_sec", "ttl_sec must be above 0")),
        Some(ttl) => Some(chrono::Utc::now().timestamp() + ttl.min(10 * 365 * 86400) as i64),
        None => None,
    };
    Ok(EnvPlan {
        image,
        limits: Limits {
            memory: input.memory.trim().to_string(),
            memory_bytes,
            memory_swap_bytes: memory_bytes,
            cpus: input.cpus,
            pids_limit: input.pids_limit,
            nofile: input.nofile,
        },
        env,
        ports,
        packages,
        installer_env,
        install_network,
        session,
        binds,
        user,
        read_only_rootfs: input.read_only_rootfs,
        workdir,
        labels,
        runtime,
        expires_at,
    })
}

/// A host folder to bind: absolute paths, and never the Docker socket or a folder holding it.
fn validate_mount(spec: &MountSpec) -> Result<Mount> {
    let source = spec.source.trim();
    let target = spec.target.trim();
    if !source.starts_with('/') || source.contains('\0') {
        return Err(Error::invalid(
            "mounts",
            format!("mount source {source:?} must be an absolute host path"),
        ));
    }
    if !target.starts_with('/') || target.contains('\0') {
        return Err(Error::invalid(
            "mounts",
            format!("mount target {target:?} must be an absolute path"),
        ));
    }
    let normal = |p: &str| crate::tools::files::container_path("mounts", p);
    let target = normal(target)?;
    let reserved = [WORKSPACE, DEPS_DIR, crate::protocol::HELPER_DIR];
    if target == "/"
        || reserved
            .iter()
            .any(|r| target == *r || target.starts_with(&format!("{r}/")))
    {
        return Err(Error::invalid(
            "mounts",
            format!("mount target {target} is adde's own (or the root)"),
        ));
    }
    // Compare the spelled path and, when it exists here, the real one.
    let mut sources = vec![normal(source)?];
    if let Ok(real) = std::fs::canonicalize(source) {
        sources.push(real.display().to_string());
    }
    let mut sockets = vec![
        "/var/run/docker.sock".to_string(),
        "/run/docker.sock".to_string(),
    ];
    if let Some(path) = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
    {
        sockets.push(path);
    }
    let exposes = |src: &str| {
        sockets
            .iter()
            .any(|sock| sock == src || src == "/" || sock.starts_with(&format!("{src}/")))
    };
    if sources.iter().any(|src| exposes(src)) {
        return Err(Error::invalid(
            "mounts",
            format!("{source} is or holds the Docker socket, which is never mounted"),
        ));
    }
    if std::env::var("DOCKER_HOST").map_or(true, |h| h.is_empty() || h.starts_with("unix://"))
        && !Path::new(source).exists()
    {
        return Err(Error::invalid(
            "mounts",
            format!("mount source {source} does not exist"),
        ));
    }
    Ok(Mount {
        source: Some(sources.pop().unwrap_or_default()),
        target: Some(target),
        typ: Some(MountType::BIND),
        read_only: Some(spec.read_only),
        ..Default::default()
    })
}

pub async fn create_runtime_env(input: CreateEnvInput) -> Result<CreateEnvOutput> {
    let plan = plan(&input)?;
    let engine = Engine::connect()?;
    if let Some(runtime) = &plan.runtime {
        let available = engine.runtimes().await?;
        if !available.contains(runtime) {
            return Err(Error::RuntimeNotAvailable {
                runtime: runtime.clone(),
                available: available.join(", "),
            });
        }
    }
    match plan.session.clone() {
        None => create_new(&engine, &plan, &input, format!("adde-{}", random_hex(6))).await,
        Some(session) => get_or_create(&engine, &plan, &input, &session).await,
    }
}

/// The container name of a session: readable, and unique per session name.
fn session_container(session: &str) -> String {
    use std::hash::{Hash, Hasher};
    let readable: String = session
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let mut hasher = std::hash::DefaultHasher::new();
    session.hash(&mut hasher);
    format!(
        "adde-s-{}-{:08x}",
        readable.trim_matches('-'),
        hasher.finish() & 0xffff_ffff
    )
}

/// Returns the session's environment, starting or creating it as needed. The container name
/// is the lock: when two calls race, one creation fails with a name conflict, and that call
/// removes what it made and returns the winner's environment.
async fn get_or_create(
    engine: &Engine,
    plan: &EnvPlan,
    input: &CreateEnvInput,
    session: &str,
) -> Result<CreateEnvOutput> {
    let name = session_container(session);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Helper(format!(
                "session {session}'s environment did not come up in time"
            )));
        }
        let Some(existing) = engine.inspect_optional(&name).await? else {
            match create_new(engine, plan, input, name.clone()).await {
                Ok(mut out) => {
                    out.session_action = Some("created");
                    return Ok(out);
                }
                Err(Error::Engine { status: 409, .. }) => continue,
                Err(e) => return Err(e),
            }
        };
        let labels = existing
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        if !engine::is_managed(Some(&labels)) {
            return Err(Error::NotManaged(name));
        }
        let image = labels.get("io.adde.image").cloned().unwrap_or_default();
        if image != plan.image {
            return Err(Error::SessionConflict {
                session: session.to_string(),
                image,
            });
        }
        let id = existing.id.clone().unwrap_or_else(|| name.clone());
        let state = existing
            .state
            .as_ref()
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let age = existing
            .created
            .map(|t| chrono::Utc::now().signed_duration_since(t).num_seconds())
            .unwrap_or(i64::MAX);
        let action = match state.as_str() {
            "running" => "reused",
            // Another call is still setting it up.
            "created" if age < 120 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            _ => {
                HelperVolume::for_this_binary()?
                    .ensure(engine, &id, &plan.image)
                    .await?;
                engine.start(&id).await?;
                "restarted"
            }
        };
        return Ok(CreateEnvOutput {
            env: describe(engine.inspect(&id).await?),
            image_pulled: false,
            session_action: Some(action),
            warnings: Vec::new(),
        });
    }
}

async fn create_new(
    engine: &Engine,
    plan: &EnvPlan,
    input: &CreateEnvInput,
    name: String,
) -> Result<CreateEnvOutput> {
    let present = engine.inspect_image(&plan.image).await?;
    let image_pulled = match (present.is_some(), input.pull) {
        (true, PullPolicy::Missing | PullPolicy::Never) => false,
        (false, PullPolicy::Never) => {
            return Err(Error::ImageNotPresent {
                image: plan.image.clone(),
            })
        }
        _ => {
            engine.pull(&plan.image, None).await?;
            true
        }
    };
    let image = match present.filter(|_| !image_pulled) {
        Some(image) => image,
        None => engine
            .inspect_image(&plan.image)
            .await?
            .ok_or_else(|| Error::ImageNotFound {
                image: plan.image.clone(),
                detail: "not present after pulling".into(),
            })?,
    };
    let image_config = image.config.unwrap_or_default();
    if input.use_image_cmd && image_config.cmd.is_none() && image_config.entrypoint.is_none() {
        return Err(Error::invalid(
            "use_image_cmd",
            format!(
                "image {} has no command (no CMD or ENTRYPOINT) to run",
                plan.image
            ),
        ));
    }
    let image_path = image_config
        .env
        .unwrap_or_default()
        .into_iter()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string));

    let suffix = random_hex(6);
    let mut resources = Resources {
        name,
        workspace: format!("adde-ws-{suffix}"),
        deps: (!plan.packages.is_empty()).then(|| format!("adde-deps-{suffix}")),
        container: None,
    };
    let helper = HelperVolume::for_this_binary()?;
    match build_env(engine, plan, input, &mut resources, &helper, image_path).await {
        Ok((id, warnings)) => Ok(CreateEnvOutput {
            env: describe(engine.inspect(&id).await?),
            image_pulled,
            session_action: None,
            warnings,
        }),
        Err(err) => {
            // Leave nothing behind: what this call made, and nothing of anyone else's.
            if let Some(id) = &resources.container {
                let _ = engine.remove_container(id).await;
            }
            for volume in resources.volumes() {
                let _ = engine.remove_volume(&volume).await;
            }
            Err(err)
        }
    }
}

/// The names of what one environment is made of, and its container once it exists.
struct Resources {
    name: String,
    workspace: String,
    deps: Option<String>,
    container: Option<String>,
}

impl Resources {
    fn volumes(&self) -> Vec<String> {
        std::iter::once(self.workspace.clone())
            .chain(self.deps.clone())
            .collect()
    }
}

async fn build_env(
    engine: &Engine,
    plan: &EnvPlan,
    input: &CreateEnvInput,
    res: &mut Resources,
    helper: &HelperVolume,
    image_path: Option<String>,
) -> Result<(String, Vec<String>)> {
    let volume_labels = engine::labels("volume", &[("io.adde.env", res.name.clone())]);
    for volume in res.volumes() {
        engine.create_volume(&volume, volume_labels.clone()).await?;
    }
    engine
        .create_volume(&helper.name, engine::labels("helper", &[]))
        .await?;
    let mut env = plan.env.clone();
    let mut labels = vec![
        (LABEL_VOLUMES, res.volumes().join(",")),
        (LABEL_USE_IMAGE_CMD, input.use_image_cmd.to_string()),
        ("io.adde.image", plan.image.clone()),
    ];
    if let Some(session) = &plan.session {
        labels.push(("io.adde.session", session.clone()));
    }
    if let Some(expires_at) = plan.expires_at {
        labels.push((LABEL_EXPIRES_AT, expires_at.to_string()));
    }
    if res.deps.is_some() {
        let manager = install_dependencies(engine, plan, input, res, helper).await?;
        let path = image_path.unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        // Ahead of the user's own variables, which may still override them.
        env.splice(
            0..0,
            [
                format!("PYTHONPATH={DEPS_DIR}/python"),
                format!("NODE_PATH={DEPS_DIR}/node/node_modules"),
                format!("PATH={DEPS_DIR}/python/bin:{DEPS_DIR}/node/node_modules/.bin:{path}"),
            ],
        );
        labels.push(("io.adde.package_manager", manager));
        labels.push(("io.adde.dependencies", plan.packages.join(" ")));
    }
    let mut labels = engine::labels("env", &labels);
    labels.extend(plan.labels.iter().cloned());

    let command = (!input.use_image_cmd).then(|| vec![HELPER_FLAG.to_string(), "idle".to_string()]);
    let mut mounts = mounts(res, helper, true);
    if plan.user.is_some() {
        // The prep container already copied the image's /workspace into the volume and gave
        // it to the user; a second copy-up on an empty volume would give it back to root.
        if let Some(workspace) = mounts
            .iter_mut()
            .find(|m| m.target.as_deref() == Some(WORKSPACE))
        {
            workspace.volume_options = Some(MountVolumeOptions {
                no_copy: Some(true),
                ..Default::default()
            });
        }
    }
    mounts.extend(plan.binds.iter().cloned());
    let mut body = hardened_body(plan, command, env, labels, mounts);
    body.user = plan.user.clone();
    body.working_dir = Some(plan.workdir.clone());
    let mut host = body.host_config.take().unwrap_or_default();
    if plan.read_only_rootfs {
        host.readonly_rootfs = Some(true);
        host.tmpfs = Some(HashMap::from([(
            "/tmp".to_string(),
            "rw,nosuid,nodev,size=64m,mode=1777".to_string(),
        )]));
    }
    if input.network {
        host.network_mode = Some("bridge".into());
        host.port_bindings = Some(
            plan.ports
                .iter()
                .map(|(container, host_port)| {
                    let binding = PortBinding {
                        host_ip: Some("127.0.0.1".into()),
                        host_port: Some(host_port.clone()),
                    };
                    (container.clone(), Some(vec![binding]))
                })
                .collect(),
        );
        body.exposed_ports = Some(plan.ports.keys().cloned().collect());
    }
    body.host_config = Some(host);
    if let Some(user) = &plan.user {
        give_workspace_to(engine, plan, res, helper, user).await?;
    }
    let (id, warnings) = engine.create_container(&res.name, body).await?;
    res.container = Some(id.clone());
    helper.ensure(engine, &id, &plan.image).await?;
    engine.start(&id).await?;
    Ok((id, warnings))
}

/// Gives the workspace volume to `user` before anything runs, from a short-lived container
/// of the same image that has only CAP_CHOWN. (The archive API cannot: Docker resolves its
/// ownership through the host's user database.)
async fn give_workspace_to(
    engine: &Engine,
    plan: &EnvPlan,
    res: &Resources,
    helper: &HelperVolume,
    user: &str,
) -> Result<()> {
    let command = Some(vec![
        HELPER_FLAG.to_string(),
        "chown".to_string(),
        user.to_string(),
    ]);
    let mut mounts = mounts(res, helper, false);
    mounts.retain(|m| m.target.as_deref() != Some(DEPS_DIR));
    let labels = engine::labels("prep", &[("io.adde.env", res.name.clone())]);
    let mut body = hardened_body(plan, command, Vec::new(), labels, mounts);
    body.user = Some("0:0".into());
    if let Some(host) = body.host_config.as_mut() {
        host.cap_add = Some(vec!["CHOWN".into()]);
    }
    let (id, _) = engine
        .create_container(&format!("{}-prep", res.name), body)
        .await?;
    let outcome = async {
        helper.ensure(engine, &id, &plan.image).await?;
        engine.start(&id).await?;
        let code = engine.wait(&id, Duration::from_secs(60)).await?;
        let (_, stderr) = engine.logs(&id, None).await?;
        Ok::<_, Error>((code, stderr))
    }
    .await;
    let _ = engine.remove_container(&id).await;
    match outcome? {
        (Some(0), _) => Ok(()),
        (_, stderr) => Err(Error::invalid(
            "user",
            String::from_utf8_lossy(&stderr).trim().to_string(),
        )),
    }
}

/// An environment as the engine reports it.
pub fn describe(c: bollard::models::ContainerInspectResponse) -> EnvDescription {
    let config = c.config.unwrap_or_default();
    let host = c.host_config.unwrap_or_default();
    let labels = config.labels.unwrap_or_default();
    let label = |k: &str| labels.get(k).cloned();
    let memory = host.memory.unwrap_or(0);
    let time = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let network = host.network_mode.clone().unwrap_or_default();
    EnvDescription {
        container_id: c.id.unwrap_or_default(),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        session: label("io.adde.session"),
        workspace: WORKSPACE.to_string(),
        image: label("io.adde.image").unwrap_or_else(|| config.image.clone().unwrap_or_default()),
        image_id: c.image.unwrap_or_default(),
        state: c
            .state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        created: c
            .created
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        expires_at: label(LABEL_EXPIRES_AT)
            .and_then(|t| t.parse().ok())
            .map(time),
        use_image_cmd: label(LABEL_USE_IMAGE_CMD).as_deref() == Some("true"),
        port_bindings: host
            .port_bindings
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(port, bindings)| {
                let b = bindings?.into_iter().next()?;
                Some((
                    port,
                    format!(
                        "{}:{}",
                        b.host_ip.unwrap_or_default(),
                        b.host_port.unwrap_or_default()
                    ),
                ))
            })
            .collect(),
        network: network.clone(),
        user: config.user.filter(|u| !u.is_empty()),
        workdir: config.working_dir.unwrap_or_default(),
        mounts: host
            .mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.typ == Some(MountType::BIND))
            .map(|m| MountInfo {
                source: m.source.unwrap_or_default(),
                target: m.target.unwrap_or_default(),
                read_only: m.read_only.unwrap_or(false),
            })
            .collect(),
        limits: Limits {
            memory: format_size(memory),
            memory_bytes: memory,
            memory_swap_bytes: host.memory_swap.unwrap_or(0),
            cpus: host.nano_cpus.unwrap_or(0) as f64 / 1e9,
            pids_limit: host.pids_limit.unwrap_or(0),
            nofile: host
                .ulimits
                .unwrap_or_default()
                .iter()
                .find(|u| u.name.as_deref() == Some("nofile"))
                .and_then(|u| u.soft)
                .unwrap_or(0),
        },
        security: Security {
            cap_drop: host.cap_drop.unwrap_or_default(),
            no_new_privileges: host
                .security_opt
                .unwrap_or_default()
                .iter()
                .any(|o| o.starts_with("no-new-privileges")),
            init: host.init.unwrap_or(false),
            network_mode: network,
            read_only_rootfs: host.readonly_rootfs.unwrap_or(false),
            runtime: host.runtime.unwrap_or_else(|| "runc".into()),
        },
        dependencies: label("io.adde.package_manager").map(|manager| InstalledDeps {
            package_manager: manager,
            packages: label("io.adde.dependencies")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            path: DEPS_DIR.to_string(),
        }),
        labels: labels
            .into_iter()
            .filter(|(k, _)| !k.starts_with("io.adde."))
            .collect(),
    }
}

/// 536870912 as "512m".
fn format_size(bytes: i64) -> String {
    match bytes {
        b if b > 0 && b % (1 << 30) == 0 => format!("{}g", b >> 30),
        b if b > 0 && b % (1 << 20) == 0 => format!("{}m", b >> 20),
        b => b.to_string(),
    }
}

/// Runs the install in a short-lived container of the same image, with a network, writing
/// into the deps volume that the environment later mounts read-only. Returns the manager.
async fn install_dependencies(
    engine: &Engine,
    plan: &EnvPlan,
    input: &CreateEnvInput,
    res: &Resources,
    helper: &HelperVolume,
) -> Result<String> {
    let spec = InstallSpec {
        packages: plan.packages.clone(),
        manager: input
            .package_manager
            .map(|m| format!("{m:?}").to_lowercase()),
    };
    let spec = serde_json::to_string(&spec).map_err(|e| Error::Internal(e.to_string()))?;
    let labels = engine::labels("installer", &[("io.adde.env", res.name.clone())]);
    let command = Some(vec![HELPER_FLAG.to_string(), "install".to_string(), spec]);
    let mut mounts = mounts(res, helper, false);
    mounts.retain(|m| m.source.as_deref() != Some(res.workspace.as_str()));
    let mut body = hardened_body(plan, command, plan.installer_env.clone(), labels, mounts);
    if let Some(host) = body.host_config.as_mut() {
        host.network_mode = Some(
            match plan.install_network {
                InstallNetwork::Bridge => "bridge",
                InstallNetwork::Host => "host",
            }
            .into(),
        );
    }
    let name = format!("{}-install", res.name);
    let (id, _) = engine.create_container(&name, body).await?;
    let outcome = async {
        helper.ensure(engine, &id, &plan.image).await?;
        engine.start(&id).await?;
        let limit = Duration::from_secs(input.install_timeout_sec);
        let code = engine.wait(&id, limit).await?;
        let (stdout, stderr) = engine.logs(&id, None).await?;
        Ok::<_, Error>((code, stdout, stderr))
    }
    .await;
    let _ = engine.remove_container(&id).await;
    let (code, stdout, stderr) = outcome?;

    let stderr = String::from_utf8_lossy(&stderr);
    let manager = stderr
        .lines()
        .find_map(|l| l.strip_prefix(INSTALL_MARKER))
        .unwrap_or("unknown")
        .to_string();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        stderr
            .lines()
            .filter(|l| !l.starts_with(INSTALL_MARKER))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    match code {
        Some(0) => Ok(manager),
        Some(code) if code == i64::from(NO_PACKAGE_MANAGER_EXIT) && manager == "none" => {
            Err(Error::NoPackageManager {
                wanted: match input.package_manager {
                    Some(PackageManager::Pip) => "pip (python3 -m pip)".into(),
                    Some(PackageManager::Npm) => "npm".into(),
                    None => {
                        "package manager adde knows (pip through python3/python, or npm)".into()
                    }
                },
            })
        }
        Some(code) => Err(Error::DependencyInstallFailed {
            manager,
            exit_code: code,
            output: keep_end(&output, INSTALLER_OUTPUT_CAP),
        }),
        None => Err(Error::DependencyInstallFailed {
            manager,
            exit_code: crate::protocol::TIMEOUT_EXIT_CODE,
            output: keep_end(
                &format!(
                    "{output}\n[adde: install timed out after {} s]",
                    input.install_timeout_sec
                ),
                INSTALLER_OUTPUT_CAP,
            ),
        }),
    }
}

fn keep_end(text: &str, cap: usize) -> String {
    if text.len() <= cap {
        return text.to_string();
    }
    let mut start = text.len() - cap;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// The workspace volume, the deps volume (read-only in the environment itself) and the
/// helper's volume (always read-only).
fn mounts(res: &Resources, helper: &HelperVolume, read_only_deps: bool) -> Vec<Mount> {
    let volume = |source: &str, target: &str, read_only: bool| Mount {
        source: Some(source.to_string()),
        target: Some(target.to_string()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        ..Default::default()
    };
    let mut mounts = vec![volume(&res.workspace, WORKSPACE, false), helper.mount(true)];
    if let Some(deps) = &res.deps {
        mounts.push(volume(deps, DEPS_DIR, read_only_deps));
    }
    mounts
}

/// A container with adde's defaults: no network, every capability dropped,
/// no-new-privileges, memory without swap, CPU, PID and open-file limits, and an init
/// process that reaps orphans. `command` runs adde's helper; `None` keeps the image's own.
fn hardened_body(
    plan: &EnvPlan,
    command: Option<Vec<String>>,
    env: Vec<String>,
    labels: HashMap<String, String>,
    mounts: Vec<Mount>,
) -> ContainerCreateBody {
    let limits = &plan.limits;
    ContainerCreateBody {
        image: Some(plan.image.clone()),
        entrypoint: command.as_ref().map(|_| vec![HELPER_PATH.to_string()]),
        cmd: command,
        env: Some(env),
        working_dir: Some(WORKSPACE.to_string()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            memory: Some(limits.memory_bytes),
            memory_swap: Some(limits.memory_swap_bytes),
            nano_cpus: Some((limits.cpus * 1e9) as i64),
            pids_limit: Some(limits.pids_limit),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(limits.nofile),
                hard: Some(limits.nofile),
            }]),
            init: Some(true),
            mounts: Some(mounts),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// "512m", "2g", "1048576", "64k" into bytes; the engine needs at least 6 MiB.
pub fn parse_memory(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, unit) = match t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit() && *c != '.')
    {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let scale: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0f64.powi(4),
        _ => f64::NAN,
    };
    let bytes = digits.parse::<f64>().map(|n| n * scale).unwrap_or(f64::NAN);
    if !bytes.is_finite() || bytes < 6.0 * 1024.0 * 1024.0 {
        return Err(Error::invalid(
            "memory",
            format!("memory {text:?} is not a size of at least 6m, e.g. \"512m\" or \"2g\""),
        ));
    }
    Ok(bytes as i64)
}

/// {"3000": "8080"} into {"3000/tcp": "8080"}, every port checked.
fn parse_ports(bindings: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let port = |text: &str, min: u32| {
        text.parse::<u32>()
            .ok()
            .filter(|p| (min..=65535).contains(p))
    };
    bindings
        .iter()
        .map(|(container, host)| {
            let (number, proto) = container.split_once('/').unwrap_or((container, "tcp"));
            let valid = port(number, 1).is_some()
                && ["tcp", "udp", "sctp"].contains(&proto)
                && port(host.trim(), 0).is_some();
            if !valid {
                return Err(Error::invalid(
                    "port_bindings",
                    format!("{container:?}: {host:?} is not a binding like \"3000\": \"8080\" (ports 1-65535, optional /tcp, /udp or /sctp)"),
                ));
            }
            Ok((format!("{number}/{proto}"), host.trim().to_string()))
        })
        .collect()
}

/// A package spec goes to the installer as one argument, after `--`; one that looks like an
/// option or holds control characters is refused anyway.
fn validate_dependency(dep: &str) -> Result<String> {
    let trimmed = dep.trim();
    if trimmed.is_empty() || trimmed.starts_with('-') || trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(
            "dependencies",
            format!("{dep:?} is not a package name (it may not be empty, start with '-' or hold control characters)"),
        ));
    }
    Ok(trimmed.to_string())
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']').next().unwrap_or("").trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse() {
        assert_eq!(parse_memory("512m").unwrap(), 512 << 20);
        assert_eq!(parse_memory("2g").unwrap(), 2 << 30);
        assert_eq!(parse_memory("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_memory("8mb").unwrap(), 8 << 20);
        for bad in ["", "lots", "1m", "-5m", "5x"] {
            assert_eq!(
                parse_memory(bad).err().unwrap().code(),
                "invalid_argument",
                "{bad}"
            );
        }
    }

    #[test]
    fn ports_parse_and_default_to_tcp() {
        let given = BTreeMap::from([
            ("3000".to_string(), "8080".to_string()),
            ("53/udp".to_string(), "0".to_string()),
        ]);
        let got = parse_ports(&given).unwrap();
        assert_eq!(got["3000/tcp"], "8080");
        assert_eq!(got["53/udp"], "0");
        for (c, h) in [
            ("0", "80"),
            ("70000", "80"),
            ("80/xyz", "80"),
            ("80", "http"),
        ] {
            let bad = BTreeMap::from([(c.to_string(), h.to_string())]);
            assert!(parse_ports(&bad).is_err(), "{c} {h}");
        }
    }

    #[test]
    fn dependencies_that_look_like_options_are_refused() {
        assert_eq!(validate_dependency(" requests>=2 ").unwrap(), "requests>=2");
        for bad in ["", "--index-url=http://evil", "-e.", "a\nb"] {
            assert!(validate_dependency(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loopback_indexes_are_recognised() {
        assert!(is_loopback_url("http://127.0.0.1:8080/simple"));
        assert!(is_loopback_url("http://user:pw@localhost/simple"));
        assert!(is_loopback_url("http://[::1]:3141/root/pypi"));
        assert!(!is_loopback_url("https://pypi.org/simple"));
        assert!(!is_loopback_url("http://10.0.0.5/simple"));
    }

    fn input(extra: serde_json::Value) -> CreateEnvInput {
        let mut payload = serde_json::json!({"image": "busybox"});
        payload
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        super::super::parse(payload).unwrap()
    }

    #[test]
    fn plan_applies_safe_defaults_and_refuses_ports_without_network() {
        let plan = plan(&input(serde_json::json!({}))).unwrap();
        assert_eq!(plan.image, "busybox:latest");
        assert_eq!(plan.limits.memory_bytes, 512 << 20);
        assert_eq!(plan.limits.memory_swap_bytes, plan.limits.memory_bytes);
        assert_eq!(plan.limits.pids_limit, DEFAULT_PIDS);
        let err = super::plan(&input(
            serde_json::json!({"port_bindings": {"3000": "8080"}}),
        ))
        .err()
        .unwrap();
        assert_eq!(err.details()["field"], "port_bindings");
        let ok = super::plan(&input(
            serde_json::json!({"network": true, "port_bindings": {"3000": "8080"}}),
        ));
        assert!(ok.is_ok());
    }

    #[test]
    fn a_loopback_index_makes_the_install_use_the_host_network() {
        let plan = plan(&input(
            serde_json::json!({"pip_index_url": "http://127.0.0.1:9/simple"}),
        ))
        .unwrap();
        assert_eq!(plan.install_network, InstallNetwork::Host);
        assert!(plan
            .installer_env
            .contains(&"PIP_INDEX_URL=http://127.0.0.1:9/simple".to_string()));
    }
}
