//! Housekeeping of environments: cleanup_env, list_runtime_envs, reap, and ping.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::{self, Engine, LABEL_EXPIRES_AT, LABEL_KIND, LABEL_VOLUMES};
use crate::error::{Error, Result};
use crate::history::state_dir;

use super::env::{describe, EnvDescription};
use super::helper_volume::HelperVolume;

/// Removes an environment's container and the volumes its labels name; returns the volumes.
pub async fn remove_env(
    engine: &Engine,
    id: &str,
    labels: Option<&HashMap<String, String>>,
) -> Result<Vec<String>> {
    engine.remove_container(id).await?;
    let volumes: Vec<String> = labels
        .and_then(|l| l.get(LABEL_VOLUMES))
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for volume in &volumes {
        engine.remove_volume(volume).await?;
    }
    Ok(volumes)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupInput {
    /// The environment to remove (id, short id or name).
    #[serde(default)]
    pub container_id: Option<String>,
    /// Remove every environment adde created, and adde's volumes no container uses.
    #[serde(default)]
    pub all: bool,
    /// With `all`: only the environments that carry all these labels (and no volume sweep).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct CleanupOutput {
    pub ok: bool,
    /// Ids of the containers removed.
    pub removed: Vec<String>,
    pub volumes_removed: Vec<String>,
}

pub async fn cleanup_env(input: CleanupInput) -> Result<CleanupOutput> {
    let target = input
        .container_id
        .as_deref()
        .map(|id| super::required("container_id", "container_id", id))
        .transpose()?;
    if target.is_some() == input.all {
        return Err(Error::invalid(
            "container_id",
            "give either container_id or all: true",
        ));
    }
    if !input.labels.is_empty() && !input.all {
        return Err(Error::invalid(
            "labels",
            "labels filter `all: true`; give them together",
        ));
    }
    let engine = Engine::connect()?;
    let mut out = CleanupOutput {
        ok: true,
        removed: Vec::new(),
        volumes_removed: Vec::new(),
    };
    let targets: Vec<(String, Option<HashMap<String, String>>)> = match target {
        Some(id) => {
            let container = engine.inspect_managed(&id).await?;
            let labels = container.config.and_then(|c| c.labels);
            vec![(container.id.unwrap_or(id), labels)]
        }
        None => engine
            .list_managed(None)
            .await?
            .into_iter()
            .filter(|c| {
                let have = c.labels.as_ref();
                input
                    .labels
                    .iter()
                    .all(|(k, v)| have.and_then(|l| l.get(k)) == Some(v))
            })
            .filter_map(|c| Some((c.id?, c.labels)))
            .collect(),
    };
    for (id, labels) in targets {
        out.volumes_removed
            .extend(remove_env(&engine, &id, labels.as_ref()).await?);
        out.removed.push(id);
    }
    if input.all && input.labels.is_empty() {
        for volume in engine.unused_managed_volumes().await? {
            engine.remove_volume(&volume).await?;
            out.volumes_removed.push(volume);
        }
    }
    Ok(out)
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
}

#[derive(Serialize)]
pub struct ListEnvsOutput {
    pub environments: Vec<EnvDescription>,
}

pub async fn list_runtime_envs(input: ListEnvsInput) -> Result<ListEnvsOutput> {
    let engine = Engine::connect()?;
    let mut environments = Vec::new();
    for summary in engine.list_managed(Some("env")).await? {
        let Some(id) = summary.id else { continue };
        let labels = summary.labels.unwrap_or_default();
        if input
            .session
            .as_ref()
            .is_some_and(|s| labels.get("io.adde.session") != Some(s))
        {
            continue;
        }
        // A container may go between the listing and the inspect.
        let Some(container) = engine.inspect_optional(&id).await? else {
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
}

/// Short-lived containers older than this were left by a crash.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// Removes what has outlived its use, so that a caller's crash cannot leak for long.
pub async fn reap(input: ReapInput) -> Result<ReapOutput> {
    if !(input.context_max_age_hrs >= 0.0 && input.context_max_age_hrs.is_finite()) {
        return Err(Error::invalid(
            "context_max_age_hrs",
            "context_max_age_hrs must be 0 or more",
        ));
    }
    let engine = Engine::connect()?;
    let now = chrono::Utc::now().timestamp();
    let mut out = ReapOutput::default();
    for container in engine.list_managed(None).await? {
        let (Some(id), labels) = (container.id, container.labels.unwrap_or_default()) else {
            continue;
        };
        let kind = labels.get(LABEL_KIND).map(String::as_str).unwrap_or("");
        let expired = labels
            .get(LABEL_EXPIRES_AT)
            .and_then(|t| t.parse::<i64>().ok())
            .is_some_and(|t| t <= now);
        let age = now - container.created.unwrap_or(now);
        if kind == "env" && expired {
            out.removed_volumes
                .extend(remove_env(&engine, &id, Some(&labels)).await?);
            out.removed_environments.push(id);
        } else if kind != "env" && age > LEFTOVER_AGE.as_secs() as i64 {
            engine.remove_container(&id).await?;
            out.removed_containers.push(id);
        }
    }
    // The running binary's helper volume is a cache worth keeping; older ones are not.
    let current_helper = HelperVolume::for_this_binary()?.name;
    for volume in engine.unused_managed_volumes().await? {
        if volume != current_helper {
            engine.remove_volume(&volume).await?;
            out.removed_volumes.push(volume);
        }
    }
    let state = state_dir();
    let context_age = Duration::from_secs_f64(input.context_max_age_hrs * 3600.0);
    out.removed_folders
        .extend(remove_old_folders(&state.join("git"), LEFTOVER_AGE)?);
    out.removed_folders
        .extend(remove_old_folders(&state.join("contexts"), context_age)?);
    Ok(out)
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
    #[serde(flatten)]
    pub engine: engine::About,
    pub state_dir: String,
}

pub async fn ping(_: PingInput) -> Result<PingOutput> {
    let engine = Engine::connect()?;
    Ok(PingOutput {
        ok: true,
        adde_version: env!("CARGO_PKG_VERSION"),
        docker_host: engine.addr().to_string(),
        engine: engine.about().await?,
        state_dir: state_dir().display().to_string(),
    })
}
