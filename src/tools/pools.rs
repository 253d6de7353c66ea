//! Warm pools: environments created and started ahead of time for a spec, so that a
//! create_runtime_env with that spec takes one (a rename, atomic in the engine) instead of
//! creating and starting a container.
//!
//! A pool is a spec and a size, kept under the state directory; its members are ordinary
//! environments labelled with the pool's id and named `adde-pool-<id>-<hex>` until claimed.
//! A claim renames a member to an ordinary environment name: whoever's rename succeeds owns
//! it, so racing claims (in any number of processes) never share one. A claimed environment
//! is used once and never returns to the pool; a detached `adde` process refills the pool
//! after a claim, without delaying the caller, and never beyond its size.

use std::hash::Hasher;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::{Engine, Kind, Label, Listed};
use crate::error::{Error, Result};
use crate::ids::random_hex;
use crate::state;

use super::env::{CreateEnvInput, CreateEnvOutput, PullPolicy};
use super::input::{in_range, parse};

/// The first argument that makes the binary refill a pool (a detached process).
pub const REFILL_FLAG: &str = "__refill_pool";
const MEMBER_PREFIX: &str = "adde-pool-";
const MAX_POOL_SIZE: f64 = 256.0;

/// What a pool is: the create_runtime_env payload it serves, and how many it keeps ready.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct PoolRecord {
    id: String,
    spec: Value,
    size: u32,
}

fn pools_dir() -> PathBuf {
    state::root().join("pools")
}

/// A spec's pool id: the same spec (after defaults) gives the same id in every process.
fn pool_id(spec: &CreateEnvInput) -> Result<String> {
    let canonical = serde_json::to_string(spec).map_err(|e| Error::Internal(e.to_string()))?;
    let mut hasher = std::hash::DefaultHasher::new();
    // A pool is its owner's and its state directory's: members are found by this id, so two
    // users (or two state directories) with the same spec must never claim or remove each
    // other's environments.
    hasher.write(Label::owner_filter().as_bytes());
    hasher.write(state::root().as_os_str().as_encoded_bytes());
    hasher.write(canonical.as_bytes());
    Ok(format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff))
}

