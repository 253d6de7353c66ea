//! create_runtime_env: hardened, long-lived environments, created or (for sessions) found.
//!
//! `plan` validates the input before the engine is contacted, `setup` runs the short-lived
//! containers some environments need first (dependency installs, giving the workspace to a
//! user), and `describe` reads back what the engine applied.

mod describe;
mod install;
mod plan;
mod setup;

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::helper_volume::HelperVolume;
use crate::engine::{Engine, EngineFacts, Kind, Label, Labels, Network, VolumeBacking};
use crate::error::{Error, Result};
use crate::ids::random_hex;
use crate::protocol::{Role, DEPS_DIR, WORKSPACE};

pub use describe::{describe, CreateEnvOutput, EnvDescription};
pub use install::{install_dependencies, InstallInput};
pub(crate) use plan::loopback_index;
use plan::{plan, EnvPlan};
use setup::{container_spec, give_workspace_to, install_at_creation, mounts};

use crate::policy::{DEFAULT_CPUS, DEFAULT_DISK, DEFAULT_MEMORY, DEFAULT_NOFILE, DEFAULT_PIDS};

/// How long a create may take between making an environment's volumes and making its
/// container, beyond its dependency install: the volumes are spared by sweeps that long.
const CREATE_GRACE: Duration = Duration::from_secs(10 * 60);

/// What backs the workspace.
#[derive(Serialize, Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceKind {
    /// A named volume on the host's disk: survives restarts; its size is not bounded by the
    /// engine's local volume driver.
    #[default]
    Volume,
    /// A tmpfs of at most `disk`: bounded, but held in memory (it counts against `memory`)
    /// and emptied when the environment stops.
    Tmpfs,
}

impl WorkspaceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkspaceKind::Volume => "volume",
            WorkspaceKind::Tmpfs => "tmpfs",
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Debug)]
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

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum PackageManager {
    Pip,
    Npm,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum InstallNetwork {
    Bridge,
    Host,
}

#[derive(Serialize, Deserialize, JsonSchema)]
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
    #[schemars(extend("aliases" = ["name"]))]
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
    /// Disk bound, e.g. "1g": the workspace's size when `workspace` is "tmpfs", and the
    /// writable layer's quota on storage drivers that have quotas. The result's
    /// `limits.disk` says what is enforced and how; `warnings` say what is not.
    #[serde(default = "default_disk")]
    pub disk: String,
    /// What backs /workspace: "volume" (default; kept across restarts, not size-bounded by
    /// the local volume driver) or "tmpfs" (bounded by `disk`, counted against `memory`,
    /// emptied when the environment stops).
    #[serde(default)]
    pub workspace: WorkspaceKind,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug)]
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
fn default_disk() -> String {
    DEFAULT_DISK.into()
}
fn default_install_timeout() -> u64 {
    600
}

impl Default for CreateEnvInput {
    /// The input a payload with only `image` gives (an empty image).
    fn default() -> Self {
        CreateEnvInput {
            image: String::new(),
            dependencies: Vec::new(),
            env_vars: BTreeMap::new(),
            network: false,
            port_bindings: BTreeMap::new(),
            use_image_cmd: false,
            memory: default_memory(),
            cpus: default_cpus(),
            pids_limit: default_pids(),
            nofile: default_nofile(),
            pull: PullPolicy::default(),
            package_manager: None,
            pip_index_url: None,
            npm_registry: None,
            install_network: None,
            install_timeout_sec: default_install_timeout(),
            session: None,
            mounts: Vec::new(),
            user: None,
            read_only_rootfs: false,
            workdir: None,
            labels: BTreeMap::new(),
            runtime: None,
            ttl_sec: None,
            disk: default_disk(),
            workspace: WorkspaceKind::default(),
        }
    }
}

pub async fn create_runtime_env(engine: &Engine, input: CreateEnvInput) -> Result<CreateEnvOutput> {
    let plan = plan(&input)?;
    // A ready environment from a warm pool, when one has this spec (its checks against the
    // engine were made when the pool was).
    let (claimed, pool) = super::pools::claim(engine, &input).await?;
    if let Some(mut out) = claimed {
        out.pool = pool;
        return Ok(out);
    }
    let mut out = create_checked(engine, plan, &input).await?;
    out.pool = pool;
    Ok(out)
}

