//! Housekeeping of environments: cleanup_env, list_runtime_envs, reap, and ping.

use std::path::Path;
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::helper_volume::HelperVolume;
use crate::engine::{self, Engine, Kind, Labels};
use crate::error::{Error, Result};
use crate::refs;
use crate::state;

use super::build::BuildRecord;
use super::env::{describe, EnvDescription};
use super::images::remove_build_leftovers;
use super::input::in_range;

/// Removes an environment's container and the volumes it owns: those its labels name that
/// are adde's and name this environment as theirs. Returns the volumes removed.
pub async fn remove_env(engine: &Engine, id: &str, labels: &Labels) -> Result<Vec<String>> {
    // Its volumes name it by the name it was created with (a warm pool's member is renamed
    // when claimed); environments of older versions carry only their current name.
    let name = engine.inspect_optional(id).await?.map(|c| {
        labels
            .get(engine::Label::Env)
            .map_or(c.name, str::to_string)
    });
    engine.remove_container(id).await?;
    let mut removed = Vec::new();
    let Some(name) = name else {
        return Ok(removed);
    };
    state::forget_env(id);
    for volume in labels.volumes() {
        if engine.remove_env_volume(&volume, &name).await? {
            removed.push(volume);
        }
    }
    // Volumes that name this environment but not in its labels (an older adde's, say).
    removed.extend(remove_orphaned_volumes(engine, &name).await?);
    Ok(removed)
}

/// Removes the volumes of an environment whose container is gone (removed by hand, say):
/// found by their `io.adde.env` label.
async fn remove_orphaned_volumes(engine: &Engine, name: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for volume in engine.env_volumes(name).await? {
        if engine.remove_env_volume(&volume, name).await? {
            removed.push(volume);
        }
    }
    Ok(removed)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupInput {
    /// The environment to remove: id, short id, name, or a session name that is also a
    /// valid container name. When its container was already removed (by hand, say), its
    /// volumes are still found and removed.
    #[serde(default)]
    pub container_id: Option<String>,
    /// The environment of this session (any session name), instead of container_id.
    #[serde(default)]
    pub session: Option<String>,
    /// Remove every environment this owner created (ADDE_OWNER, else the host user), and
    /// this owner's adde volumes that no container uses.
    #[serde(default)]
    pub all: bool,
    /// With `all`: only the environments that carry all these labels (and no volume sweep).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// With `all`: every owner's environments and volumes, not only this owner's.
    #[serde(default)]
    pub all_owners: bool,
}

#[derive(Serialize)]
pub struct CleanupOutput {
    pub ok: bool,
    /// Ids of the containers removed.
    pub removed: Vec<String>,
    pub volumes_removed: Vec<String>,
}

pub async fn cleanup_env(engine: &Engine, input: CleanupInput) -> Result<CleanupOutput> {
    let target = match (&input.container_id, &input.session) {
        (Some(id), None) => Some(refs::container_id("container_id", id)?),
        (None, Some(session)) => Some(refs::session("session", session)?),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "session",
                "give either container_id or session, not both",
            ))
        }
    };
    if target.is_some() == input.all {
        return Err(Error::invalid(
            "container_id",
            "give either container_id (or session) or all: true",
        ));
    }
    if !input.labels.is_empty() && !input.all {
        return Err(Error::invalid(
            "labels",
            "labels filter `all: true`; give them together",
        ));
    }
    let mut out = CleanupOutput {
        ok: true,
        removed: Vec::new(),
        volumes_removed: Vec::new(),
    };
    if input.all_owners && !input.all {
        return Err(Error::invalid(
            "all_owners",
            "all_owners widens `all: true`; give them together",
        ));
    }
    let targets: Vec<(String, Labels)> = match target {
        Some(id) => match find_env(engine, &id, input.session.is_some()).await? {
            Found::Container(container) => vec![(container.id, container.labels)],
            Found::Gone { id, name } => {
                // The container was removed by hand: its volumes are still adde's to remove.
                out.volumes_removed
                    .extend(remove_orphaned_volumes(engine, &name).await?);
                if let Some(id) = id {
                    state::forget_env(&id);
                    out.removed.push(id);
                }
                if out.removed.is_empty() && out.volumes_removed.is_empty() {
                    return Err(Error::ContainerNotFound(name));
                }
                return Ok(out);
            }
        },
        None => engine
            .list_managed(None)
            .await?
            .into_iter()
            .filter(|c| input.all_owners || c.labels.is_mine())
            .filter(|c| c.labels.matches(&input.labels))
            .map(|c| (c.id, c.labels))
            .collect(),
    };
    for (id, labels) in targets {
        out.volumes_removed
            .extend(remove_env(engine, &id, &labels).await?);
        out.removed.push(id);
    }
    if input.all && input.labels.is_empty() {
        let swept = remove_unused_volumes(engine, input.all_owners, SpareHelpers::None).await?;
        out.volumes_removed.extend(swept);
    }
    Ok(out)
}

