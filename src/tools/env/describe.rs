//! What an environment is, read back from the engine: the settings actually applied.

use std::collections::BTreeMap;

use bollard::models::MountType;
use serde::Serialize;

use crate::engine::{LABEL_EXPIRES_AT, LABEL_USE_IMAGE_CMD};
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