/// Whether a create request passes adde's own checks (and the policy's), without creating.
pub fn check(input: &CreateEnvInput) -> Result<()> {
    plan(input).map(drop)
}

/// Creates an environment for warm pool `pool`, named `name`.
pub async fn create_pool_member(
    engine: &Engine,
    input: CreateEnvInput,
    name: String,
    pool: &str,
) -> Result<()> {
    let mut plan = plan(&input)?;
    plan.pool = Some(pool.to_string());
    let facts = engine.facts().await?;
    create_new(engine, &plan, &input, &facts, name)
        .await
        .map(drop)
}

async fn create_checked(
    engine: &Engine,
    plan: EnvPlan,
    input: &CreateEnvInput,
) -> Result<CreateEnvOutput> {
    let facts = engine.facts().await?;
    if let Some(runtime) = &plan.runtime {
        if !facts.runtimes.contains(runtime) {
            let mut available = facts.runtimes.join(", ");
            if facts.only_default_runtime {
                available.push_str(" (Podman's Docker-compatible API runs every container on its default runtime, whatever is asked)");
            }
            return Err(Error::RuntimeNotAvailable {
                runtime: runtime.clone(),
                available,
            });
        }
    }
    for bind in &plan.binds {
        plan::refuse_engine_data(&bind.source, &facts.data_root)?;
    }
    match plan.session.clone() {
        None => {
            let name = format!("adde-{}", random_hex(6));
            create_new(engine, &plan, input, &facts, name).await
        }
        Some(session) => get_or_create(engine, &plan, input, &facts, &session).await,
    }
}