/// What cleanup_env was pointed at.
enum Found {
    /// A container of adde's.
    Container(Box<engine::ContainerInfo>),
    /// No container any more: its name (and id, when adde recorded it).
    Gone { id: Option<String>, name: String },
}

/// An environment by id, short id, container name or session name; when its container is
/// gone, the name its volumes are labelled with.
async fn find_env(engine: &Engine, id: &str, only_session: bool) -> Result<Found> {
    let is_id = !only_session && refs::container_id("container_id", id).is_ok();
    if is_id {
        if let Some(container) = engine.inspect_optional(id).await? {
            if !container.labels.is_managed() {
                return Err(Error::NotManaged(id.to_string()));
            }
            return Ok(Found::Container(Box::new(container)));
        }
    }
    if let Ok(session) = refs::session("session", id) {
        let name = super::env::session_container(&session);
        if let Some(container) = engine.inspect_optional(&name).await? {
            if container.labels.is_managed() {
                return Ok(Found::Container(Box::new(container)));
            }
        }
        if !engine.env_volumes(&name).await?.is_empty() {
            return Ok(Found::Gone { id: None, name });
        }
    }
    if let Some((full, name)) = state::recalled_env(id).filter(|_| is_id) {
        return Ok(Found::Gone {
            id: Some(full),
            name,
        });
    }
    if !is_id {
        return Err(Error::ContainerNotFound(id.to_string()));
    }
    Ok(Found::Gone {
        id: None,
        name: id.to_string(),
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEnvsInput {
    /// Only this session's environment.
    #[serde(default)]
    pub session: Option<String>,
    /// Stopped environments too (running ones only by default).
    #[serde(default)]
    pub all: bool,
    /// Every owner's environments, not only this owner's.
    #[serde(default)]
    pub all_owners: bool,
}

#[derive(Serialize)]
pub struct ListEnvsOutput {
    pub environments: Vec<EnvDescription>,
}

pub async fn list_runtime_envs(engine: &Engine, input: ListEnvsInput) -> Result<ListEnvsOutput> {
    let mut environments = Vec::new();
    for summary in engine.list_managed(Some(Kind::Env)).await? {
        if !input.all_owners && !summary.labels.is_mine() {
            continue;
        }
        // Ready members of warm pools are no one's environment until claimed.
        if super::pools::is_ready_member(&summary.name, &summary.labels) {
            continue;
        }
        if input
            .session
            .as_deref()
            .is_some_and(|s| summary.labels.get(engine::Label::Session) != Some(s))
        {
            continue;
        }
        // A container may go between the listing and the inspect.
        let Some(container) = engine.inspect_optional(&summary.id).await? else {
            continue;
        };
        let env = describe(container);
        if input.all || env.state == "running" {
            environments.push(env);
        }
    }
    environments.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(ListEnvsOutput { environments })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReapInput {
    /// Remove build contexts not changed for this many hours (default a week).
    #[serde(default = "default_context_age")]
    pub context_max_age_hrs: f64,
    /// Reap every owner's environments, containers and volumes, not only this owner's
    /// (ADDE_OWNER, else the host user).
    #[serde(default)]
    pub all_owners: bool,
}

fn default_context_age() -> f64 {
    168.0
}

#[derive(Serialize, Default)]
pub struct ReapOutput {
    /// Environments past their TTL.
    pub removed_environments: Vec<String>,
    /// Short-lived containers (installs, preparations) that a crash left behind.
    pub removed_containers: Vec<String>,
    /// adde's volumes that no container uses.
    pub removed_volumes: Vec<String>,
    /// Staging folders nothing uses any more.
    pub removed_folders: Vec<String>,
    /// Intermediate images of builds whose adde was killed.
    pub removed_build_images: usize,
}

/// Short-lived containers older than this were left by a crash.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// The longest age `reap` takes for build contexts: ten years.
const MAX_CONTEXT_AGE_HRS: f64 = 10.0 * 365.0 * 24.0;

/// Removes what has outlived its use, so that a caller's crash cannot leak for long.
pub async fn reap(engine: &Engine, input: ReapInput) -> Result<ReapOutput> {
    let context_age_hrs = in_range(
        "context_max_age_hrs",
        input.context_max_age_hrs,
        0.0,
        MAX_CONTEXT_AGE_HRS,
    )?;
    let mut out = ReapOutput::default();
    let now = chrono::Utc::now().timestamp();
    for container in engine.list_managed(None).await? {
        if !input.all_owners && !container.labels.is_mine() {
            continue;
        }
        let age = now - container.created;
        if container.labels.kind() != Some(Kind::Env.as_str())
            && age > LEFTOVER_AGE.as_secs() as i64
        {
            engine.remove_container(&container.id).await?;
            out.removed_containers.push(container.id);
        }
    }
    let (environments, volumes) = remove_expired(engine, input.all_owners).await?;
    out.removed_environments = environments;
    out.removed_volumes = volumes;
    // The running binary's helper volume is a cache worth keeping; older ones are not.
    let swept = remove_unused_volumes(engine, input.all_owners, SpareHelpers::Current).await?;
    out.removed_volumes.extend(swept);

    let leftover = chrono::Duration::seconds(LEFTOVER_AGE.as_secs() as i64);
    let crashed = |r: &BuildRecord| !r.finished && chrono::Utc::now() - r.finished_at > leftover;
    out.removed_build_images = remove_build_leftovers(engine, crashed).await?.1;
    let context_age = Duration::from_secs_f64(context_age_hrs * 3600.0);
    out.removed_folders
        .extend(remove_old_folders(&state::git_staging(), LEFTOVER_AGE)?);
    out.removed_folders
        .extend(remove_old_folders(&state::contexts(), context_age)?);
    Ok(out)
}

/// Removes the environments past their `ttl_sec`, and ready members of pools that no longer
/// exist, left for over an hour: what `reap` and `adde serve`'s reaper remove. Returns the
/// environments and the volumes removed.
pub async fn remove_expired(
    engine: &Engine,
    all_owners: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    let now = chrono::Utc::now().timestamp();
    let (mut environments, mut volumes) = (Vec::new(), Vec::new());
    for container in engine.list_managed(None).await? {
        let labels = &container.labels;
        if (!all_owners && !labels.is_mine()) || labels.kind() != Some(Kind::Env.as_str()) {
            continue;
        }
        let orphan = super::pools::is_orphan_member(&container.name, labels)
            && now - container.created > LEFTOVER_AGE.as_secs() as i64;
        if labels.expires_at().is_some_and(|t| t <= now) || orphan {
            volumes.extend(remove_env(engine, &container.id, labels).await?);
            environments.push(container.id);
        }
    }
    Ok((environments, volumes))
}

/// Removes the sub-folders of `dir` not modified for `age`.
fn remove_old_folders(dir: &Path, age: Duration) -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::now());
        let old = SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default()
            >= age;
        if path.is_dir() && old {
            std::fs::remove_dir_all(&path).map_err(|e| Error::state(&path, e))?;
            removed.push(path.display().to_string());
        }
    }
    Ok(removed)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PingInput {}

#[derive(Serialize)]
pub struct PingOutput {
    pub ok: bool,
    pub adde_version: &'static str,
    pub docker_host: String,
    /// The docker context the engine comes from (`default`: DOCKER_HOST or the local socket).
    pub docker_context: String,
    #[serde(flatten)]
    pub engine: engine::About,
    pub state_dir: String,
}

pub async fn ping(engine: &Engine, _: PingInput) -> Result<PingOutput> {
    Ok(PingOutput {
        ok: true,
        adde_version: env!("CARGO_PKG_VERSION"),
        docker_host: engine.addr().to_string(),
        docker_context: engine.context().to_string(),
        engine: engine.about().await?,
        state_dir: state::root().display().to_string(),
    })
}

/// Whether a sweep of this owner's may remove an unused volume: its own, or a helper volume
/// (every owner's environments share those).
/// Which helper volumes (adde's binary, a cache that environments share) a sweep leaves.
pub enum SpareHelpers {
    /// None: cleanup_env's `all`.
    None,
    /// This binary's: `reap`.
    Current,
    /// Every one: a periodic sweep. Another adde's create may be counting on its helper
    /// volume, and cannot mark one that exists already as pending.
    All,
}

/// Removes adde's volumes that no container uses and no create in progress waits for (past
/// their pending time): this owner's and shared ones, or every owner's; helper volumes as
/// `spare` says. Returns their names.
pub async fn remove_unused_volumes(
    engine: &Engine,
    all_owners: bool,
    spare: SpareHelpers,
) -> Result<Vec<String>> {
    let current = match spare {
        SpareHelpers::Current => Some(HelperVolume::for_this_binary()?.name),
        SpareHelpers::None | SpareHelpers::All => None,
    };
    let mut removed = Vec::new();
    for (volume, labels) in engine.unused_managed_volumes().await? {
        let helper = labels.kind() == Some(Kind::Helper.as_str());
        let spared = match spare {
            SpareHelpers::None => false,
            SpareHelpers::Current => current.as_deref() == Some(volume.as_str()),
            SpareHelpers::All => helper,
        };
        if !spared && (all_owners || shared_or_mine(&labels)) {
            engine.remove_volume(&volume).await?;
            removed.push(volume);
        }
    }
    Ok(removed)
}

fn shared_or_mine(labels: &Labels) -> bool {
    labels.is_mine() || labels.kind() == Some(Kind::Helper.as_str())
}