fn read_pools() -> Vec<PoolRecord> {
    std::fs::read_dir(pools_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect()
}

fn write_pool(record: &PoolRecord) -> Result<()> {
    let dir = pools_dir();
    state::private_dir(&dir)?;
    let path = dir.join(format!("{}.json", record.id));
    let body = serde_json::to_vec(record).map_err(|e| Error::Internal(e.to_string()))?;
    std::fs::write(&path, body).map_err(|e| Error::state(&path, e))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolCreateInput {
    /// The create_runtime_env payload the pool serves; requests with exactly this spec (after
    /// defaults) take a ready environment. A pool cannot serve `session`, `ttl_sec`, `labels`
    /// or `pull: "always"`.
    pub spec: Value,
    /// How many environments to keep ready (1 to 256).
    pub size: u32,
}

#[derive(Serialize)]
pub struct PoolInfo {
    pub pool: String,
    pub size: u32,
    /// Environments ready to be claimed now.
    pub ready: usize,
    pub spec: Value,
}

/// Declares (or resizes) the pool for a spec and fills it before returning.
pub async fn pool_create(engine: &Engine, input: PoolCreateInput) -> Result<PoolInfo> {
    let size = in_range("size", input.size.into(), 1.0, MAX_POOL_SIZE)? as u32;
    // The spec goes through the policy and the checks any create_runtime_env gets.
    let governed = super::govern("create_runtime_env", input.spec)?;
    let spec: CreateEnvInput = parse(governed.clone())?;
    if let Some(field) = unservable(&spec) {
        return Err(Error::invalid(
            "spec",
            format!("a pool cannot serve `{field}`: each environment it hands out was made before the request"),
        ));
    }
    super::env::check(&spec)?;
    let record = PoolRecord {
        id: pool_id(&spec)?,
        spec: governed,
        size,
    };
    write_pool(&record)?;
    refill(engine, &record).await?;
    describe(engine, record).await
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolListInput {}

#[derive(Serialize)]
pub struct PoolListOutput {
    pub pools: Vec<PoolInfo>,
}

pub async fn pool_list(engine: &Engine, _: PoolListInput) -> Result<PoolListOutput> {
    let mut pools = Vec::new();
    for record in read_pools() {
        pools.push(describe(engine, record).await?);
    }
    Ok(PoolListOutput { pools })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolRemoveInput {
    /// The pool id from pool_create or pool_list.
    pub pool: String,
}

#[derive(Serialize)]
pub struct PoolRemoveOutput {
    pub ok: bool,
    /// Ready environments removed (claimed ones are the callers' and stay).
    pub removed: Vec<String>,
}

pub async fn pool_remove(engine: &Engine, input: PoolRemoveInput) -> Result<PoolRemoveOutput> {
    let id = crate::refs::container_id("pool", &input.pool)?;
    let path = pools_dir().join(format!("{id}.json"));
    if !path.exists() {
        return Err(Error::invalid("pool", format!("there is no pool {id}")));
    }
    std::fs::remove_file(&path).map_err(|e| Error::state(&path, e))?;
    // A refill under way finishes the member it is making, sees the pool gone, and stops.
    let _lock = lock_pool(&id).await?;
    let mut removed = Vec::new();
    for member in ready_members(engine, &id).await? {
        super::admin::remove_env(engine, &member.id, &member.labels).await?;
        removed.push(member.id);
    }
    Ok(PoolRemoveOutput { ok: true, removed })
}

async fn describe(engine: &Engine, record: PoolRecord) -> Result<PoolInfo> {
    Ok(PoolInfo {
        ready: ready_members(engine, &record.id).await?.len(),
        pool: record.id,
        size: record.size,
        spec: record.spec,
    })
}

/// The pool's members not yet claimed.
async fn ready_members(engine: &Engine, id: &str) -> Result<Vec<Listed>> {
    let prefix = format!("{MEMBER_PREFIX}{id}-");
    Ok(engine
        .list_managed(Some(Kind::Env))
        .await?
        .into_iter()
        .filter(|c| {
            c.labels.is_mine()
                && c.labels.get(Label::Pool) == Some(id)
                && c.name.starts_with(&prefix)
        })
        .collect())
}

/// Whether a container is a pool member nobody has claimed yet.
pub fn is_ready_member(name: &str, labels: &crate::engine::Labels) -> bool {
    labels.get(Label::Pool).is_some() && name.starts_with(MEMBER_PREFIX)
}

/// Whether a container is a ready member of a pool that no longer exists.
pub fn is_orphan_member(name: &str, labels: &crate::engine::Labels) -> bool {
    is_ready_member(name, labels)
        && labels
            .get(Label::Pool)
            .is_some_and(|id| !pools_dir().join(format!("{id}.json")).exists())
}

/// A request field no pool can serve, if the request has one.
fn unservable(spec: &CreateEnvInput) -> Option<&'static str> {
    if spec.session.is_some() {
        Some("session")
    } else if spec.ttl_sec.is_some() {
        Some("ttl_sec")
    } else if !spec.labels.is_empty() {
        Some("labels")
    } else if spec.pull == PullPolicy::Always {
        Some("pull")
    } else {
        None
    }
}

/// Whether a create request was served from a pool, and why not.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PoolUse {
    /// "hit" or "miss".
    pub result: &'static str,
    pub pool: Option<String>,
    /// Why a request was served cold.
    pub reason: Option<String>,
}

/// Takes a ready environment for `input` from its pool, if there is one. `Ok(None)` with the
/// reason when the request must be served cold (no reason at all: there are no pools).
pub async fn claim(
    engine: &Engine,
    input: &CreateEnvInput,
) -> Result<(Option<CreateEnvOutput>, Option<PoolUse>)> {
    let pools = read_pools();
    if pools.is_empty() {
        return Ok((None, None));
    }
    let miss = |pool: Option<String>, reason: String| PoolUse {
        result: "miss",
        pool,
        reason: Some(reason),
    };
    if let Some(field) = unservable(input) {
        let reason = format!("pools cannot serve `{field}`");
        return Ok((None, Some(miss(None, reason))));
    }
    let id = pool_id(input)?;
    let Some(record) = pools.into_iter().find(|p| p.id == id) else {
        let reason = "no pool has this spec".to_string();
        return Ok((None, Some(miss(None, reason))));
    };
    for member in ready_members(engine, &id).await? {
        // Every claimer of a member renames it to the same name, so only one rename can
        // succeed: the engine reserves names atomically (renaming by id alone is not enough:
        // two renames to different names would both go through, one after the other).
        let hex = member.name.rsplit('-').next().unwrap_or_default();
        let name = format!("adde-{hex}");
        if !engine.rename(&member.id, &name).await? {
            continue; // another caller claimed it first
        }
        let container = engine.inspect(&member.id).await?;
        if !container.state.running {
            // A member that stopped is no use; remove it and try the next.
            super::admin::remove_env(engine, &container.id, &container.labels).await?;
            continue;
        }
        spawn_refill(&id);
        let env = super::env::describe(container);
        let hit = PoolUse {
            result: "hit",
            pool: Some(id),
            reason: None,
        };
        let out = CreateEnvOutput {
            env,
            image_pulled: false,
            session_action: None,
            warnings: Vec::new(),
            pool: None,
        };
        return Ok((Some(out), Some(hit)));
    }
    spawn_refill(&record.id);
    let reason = "the pool is empty (it is being refilled)".to_string();
    Ok((None, Some(miss(Some(record.id), reason))))
}

/// Starts a detached adde that refills pool `id`, so the caller does not wait for it.
fn spawn_refill(id: &str) {
    crate::spawn_detached(&[REFILL_FLAG, id]);
}

/// Fills pool `id` up to its size: the detached process `spawn_refill` starts.
pub fn refill_main(id: &str) -> std::process::ExitCode {
    let Some(record) = read_pools().into_iter().find(|p| p.id == id) else {
        return std::process::ExitCode::SUCCESS;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(runtime) = runtime else {
        return std::process::ExitCode::FAILURE;
    };
    let engine = Engine::from_env();
    match runtime.block_on(refill(&engine, &record)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::FAILURE,
    }
}

/// Fills every pool up to its size (what `adde serve` does in the background); says which
/// pools it could not fill.
pub async fn refill_all(engine: &Engine) -> Vec<(String, Error)> {
    let mut failed = Vec::new();
    for record in read_pools() {
        if let Err(e) = refill(engine, &record).await {
            failed.push((record.id, e));
        }
    }
    failed
}

/// Waits for the pool's lock (held by a refill, or a removal) and holds it until dropped.
async fn lock_pool(id: &str) -> Result<std::fs::File> {
    let dir = pools_dir();
    state::private_dir(&dir)?;
    let path = dir.join(format!("{id}.lock"));
    let lock = std::fs::File::create(&path).map_err(|e| Error::state(&path, e))?;
    // SAFETY: flock on an open file; the lock goes with the file when it is dropped.
    while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(lock)
}

async fn refill(engine: &Engine, record: &PoolRecord) -> Result<()> {
    // One refill per pool at a time: it counts again after each member, so the pool never
    // grows past its size.
    let _lock = lock_pool(&record.id).await?;
    while ready_members(engine, &record.id).await?.len() < record.size as usize {
        // The pool may have been removed meanwhile.
        if !pools_dir().join(format!("{}.json", record.id)).exists() {
            return Ok(());
        }
        let name = format!("{MEMBER_PREFIX}{}-{}", record.id, random_hex(6));
        super::env::create_pool_member(engine, parse(record.spec.clone())?, name, &record.id)
            .await?;
    }
    Ok(())
}
