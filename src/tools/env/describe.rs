//! What an environment is, read back from the engine: the settings actually applied.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{format_size, ContainerInfo, DiskLimits, Label, Limits, MountInfo, MountKind};
use crate::error::{Error, Result};
use crate::protocol::{DEPS_DIR, WORKSPACE};

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
    /// Whether a warm pool served the request, and why not (present when pools exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<crate::tools::pools::PoolUse>,
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
    /// Who created it (`ADDE_OWNER`, else the host user as "uid:<uid>").
    pub owner: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct Security {
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    /// Docker's init as PID 1: only with use_image_cmd. Otherwise adde's helper is PID 1; it
    /// reaps orphans and ignores every signal sent from inside.
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

/// The disk bound recorded at creation, and what enforces it where code can write.
fn disk_limits(c: &ContainerInfo) -> Option<DiskLimits> {
    let size = c.labels.get(Label::Disk)?.to_string();
    let bytes = crate::tools::input::parse_size("disk", &size, 1).unwrap_or(0);
    let workspace = match c.labels.get(Label::Workspace) {
        Some("tmpfs") => format!("{size} (tmpfs: held in memory, counted against `memory`, emptied when the environment stops)"),
        _ => "not enforced: a volume of the engine's local driver has no size quota (workspace: \"tmpfs\" bounds it)".to_string(),
    };
    let rootfs = if c.read_only_rootfs {
        "read-only; /tmp is a 64m tmpfs (in memory)".to_string()
    } else if let Some(quota) = &c.rootfs_quota {
        format!("{quota} bytes (storage-opt quota of {})", c.storage_driver)
    } else {
        format!(
            "not enforced: the storage driver {} gives this container no size quota (read_only_rootfs: true bounds it)",
            c.storage_driver
        )
    };
    Some(DiskLimits {
        size,
        bytes,
        workspace,
        rootfs,
    })
}

/// What of the disk bound is not enforced, as warnings for the create result.
pub fn disk_warnings(env: &EnvDescription) -> Vec<String> {
    let Some(disk) = &env.limits.disk else {
        return Vec::new();
    };
    [("workspace", &disk.workspace), ("rootfs", &disk.rootfs)]
        .into_iter()
        .filter(|(_, how)| how.starts_with("not enforced"))
        .map(|(place, how)| format!("disk: {place} {how}"))
        .collect()
}

/// The operator's consent to environments whose limits the engine does not apply.
pub const ALLOW_UNENFORCED_LIMITS: &str = "ADDE_ALLOW_UNENFORCED_LIMITS";

/// The limits asked for that the engine did not apply, as read back from it ("memory: asked
/// 256m, applied none"). Rootless Podman on cgroup v1 accepts every limit, applies none and
/// says nothing; a caller counting on them would run unbounded code unknowingly.
pub fn unapplied_limits(asked: &Limits, applied: &Limits) -> Vec<String> {
    let shown = |value: String, unset: bool| if unset { "none".into() } else { value };
    let nanos = |cpus: f64| (cpus * 1e9).round() as i64;
    let pairs = [
        (
            "memory",
            asked.memory_bytes == applied.memory_bytes,
            asked.memory.clone(),
            shown(applied.memory.clone(), applied.memory_bytes <= 0),
        ),
        // Memory plus swap: equal to memory (no swap). A kernel without swap accounting
        // makes Docker read back -1 (swap unbounded) with only an engine warning.
        (
            "memory_swap",
            asked.memory_swap_bytes == applied.memory_swap_bytes,
            format_size(asked.memory_swap_bytes),
            match applied.memory_swap_bytes {
                -1 => "unlimited".into(),
                b => shown(format_size(b), b <= 0),
            },
        ),
        (
            "cpus",
            nanos(asked.cpus) == nanos(applied.cpus),
            asked.cpus.to_string(),
            shown(applied.cpus.to_string(), applied.cpus <= 0.0),
        ),
        (
            "pids_limit",
            asked.pids_limit == applied.pids_limit,
            asked.pids_limit.to_string(),
            shown(applied.pids_limit.to_string(), applied.pids_limit <= 0),
        ),
        (
            "nofile",
            asked.nofile == applied.nofile,
            asked.nofile.to_string(),
            shown(applied.nofile.to_string(), applied.nofile <= 0),
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, same, _, _)| !same)
        .map(|(name, _, asked, applied)| format!("{name}: asked {asked}, applied {applied}"))
        .collect()
}

/// The writable layer's quota when adde sent one (`sent`, bytes) and the engine read back
/// another or none (`read`: storage-opt `size`).
pub fn unapplied_rootfs_quota(sent: Option<i64>, read: Option<&str>) -> Option<String> {
    let sent = sent?;
    (read != Some(sent.to_string().as_str())).then(|| {
        format!(
            "disk: asked a rootfs quota of {}, applied {}",
            format_size(sent),
            read.unwrap_or("none")
        )
    })
}

/// Whether the operator set ADDE_ALLOW_UNENFORCED_LIMITS=1.
pub fn unenforced_limits_allowed() -> bool {
    std::env::var(ALLOW_UNENFORCED_LIMITS).is_ok_and(|v| v == "1")
}

/// Refuses an environment whose limits the engine dropped (`limits_not_enforced`:
/// `unapplied_limits`, `unapplied_rootfs_quota`), unless
/// the operator allowed it with ADDE_ALLOW_UNENFORCED_LIMITS=1: then each dropped limit is
/// a warning of the result.
pub fn check_limits_applied(unapplied: Vec<String>) -> Result<Vec<String>> {
    if unapplied.is_empty() {
        return Ok(Vec::new());
    }
    if unenforced_limits_allowed() {
        return Ok(unapplied
            .into_iter()
            .map(|l| format!("limit not enforced by the engine ({ALLOW_UNENFORCED_LIMITS}=1): {l}"))
            .collect());
    }
    Err(Error::LimitsNotEnforced { unapplied })
}

/// An environment as the engine reports it.
pub fn describe(c: ContainerInfo) -> EnvDescription {
    let disk = disk_limits(&c);
    let label = |l: Label| c.labels.get(l).map(str::to_string);
    let time = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    EnvDescription {
        session: label(Label::Session),
        workspace: WORKSPACE.to_string(),
        image: label(Label::Image).unwrap_or_else(|| c.image.clone()),
        dependencies: label(Label::PackageManager).map(|manager| InstalledDeps {
            package_manager: manager,
            packages: label(Label::Dependencies)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            path: DEPS_DIR.to_string(),
        }),
        image_id: c.image_id,
        state: c.state.status,
        created: c
            .created
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        expires_at: c.labels.expires_at().map(time),
        use_image_cmd: c.labels.use_image_cmd(),
        port_bindings: c.port_bindings,
        network: c.network_mode.clone(),
        user: c.user,
        workdir: c.workdir.unwrap_or_default(),
        mounts: c
            .mounts
            .into_iter()
            .filter(|m| m.kind == MountKind::Bind)
            .collect(),
        limits: Limits { disk, ..c.limits },
        owner: label(Label::Owner),
        security: Security {
            cap_drop: c.cap_drop,
            no_new_privileges: c.no_new_privileges,
            init: c.init,
            network_mode: c.network_mode,
            read_only_rootfs: c.read_only_rootfs,
            runtime: c.runtime,
        },
        labels: c.labels.user_labels(),
        container_id: c.id,
        name: c.name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(memory_bytes: i64, cpus: f64, pids_limit: i64, nofile: i64) -> Limits {
        Limits {
            memory: if memory_bytes > 0 {
                format!("{}m", memory_bytes >> 20)
            } else {
                memory_bytes.to_string()
            },
            memory_bytes,
            memory_swap_bytes: memory_bytes,
            cpus,
            pids_limit,
            nofile,
            disk: None,
        }
    }

    #[test]
    fn limits_read_back_as_asked_pass() {
        let asked = limits(512 << 20, 0.5, 256, 1024);
        // What Docker and rootful Podman read back (cpus through NanoCpus / 1e9).
        let applied = limits(512 << 20, 500_000_000f64 / 1e9, 256, 1024);
        assert_eq!(
            check_limits_applied(unapplied_limits(&asked, &applied)).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn limits_read_back_as_none_are_refused_one_by_one() {
        let asked = limits(512 << 20, 0.5, 256, 1024);
        // What rootless Podman 4.3 on cgroup v1 read back (Memory, NanoCpus, PidsLimit 0,
        // Ulimits []), measured.
        let applied = limits(0, 0.0, 0, 0);
        let unapplied = unapplied_limits(&asked, &applied);
        assert_eq!(
            unapplied,
            [
                "memory: asked 512m, applied none",
                "memory_swap: asked 512m, applied none",
                "cpus: asked 0.5, applied none",
                "pids_limit: asked 256, applied none",
                "nofile: asked 1024, applied none",
            ]
        );
        let err = check_limits_applied(unapplied).unwrap_err();
        assert_eq!(err.code(), "limits_not_enforced");
        // One limit lowered by the engine is refused too.
        let lowered = limits(512 << 20, 0.5, 128, 1024);
        assert_eq!(
            unapplied_limits(&asked, &lowered),
            ["pids_limit: asked 256, applied 128"]
        );
    }

    #[test]
    fn swap_and_the_rootfs_quota_are_read_back_too() {
        let asked = limits(512 << 20, 0.5, 256, 1024);
        // Docker on a kernel without swap accounting: MemorySwap -1, memory kept.
        let mut applied = asked.clone();
        applied.memory_swap_bytes = -1;
        assert_eq!(
            unapplied_limits(&asked, &applied),
            ["memory_swap: asked 512m, applied unlimited"]
        );
        // StorageOpt {"size": "1073741824"} read back as sent; dropped; none sent.
        assert_eq!(
            unapplied_rootfs_quota(Some(1 << 30), Some("1073741824")),
            None
        );
        assert_eq!(
            unapplied_rootfs_quota(Some(1 << 30), None).unwrap(),
            "disk: asked a rootfs quota of 1g, applied none"
        );
        assert_eq!(unapplied_rootfs_quota(None, None), None);
    }
}
