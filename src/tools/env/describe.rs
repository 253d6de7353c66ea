//! What an environment is, read back from the engine: the settings actually applied.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::{ContainerInfo, Label, Limits, MountInfo, MountKind};
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
pub fn describe(c: ContainerInfo) -> EnvDescription {
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
        limits: c.limits,
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