/// The container name of a session: readable, and unique per session name.
pub(crate) fn session_container(session: &str) -> String {
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
    facts: &EngineFacts,
    session: &str,
) -> Result<CreateEnvOutput> {
    let name = session_container(session);
    const COME_UP: Duration = Duration::from_secs(180);
    let deadline = tokio::time::Instant::now() + COME_UP;
    loop {
        if tokio::time::Instant::now() > deadline {
            return Err(Error::SessionNotReady {
                session: session.to_string(),
                seconds: COME_UP.as_secs(),
            });
        }
        let Some(existing) = engine.inspect_optional(&name).await? else {
            match create_new(engine, plan, input, facts, name.clone()).await {
                Ok(mut out) => {
                    out.session_action = Some("created");
                    return Ok(out);
                }
                Err(Error::Engine { status: 409, .. }) => continue,
                Err(e) => return Err(e),
            }
        };
        if !existing.labels.is_managed() {
            return Err(Error::NotManaged(name));
        }
        let differences = session_differences(plan, input, &existing);
        if !differences.is_empty() {
            return Err(Error::SessionConflict {
                session: session.to_string(),
                fields: differences.iter().map(|(f, _)| f.to_string()).collect(),
                differences: differences.into_iter().map(|(_, d)| d).collect(),
            });
        }
        let id = existing.id.clone();
        let age = existing
            .created
            .map(|t| chrono::Utc::now().signed_duration_since(t).num_seconds())
            .unwrap_or(i64::MAX);
        let action = match existing.state.status.as_str() {
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
        let env = describe(engine.inspect(&id).await?);
        // Limits that differ were a conflict above, unless the operator allowed dropped ones.
        let warnings =
            describe::check_limits_applied(describe::unapplied_limits(&plan.limits, &env.limits))?;
        return Ok(CreateEnvOutput {
            env,
            image_pulled: false,
            session_action: Some(action),
            warnings,
            pool: None,
        });
    }
}

async fn create_new(
    engine: &Engine,
    plan: &EnvPlan,
    input: &CreateEnvInput,
    facts: &EngineFacts,
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
        None => {
            engine
                .require_image(&plan.image, "not present after pulling")
                .await?
        }
    };
    if input.use_image_cmd && !image.has_command {
        return Err(Error::invalid(
            "use_image_cmd",
            format!(
                "image {} has no command (no CMD or ENTRYPOINT) to run",
                plan.image
            ),
        ));
    }
    let image_path = image.path_env;

    let suffix = random_hex(6);
    let mut resources = Resources {
        name,
        workspace: format!("adde-ws-{suffix}"),
        // Every environment has one, so that install_dependencies can fill it later.
        deps: Some(format!("adde-deps-{suffix}")),
        container: None,
        rootfs_quota: None,
    };
    let helper = HelperVolume::for_this_binary()?;
    let made = async {
        let (id, mut warnings) = build_env(
            engine,
            plan,
            input,
            facts,
            &mut resources,
            &helper,
            image_path,
        )
        .await?;
        let info = engine.inspect(&id).await?;
        let mut unapplied = Vec::from_iter(describe::unapplied_rootfs_quota(
            resources.rootfs_quota,
            info.rootfs_quota.as_deref(),
        ));
        let env = describe(info);
        unapplied.splice(0..0, describe::unapplied_limits(&plan.limits, &env.limits));
        warnings.extend(describe::disk_warnings(&env));
        warnings.extend(describe::check_limits_applied(unapplied)?);
        Ok((env, warnings))
    };
    match made.await {
        Ok((env, warnings)) => Ok(CreateEnvOutput {
            env,
            image_pulled,
            session_action: None,
            warnings,
            pool: None,
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
    /// The writable layer's quota (bytes) its container was created with, if any.
    rootfs_quota: Option<i64>,
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
    facts: &EngineFacts,
    res: &mut Resources,
    helper: &HelperVolume,
    image_path: Option<String>,
) -> Result<(String, Vec<String>)> {
    let mut warnings = Vec::new();
    // Until the container exists nothing uses its volumes: sweeps must wait for it (the
    // install, if any, and the rest of the create), and take them if this process dies.
    let installing = if plan.packages.is_empty() {
        0
    } else {
        input.install_timeout_sec
    };
    let pending_until =
        (chrono::Utc::now().timestamp() + (installing + CREATE_GRACE.as_secs()) as i64).to_string();
    for volume in res.volumes() {
        let labels = Labels::new(Kind::Volume)
            .with(Label::Env, res.name.clone())
            .with(Label::PendingUntil, pending_until.clone());
        let backing = match plan.workspace {
            WorkspaceKind::Tmpfs if volume == res.workspace => VolumeBacking::Tmpfs {
                bytes: plan.disk_bytes,
                owner: plan.user.as_deref().and_then(numeric_owner),
            },
            _ => VolumeBacking::Disk,
        };
        engine.create_volume_on(&volume, labels, backing).await?;
    }
    engine
        .create_volume(
            &helper.name,
            Labels::new(Kind::Helper).with(Label::PendingUntil, pending_until),
        )
        .await?;
    let mut env = plan.env.clone();
    let mut labels = Labels::new(Kind::Env);
    // The name its volumes know it by, whatever it is renamed to later.
    labels.set(Label::Env, res.name.clone());
    if let Some(pool) = &plan.pool {
        labels.set(Label::Pool, pool.clone());
    }
    let mut labels = labels
        .with(Label::Volumes, res.volumes().join(","))
        .with(Label::UseImageCmd, input.use_image_cmd.to_string())
        .with(Label::Image, plan.image.clone())
        .with(Label::Disk, plan.disk.clone())
        .with(Label::Workspace, plan.workspace.as_str())
        .with(
            Label::EnvVars,
            input.env_vars.keys().cloned().collect::<Vec<_>>().join(","),
        );
    if let Some(session) = &plan.session {
        labels.set(Label::Session, session.clone());
    }
    if let Some(expires_at) = plan.expires_at {
        labels.set(Label::ExpiresAt, expires_at.to_string());
    }
    if let Some(deps) = &res.deps {
        if !plan.packages.is_empty() {
            let manager = install_at_creation(engine, plan, input, res, deps, helper).await?;
            labels.set(Label::PackageManager, manager);
            labels.set(Label::Dependencies, plan.packages.join(" "));
        }
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
    }
    labels.extend_user(plan.labels.iter().cloned());

    let helper_args = (!input.use_image_cmd).then(|| Role::Idle.args(&[]));
    let mut mounts = mounts(res, helper, true);
    if plan.user.is_some() && plan.workspace == WorkspaceKind::Volume {
        // The prep container already copied the image's /workspace into the volume and gave
        // it to the user; a second copy-up on an empty volume would give it back to root.
        if let Some(workspace) = mounts.iter_mut().find(|m| m.target == WORKSPACE) {
            workspace.no_copy = true;
        }
    }
    mounts.extend(plan.binds.iter().cloned());
    let mut spec = container_spec(plan, res.name.clone(), helper_args, env, labels, mounts);
    spec.user = plan.user.clone();
    spec.workdir = plan.workdir.clone();
    spec.read_only_rootfs = plan.read_only_rootfs;
    // adde's helper is PID 1 itself: it reaps orphans, and as PID 1 it cannot be stopped from
    // inside. The image's own command keeps Docker's init, which reaps for it.
    spec.init = input.use_image_cmd;
    spec.agent = !input.use_image_cmd;
    if input.network {
        spec.network = Network::Bridge;
        spec.ports = plan.ports.clone();
    }
    // A tmpfs workspace is empty again once the preparation container stops: it is made
    // with the user's uid and gid (numeric users), or world-writable and sticky instead.
    if let (Some(user), WorkspaceKind::Volume) = (&plan.user, plan.workspace) {
        give_workspace_to(engine, plan, res, helper, user).await?;
    }
    let quota = quota_driver(&facts.storage_driver).then_some(plan.disk_bytes);
    let created = match engine.create_container_sized(spec.clone(), quota).await {
        Err(Error::Engine { status, message })
            if quota.is_some()
                && (status == 400 || status == 500)
                && message.contains("storage-opt") =>
        {
            // The result's limits.disk and warnings say the writable layer is unbounded.
            engine.create_container(spec).await?
        }
        other => {
            res.rootfs_quota = quota;
            other?
        }
    };
    let (id, engine_warnings) = created;
    warnings.extend(engine_warnings);
    res.container = Some(id.clone());
    helper.ensure(engine, &id, &plan.image).await?;
    engine.start(&id).await?;
    if let Err(e) = crate::state::remember_env(&id, &res.name) {
        warnings.push(format!("the environment's id could not be recorded: {e}"));
    }
    Ok((id, warnings))
}

/// Storage drivers whose storage-opt `size` bounds the writable layer (overlay2 only on xfs
/// with pquota: the engine refuses it otherwise, and adde says so).
fn quota_driver(driver: &str) -> bool {
    matches!(driver, "overlay2" | "btrfs" | "zfs")
}

/// "1000" or "1000:1000" as (uid, gid); a user name gives `None`.
fn numeric_owner(user: &str) -> Option<(u32, u32)> {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    Some((uid.parse().ok()?, gid.parse().ok()?))
}

/// What an existing session's environment has that the request asks otherwise: (field,
/// "field: asked …, has …"). Fields the request leaves to the image (user) are compared only
/// when asked for; fields an older adde did not record are not compared.
fn session_differences(
    plan: &EnvPlan,
    input: &CreateEnvInput,
    existing: &crate::engine::ContainerInfo,
) -> Vec<(&'static str, String)> {
    let labels = &existing.labels;
    let mut out = Vec::new();
    let mut compare = |field: &'static str, asked: String, has: String| {
        if asked != has {
            out.push((field, format!("{field}: asked {asked}, has {has}")));
        }
    };
    compare(
        "image",
        plan.image.clone(),
        labels.get(Label::Image).unwrap_or_default().to_string(),
    );
    // An engine that applies no limits (the operator allowed it) reads each back as none,
    // whatever was asked: there is nothing to compare with.
    let dropped_allowed = describe::unenforced_limits_allowed();
    let (asked, has) = (&plan.limits, &existing.limits);
    let limits = [
        ("memory", asked.memory_bytes, has.memory_bytes),
        (
            "cpus",
            (asked.cpus * 1e9) as i64,
            (has.cpus * 1e9).round() as i64,
        ),
        ("pids_limit", asked.pids_limit, has.pids_limit),
        ("nofile", asked.nofile, has.nofile),
    ];
    for (field, asked, has) in limits {
        if !(dropped_allowed && has <= 0) {
            compare(field, asked.to_string(), has.to_string());
        }
    }
    let network = if input.network { "bridge" } else { "none" };
    compare("network", network.into(), existing.network_mode.clone());
    let ports: BTreeMap<String, String> = if input.network {
        plan.ports
            .iter()
            .map(|(c, h)| (c.clone(), format!("127.0.0.1:{h}")))
            .collect()
    } else {
        BTreeMap::new()
    };
    compare(
        "port_bindings",
        format!("{ports:?}"),
        format!("{:?}", existing.port_bindings),
    );
    // source:target:ro|rw, as `docker run -v` writes a bind.
    let bind = |source: &str, target: &str, read_only: bool| {
        format!("{source}:{target}:{}", if read_only { "ro" } else { "rw" })
    };
    let mut asked_mounts: Vec<String> = plan
        .binds
        .iter()
        .map(|m| bind(&m.source, &m.target, m.read_only))
        .collect();
    let mut has_mounts: Vec<String> = existing
        .mounts
        .iter()
        .filter(|m| m.kind == crate::engine::MountKind::Bind)
        .map(|m| bind(&m.source, &m.target, m.read_only))
        .collect();
    asked_mounts.sort();
    has_mounts.sort();
    compare(
        "mounts",
        format!("{asked_mounts:?}"),
        format!("{has_mounts:?}"),
    );
    if let Some(user) = &plan.user {
        compare(
            "user",
            user.clone(),
            existing.user.clone().unwrap_or_default(),
        );
    }
    compare(
        "read_only_rootfs",
        plan.read_only_rootfs.to_string(),
        existing.read_only_rootfs.to_string(),
    );
    compare(
        "workdir",
        plan.workdir.clone(),
        existing.workdir.clone().unwrap_or_default(),
    );
    if let Some(runtime) = &plan.runtime {
        compare("runtime", runtime.clone(), existing.runtime.clone());
    }
    compare(
        "use_image_cmd",
        input.use_image_cmd.to_string(),
        labels.use_image_cmd().to_string(),
    );
    compare(
        "dependencies",
        plan.packages.join(" "),
        labels
            .get(Label::Dependencies)
            .unwrap_or_default()
            .to_string(),
    );
    compare(
        "labels",
        format!(
            "{:?}",
            plan.labels.iter().cloned().collect::<BTreeMap<_, _>>()
        ),
        format!("{:?}", labels.user_labels()),
    );
    if let Some(disk) = labels.get(Label::Disk) {
        let has = crate::tools::input::parse_size("disk", disk, 1).unwrap_or(-1);
        compare("disk", plan.disk_bytes.to_string(), has.to_string());
    }
    if let Some(workspace) = labels.get(Label::Workspace) {
        compare(
            "workspace",
            plan.workspace.as_str().into(),
            workspace.into(),
        );
    }
    if let Some(names) = labels.get(Label::EnvVars) {
        // The names recorded at creation, and their values in the container's environment.
        let has: BTreeMap<&str, &str> = names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|name| {
                let value = existing
                    .env
                    .iter()
                    .rev()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_default();
                (name, value)
            })
            .collect();
        let asked: BTreeMap<&str, &str> = input
            .env_vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if asked != has {
            // Values can be secrets: name the variables, not their values.
            let differing: Vec<&str> = asked
                .keys()
                .chain(has.keys())
                .filter(|k| asked.get(*k) != has.get(*k))
                .copied()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            out.push((
                "env_vars",
                format!("env_vars: {} differ", differing.join(", ")),
            ));
        }
    }
    out
}
