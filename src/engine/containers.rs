//! Containers and volumes: what adde creates (always hardened), what it reads back, and the
//! exec, archive and log streams.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ExecConfig, HostConfig, HostConfigLogConfig,
    Mount, MountType, MountVolumeOptions, PortBinding, ResourcesUlimits, VolumeCreateRequest,
};
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, CreateContainerOptionsBuilder,
    DownloadFromContainerOptionsBuilder, ListContainersOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptions,
    RenameContainerOptionsBuilder, UploadToContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::states::with_known_states;
use super::{classify, container_path_id, Endpoint, Engine, Label, Labels, Subject};
use crate::error::{Error, Result};
use crate::protocol::{Role, AGENT_VERSION, HELPER_PATH};

/// Resource limits, as asked for and as read back.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Limits {
    pub memory: String,
    pub memory_bytes: i64,
    pub memory_swap_bytes: i64,
    pub cpus: f64,
    pub pids_limit: i64,
    pub nofile: i64,
    /// The disk bound and what enforces it (environments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskLimits>,
}

/// An environment's disk bound, and for each place code can write, whether and how it is
/// enforced ("256m (tmpfs, counted against memory)", "not enforced: …").
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct DiskLimits {
    pub size: String,
    pub bytes: i64,
    pub workspace: String,
    pub rootfs: String,
}

/// Where a volume keeps its files.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VolumeBacking {
    /// The engine's volume storage on the host's disk (no size bound with the local driver).
    Disk,
    /// A tmpfs of at most `bytes`, owned by `owner` (uid, gid) or world-writable (sticky).
    Tmpfs {
        bytes: i64,
        owner: Option<(u32, u32)>,
    },
}

impl Limits {
    /// For containers that never run code (the helper volume's filler).
    pub fn minimal() -> Limits {
        Limits {
            memory: "64m".into(),
            memory_bytes: 64 << 20,
            memory_swap_bytes: 64 << 20,
            cpus: 0.1,
            pids_limit: 16,
            nofile: 64,
            disk: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    None,
    Bridge,
    Host,
}

impl Network {
    fn mode(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Bridge => "bridge",
            Network::Host => "host",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Volume,
    Bind,
    Other,
}

/// A volume or host folder mounted into a container.
#[derive(Clone, Debug, PartialEq)]
pub struct MountSpec {
    pub kind: MountKind,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// For volumes: do not copy the image's files into an empty volume.
    pub no_copy: bool,
}

impl MountSpec {
    pub fn volume(source: &str, target: &str, read_only: bool) -> MountSpec {
        MountSpec {
            kind: MountKind::Volume,
            source: source.to_string(),
            target: target.to_string(),
            read_only,
            no_copy: false,
        }
    }

    pub fn bind(source: &str, target: &str, read_only: bool) -> MountSpec {
        MountSpec {
            kind: MountKind::Bind,
            ..MountSpec::volume(source, target, read_only)
        }
    }
}

/// A container adde creates. Whatever it is for, it gets adde's defaults: no network unless
/// asked, every capability dropped, no-new-privileges, memory without swap, CPU, PID and
/// open-file limits.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Arguments of adde's helper, its entrypoint; `None` keeps the image's own command.
    pub helper_args: Option<Vec<String>>,
    pub env: Vec<String>,
    pub labels: Labels,
    pub mounts: Vec<MountSpec>,
    pub user: Option<String>,
    pub workdir: String,
    pub limits: Limits,
    pub network: Network,
    /// Container port ("3000/tcp") to host port, published on 127.0.0.1.
    pub ports: BTreeMap<String, String>,
    /// A read-only root filesystem with a small writable /tmp.
    pub read_only_rootfs: bool,
    pub cap_add: Vec<String>,
    pub runtime: Option<String>,
    /// Docker's init as PID 1, reaping orphans.
    pub init: bool,
    /// PID 1 is adde's resident agent: it gets a stdin the host attaches to, and its output
    /// (the agent's replies) is not logged.
    pub agent: bool,
}

/// gVisor's sandbox is host threads the engine's pids limit counts too: about 46 idle, and
/// 9 to 13 per process of the code on the ptrace platform (measured). A pids limit sized for
/// the code's processes crashes the whole sandbox when reached (at start below about 64).
/// So under gVisor `pids_limit` is enforced inside the sandbox, as RLIMIT_NPROC (gVisor's
/// kernel counts the sandbox's own tasks, threads included, and with every capability
/// dropped binds root too: a fork past it fails with EAGAIN as under runc), and the
/// engine's limit is a ceiling for the sandbox's threads.
const GVISOR_SANDBOX_PIDS: i64 = 64;
const GVISOR_PIDS_PER_TASK: i64 = 20;

/// Whether an OCI runtime is gVisor's (registered as runsc, runsc-kvm, gvisor…).
pub fn is_gvisor(runtime: &str) -> bool {
    runtime.starts_with("runsc") || runtime.contains("gvisor")
}

/// Podman (4.3) adds RLIMIT_NPROC 1048576 to any request that carries a ulimit but no nproc,
/// and the container then fails to start where the service's hard limit is lower ("error
/// setting rlimit type 6"). An explicit nproc avoids it; RLIMIT_NPROC counts every process of
/// the container's uid on the host, so it is set well above the pids limit, which binds.
const PODMAN_NPROC_PER_PID: i64 = 4;

/// The engine's pids limit and the ulimits that carry `limits` under `runtime`, on Podman
/// or Docker.
fn pids_and_ulimits(
    limits: &Limits,
    runtime: Option<&str>,
    podman: bool,
) -> (i64, Vec<ResourcesUlimits>) {
    let ulimit = |name: &str, value: i64| ResourcesUlimits {
        name: Some(name.into()),
        soft: Some(value),
        hard: Some(value),
    };
    let mut ulimits = vec![ulimit("nofile", limits.nofile)];
    if !runtime.is_some_and(is_gvisor) {
        if podman {
            ulimits.push(ulimit("nproc", PODMAN_NPROC_PER_PID * limits.pids_limit));
        }
        return (limits.pids_limit, ulimits);
    }
    ulimits.push(ulimit("nproc", limits.pids_limit));
    let ceiling = GVISOR_SANDBOX_PIDS + GVISOR_PIDS_PER_TASK * limits.pids_limit;
    (ceiling, ulimits)
}

impl ContainerSpec {
    fn into_body(mut self, podman: bool) -> ContainerCreateBody {
        if self.agent {
            self.labels.set(Label::Agent, AGENT_VERSION);
        }
        let limits = &self.limits;
        let mounts = self.mounts.iter().map(to_mount).collect();
        let publish = self.network != Network::None && !self.ports.is_empty();
        let (pids_limit, ulimits) = pids_and_ulimits(limits, self.runtime.as_deref(), podman);
        ContainerCreateBody {
            image: Some(self.image.clone()),
            entrypoint: self
                .helper_args
                .as_ref()
                .map(|_| vec![HELPER_PATH.to_string()]),
            // adde's helper stops on SIGTERM, whatever the image's STOPSIGNAL says.
            stop_signal: self.helper_args.as_ref().map(|_| "SIGTERM".to_string()),
            cmd: self.helper_args,
            env: Some(self.env),
            user: self.user,
            working_dir: Some(self.workdir),
            labels: Some(self.labels.into_map()),
            exposed_ports: publish.then(|| self.ports.keys().cloned().collect()),
            open_stdin: Some(self.agent),
            stdin_once: Some(false),
            host_config: Some(HostConfig {
                network_mode: Some(self.network.mode().into()),
                port_bindings: publish.then(|| {
                    self.ports
                        .iter()
                        .map(|(container, host_port)| {
                            let binding = PortBinding {
                                host_ip: Some("127.0.0.1".into()),
                                host_port: Some(host_port.clone()),
                            };
                            (container.clone(), Some(vec![binding]))
                        })
                        .collect()
                }),
                cap_drop: Some(vec!["ALL".into()]),
                cap_add: (!self.cap_add.is_empty()).then_some(self.cap_add),
                security_opt: Some(vec!["no-new-privileges".into()]),
                memory: Some(limits.memory_bytes),
                memory_swap: Some(limits.memory_swap_bytes),
                nano_cpus: Some((limits.cpus * 1e9) as i64),
                pids_limit: Some(pids_limit),
                ulimits: Some(ulimits),
                init: Some(self.init),
                readonly_rootfs: Some(self.read_only_rootfs),
                tmpfs: self.read_only_rootfs.then(|| {
                    HashMap::from([(
                        "/tmp".to_string(),
                        "rw,nosuid,nodev,size=64m,mode=1777".to_string(),
                    )])
                }),
                runtime: self.runtime,
                log_config: self.agent.then(|| HostConfigLogConfig {
                    typ: Some("none".into()),
                    config: None,
                }),
                mounts: Some(mounts),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn to_mount(spec: &MountSpec) -> Mount {
    Mount {
        source: Some(spec.source.clone()),
        target: Some(spec.target.clone()),
        typ: Some(match spec.kind {
            MountKind::Bind => MountType::BIND,
            _ => MountType::VOLUME,
        }),
        read_only: Some(spec.read_only),
        volume_options: spec.no_copy.then(|| MountVolumeOptions {
            no_copy: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// How a container is doing.
#[derive(Clone, Debug, Default)]
pub struct ContainerState {
    /// "running", "exited", "paused", ...
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub oom_killed: bool,
    pub exit_code: Option<i64>,
}

/// A mount as the engine applied it.
#[derive(Serialize, Debug, Clone)]
pub struct MountInfo {
    #[serde(skip)]
    pub kind: MountKind,
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// A container as the engine reports it: what was actually applied.
#[derive(Clone, Debug)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// The image as the container's config names it.
    pub image: String,
    pub image_id: String,
    pub labels: Labels,
    pub state: ContainerState,
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub tmpfs: Vec<String>,
    pub mounts: Vec<MountInfo>,
    pub network_mode: String,
    /// "3000/tcp" -> "127.0.0.1:8080".
    pub port_bindings: BTreeMap<String, String>,
    pub limits: Limits,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub init: bool,
    pub read_only_rootfs: bool,
    pub runtime: String,
    /// The writable layer's quota (storage-opt `size`), if any.
    pub rootfs_quota: Option<String>,
    /// `KEY=value` lines of the container's environment (the image's included).
    pub env: Vec<String>,
    /// The storage driver of its root filesystem.
    pub storage_driver: String,
}

impl ContainerInfo {
    fn from_inspect(c: ContainerInspectResponse) -> ContainerInfo {
        let config = c.config.unwrap_or_default();
        let host = c.host_config.unwrap_or_default();
        let state = c.state.unwrap_or_default();
        let memory = host.memory.unwrap_or(0);
        let storage_driver = c.driver.clone().unwrap_or_default();
        let runtime = host.runtime.unwrap_or_else(|| "runc".into());
        let ulimits = host.ulimits.unwrap_or_default();
        // Podman names them RLIMIT_NOFILE, RLIMIT_NPROC.
        let ulimit = |name: &str| {
            ulimits
                .iter()
                .find(|u| {
                    u.name.as_deref().is_some_and(|n| {
                        let n = n.to_lowercase();
                        n == name || n.strip_prefix("rlimit_") == Some(name)
                    })
                })
                .and_then(|u| u.soft)
        };
        // Under gVisor the limit that binds the code is the sandbox's RLIMIT_NPROC.
        let pids_limit = match ulimit("nproc") {
            Some(nproc) if is_gvisor(&runtime) => nproc,
            _ => host.pids_limit.unwrap_or(0),
        };
        ContainerInfo {
            storage_driver,
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            image_id: c.image.unwrap_or_default(),
            labels: Labels::read(config.labels),
            state: ContainerState {
                status: state.status.map(|s| s.to_string()).unwrap_or_default(),
                running: state.running.unwrap_or(false),
                paused: state.paused.unwrap_or(false),
                oom_killed: state.oom_killed.unwrap_or(false),
                exit_code: state.exit_code,
            },
            created: c.created,
            user: config.user.filter(|u| !u.is_empty()),
            workdir: config.working_dir.filter(|w| !w.is_empty()),
            tmpfs: host
                .tmpfs
                .map(|t| t.into_keys().collect())
                .unwrap_or_default(),
            mounts: host
                .mounts
                .unwrap_or_default()
                .into_iter()
                .map(|m| MountInfo {
                    kind: match m.typ {
                        Some(MountType::BIND) => MountKind::Bind,
                        Some(MountType::VOLUME) => MountKind::Volume,
                        _ => MountKind::Other,
                    },
                    source: m.source.unwrap_or_default(),
                    target: m.target.unwrap_or_default(),
                    read_only: m.read_only.unwrap_or(false),
                })
                .collect(),
            network_mode: host.network_mode.unwrap_or_default(),
            port_bindings: host
                .port_bindings
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(port, bindings)| {
                    let b = bindings?.into_iter().next()?;
                    let host_ip = b.host_ip.unwrap_or_default();
                    Some((
                        port,
                        format!("{host_ip}:{}", b.host_port.unwrap_or_default()),
                    ))
                })
                .collect(),
            limits: Limits {
                memory: format_size(memory),
                memory_bytes: memory,
                memory_swap_bytes: host.memory_swap.unwrap_or(0),
                cpus: host.nano_cpus.unwrap_or(0) as f64 / 1e9,
                pids_limit,
                nofile: ulimit("nofile").unwrap_or(0),
                disk: None,
            },
            cap_drop: host.cap_drop.unwrap_or_default(),
            no_new_privileges: host
                .security_opt
                .unwrap_or_default()
                .iter()
                .any(|o| o.starts_with("no-new-privileges")),
            init: host.init.unwrap_or(false),
            read_only_rootfs: host.readonly_rootfs.unwrap_or(false),
            runtime,
            rootfs_quota: host.storage_opt.and_then(|o| o.get("size").cloned()),
            env: config.env.unwrap_or_default(),
        }
    }
}

/// 536870912 as "512m".
pub fn format_size(bytes: i64) -> String {
    match bytes {
        b if b > 0 && b % (1 << 30) == 0 => format!("{}g", b >> 30),
        b if b > 0 && b % (1 << 20) == 0 => format!("{}m", b >> 20),
        b => b.to_string(),
    }
}

/// One piece of an exec's demultiplexed output.
pub enum OutputChunk {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

pub type ExecOutput = Pin<Box<dyn Stream<Item = Result<OutputChunk>> + Send>>;
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<bytes::Bytes>> + Send>>;

/// Where a helper role runs: an environment, and whether its PID 1 is adde's agent.
#[derive(Clone, Debug)]
pub struct HelperTarget {
    pub id: String,
    pub agent: bool,
}

/// How a call reached adde's helper: through the environment's resident agent, or an
/// Engine-API exec (environments without an agent, or one that did not answer).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Agent,
    #[default]
    Exec,
}

impl ContainerInfo {
    /// Where this environment's helper roles run.
    pub fn helper_target(&self) -> HelperTarget {
        HelperTarget {
            id: self.id.clone(),
            agent: self.labels.get(Label::Agent) == Some(AGENT_VERSION),
        }
    }
}

/// A container in a listing.
pub struct Listed {
    pub id: String,
    pub name: String,
    pub labels: Labels,
    /// Unix seconds.
    pub created: i64,
}

impl Engine {
    /// Creates a container; returns its id and the engine's warnings (e.g. a limit the
    /// kernel cannot enforce).
    pub async fn create_container(&self, spec: ContainerSpec) -> Result<(String, Vec<String>)> {
        self.create_container_sized(spec, None).await
    }

    /// Creates a container whose writable layer has a size quota of `rootfs_bytes`
    /// (storage-opt `size`). Storage drivers without quotas refuse it (500, e.g.
    /// "--storage-opt is not supported" from fuse-overlayfs, or overlay2 off xfs with pquota).
    pub async fn create_container_sized(
        &self,
        spec: ContainerSpec,
        rootfs_bytes: Option<i64>,
    ) -> Result<(String, Vec<String>)> {
        let docker = self.docker()?;
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let image = spec.image.clone();
        let mut body = spec.into_body(self.is_podman().await?);
        if let (Some(bytes), Some(host)) = (rootfs_bytes, body.host_config.as_mut()) {
            host.storage_opt = Some(HashMap::from([("size".to_string(), bytes.to_string())]));
        }
        let created = self
            .ask(
                Subject::Image(&image),
                docker.create_container(Some(options), body),
            )
            .await?;
        Ok((created.id, created.warnings))
    }

    /// Creates a container whose name is a lock: `None` when a container of that name exists
    /// and is younger than `stale` (someone holds the lock); an older one is removed first.
    pub async fn create_locked(
        &self,
        spec: ContainerSpec,
        stale: Duration,
    ) -> Result<Option<String>> {
        let name = spec.name.clone();
        match self.create_container(spec).await {
            Ok((id, _)) => Ok(Some(id)),
            Err(Error::Engine { status: 409, .. }) => {
                let age = self
                    .inspect_optional(&name)
                    .await?
                    .and_then(|c| c.created)
                    .map(|t| chrono::Utc::now().signed_duration_since(t));
                if age.is_some_and(|age| age.to_std().unwrap_or_default() > stale) {
                    self.remove_container(&name).await?;
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn create_volume(&self, name: &str, labels: Labels) -> Result<()> {
        self.create_volume_on(name, labels, VolumeBacking::Disk)
            .await
    }

    /// Creates a volume on the host's disk or, size-bounded, on a tmpfs (the local driver
    /// mounts it when a container using it starts, and drops its files when the last one
    /// stops).
    pub async fn create_volume_on(
        &self,
        name: &str,
        labels: Labels,
        backing: VolumeBacking,
    ) -> Result<()> {
        let driver_opts = match backing {
            VolumeBacking::Disk => None,
            VolumeBacking::Tmpfs { bytes, owner } => {
                let access = match owner {
                    Some((uid, gid)) => format!("uid={uid},gid={gid},mode=0755"),
                    None => "mode=1777".to_string(),
                };
                Some(HashMap::from([
                    ("type".to_string(), "tmpfs".to_string()),
                    ("device".to_string(), "tmpfs".to_string()),
                    (
                        "o".to_string(),
                        format!("size={bytes},{access},nosuid,nodev"),
                    ),
                ]))
            }
        };
        let request = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.into_map()),
            driver_opts,
            ..Default::default()
        };
        let docker = self.docker()?;
        self.ask(Subject::Other, docker.create_volume(request))
            .await
            .map(drop)
    }

    /// Removes a volume adde made for environment `env` (its container name); one already
    /// gone is fine, and one that is not adde's or belongs to another environment is left
    /// alone (reported as `false`).
    pub async fn remove_env_volume(&self, name: &str, env: &str) -> Result<bool> {
        container_path_id(name)?;
        let docker = self.docker()?;
        let Some(volume) = self
            .ask_optional(Subject::Other, docker.inspect_volume(name))
            .await?
        else {
            return Ok(false);
        };
        let labels = Labels::read(Some(volume.labels));
        if volume.name != name || !labels.is_managed() || labels.get(Label::Env) != Some(env) {
            return Ok(false);
        }
        self.remove_volume(name).await.map(|()| true)
    }

    /// Removes a volume; one that is already gone is fine.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        container_path_id(name)?;
        let docker = self.docker()?;
        self.ask_optional(
            Subject::Other,
            docker.remove_volume(name, None::<RemoveVolumeOptions>),
        )
        .await
        .map(drop)
    }

    /// adde's volumes that belong to environment `env` (its container name), whether or not
    /// the container still exists.
    pub async fn env_volumes(&self, env: &str) -> Result<Vec<String>> {
        let label = format!("{}={env}", Label::Env.key());
        let volumes = self.managed_volumes(&[("label", label)]).await?;
        Ok(volumes
            .into_iter()
            .filter(|(_, labels)| labels.get(Label::Env) == Some(env))
            .map(|(name, _)| name)
            .collect())
    }

    /// Names of adde's volumes that no container uses, with their labels.
    pub async fn unused_managed_volumes(&self) -> Result<Vec<(String, Labels)>> {
        let candidates = self
            .managed_volumes(&[("dangling", "true".to_string())])
            .await?;
        // Podman ORs the label and dangling filters, so volumes in use come back too: the
        // containers' mounts decide.
        let options = ListContainersOptionsBuilder::default().all(true).build();
        let docker = self.docker()?;
        let containers = self
            .ask(Subject::Other, async {
                let answer = docker.list_containers(Some(options)).await;
                answer.or_else(with_known_states)
            })
            .await?;
        let in_use: HashSet<String> = containers
            .into_iter()
            .flat_map(|c| c.mounts.unwrap_or_default())
            .filter_map(|m| m.name)
            .collect();
        // A volume made for a container that a create in progress has not made yet is not
        // unused: it is taken only once its pending time is over (a crashed create).
        let now = chrono::Utc::now().timestamp();
        Ok(candidates
            .into_iter()
            .filter(|(name, labels)| !in_use.contains(name) && !labels.is_pending(now))
            .collect())
    }

    /// adde's volumes that also pass `filters`, with their labels. The engine's filter is
    /// checked again here: what comes back is read, not trusted.
    async fn managed_volumes(&self, filters: &[(&str, String)]) -> Result<Vec<(String, Labels)>> {
        let mut by_key: HashMap<&str, Vec<String>> =
            HashMap::from([("label", vec![Label::managed_filter()])]);
        for (key, value) in filters {
            by_key.entry(key).or_default().push(value.clone());
        }
        let options = ListVolumesOptionsBuilder::default()
            .filters(&by_key)
            .build();
        let docker = self.docker()?;
        let list = self
            .ask(Subject::Other, docker.list_volumes(Some(options)))
            .await?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, Labels::read(Some(v.labels))))
            .filter(|(_, labels)| labels.is_managed())
            .collect())
    }

    pub async fn start(&self, id: &str) -> Result<()> {
        let docker = self.docker()?;
        self.ask(
            Subject::Container(id),
            docker.start_container(container_path_id(id)?, None),
        )
        .await
    }

    /// Renames a container; `false` when it is gone, the name is taken or is already its
    /// name (someone else's rename to that name won: the engine reserves names atomically).
    pub async fn rename(&self, id: &str, name: &str) -> Result<bool> {
        let options = RenameContainerOptionsBuilder::default().name(name).build();
        let docker = self.docker()?;
        match docker
            .rename_container(container_path_id(id)?, options)
            .await
        {
            Ok(()) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 400 | 404 | 409,
                ..
            }) => Ok(false),
            Err(e) => Err(self.classify(e, Subject::Container(id))),
        }
    }

    /// A container by id, short id or name. The engine's answer must be the container asked
    /// for: its id starts with what was given, or its name is it.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        self.inspect_optional(id)
            .await?
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))
    }

    /// A container, or `None` when there is none of that name or id.
    pub async fn inspect_optional(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let docker = self.docker()?;
        let path_id = container_path_id(id)?;
        let found = self
            .ask_optional(Subject::Container(id), async {
                let answer = docker.inspect_container(path_id, None).await;
                answer.or_else(with_known_states)
            })
            .await?;
        let Some(info) = found.map(ContainerInfo::from_inspect) else {
            return Ok(None);
        };
        if !(info.id.starts_with(id) || info.name == id) {
            return Err(Error::Engine {
                status: 500,
                message: format!(
                    "asked for container {id}, the engine answered with {}",
                    info.id
                ),
            });
        }
        Ok(Some(info))
    }

    /// A container adde made; any other is `not_managed`, and adde leaves it alone.
    pub async fn inspect_managed(&self, id: &str) -> Result<ContainerInfo> {
        let container = self.inspect(id).await?;
        if !container.labels.is_managed() {
            return Err(Error::NotManaged(id.to_string()));
        }
        Ok(container)
    }

    /// adde's environment `id`, as `inspect_managed` gives it; a long-lived process remembers
    /// a running one by its full id until the engine reports an event about it (watch.rs).
    pub async fn inspect_environment(&self, id: &str) -> Result<ContainerInfo> {
        let Some(watch) = &self.watch else {
            return self.inspect_managed(id).await;
        };
        if let Some(info) = watch.known(id) {
            return Ok(info);
        }
        let since = watch.mark(self.docker()?);
        let info = self.inspect_managed(id).await?;
        if let Some(since) = since {
            if info.id == id && info.state.running && !info.state.paused {
                watch.remember(since, &info);
            }
        }
        Ok(info)
    }

    /// Force-removes a container with its anonymous volumes; one already gone is fine.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        let docker = self.docker()?;
        self.ask_optional(
            Subject::Container(id),
            docker.remove_container(container_path_id(id)?, Some(options)),
        )
        .await
        .map(drop)
    }

    /// adde's containers (running or not), optionally of one kind.
    pub async fn list_managed(&self, kind: Option<super::Kind>) -> Result<Vec<Listed>> {
        let mut label = vec![Label::managed_filter()];
        if let Some(kind) = kind {
            label.push(format!("{}={}", Label::Kind.key(), kind.as_str()));
        }
        let filters = HashMap::from([("label", label)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let docker = self.docker()?;
        let containers = self
            .ask(Subject::Other, async {
                let answer = docker.list_containers(Some(options)).await;
                answer.or_else(with_known_states)
            })
            .await?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let labels = Labels::read(c.labels);
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string();
                labels.is_managed().then_some(Listed {
                    name,
                    id: c.id?,
                    labels,
                    created: c.created.unwrap_or(0),
                })
            })
            .collect())
    }

    /// Waits for a container to stop and returns its exit code; `None` at the time limit.
    pub async fn wait(&self, id: &str, limit: Duration) -> Result<Option<i64>> {
        let docker = self.docker()?;
        let mut stream =
            docker.wait_container(container_path_id(id)?, None::<WaitContainerOptions>);
        match tokio::time::timeout(limit, stream.next()).await {
            Err(_) => Ok(None),
            Ok(None) => Ok(Some(-1)),
            Ok(Some(Ok(response))) => Ok(Some(response.status_code)),
            Ok(Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. }))) => {
                Ok(Some(code))
            }
            Ok(Some(Err(e))) => Err(self.classify(e, Subject::Container(id))),
        }
    }

    /// The container's own stdout and stderr (`tail` lines of each, or all).
    pub async fn logs(&self, id: &str, tail: Option<usize>) -> Result<(Vec<u8>, Vec<u8>)> {
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        let docker = self.docker()?;
        let mut stream = docker.logs(container_path_id(id)?, Some(options));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(|e| self.classify(e, Subject::Container(id)))? {
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    stdout.extend_from_slice(&message)
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok((stdout, stderr))
    }

    /// The container's stdout and stderr as they are written, until it stops.
    pub fn follow_logs(&self, id: &str) -> Result<ExecOutput> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .build();
        let docker = self.docker()?;
        let endpoint = self.endpoint()?;
        let subject = id.to_string();
        let stream = docker.logs(container_path_id(id)?, Some(options));
        Ok(Box::pin(stream.filter_map(move |item| {
            std::future::ready(output_chunk(item, endpoint, &subject))
        })))
    }

    /// Unpacks a tar archive at `path` in the container (works before it is started).
    pub async fn upload(&self, id: &str, path: &str, tar: Vec<u8>) -> Result<()> {
        let options = UploadToContainerOptionsBuilder::default()
            .path(path)
            .build();
        let docker = self.docker()?;
        self.ask(
            Subject::Container(id),
            docker.upload_to_container(
                container_path_id(id)?,
                Some(options),
                bollard::body_full(tar.into()),
            ),
        )
        .await
    }

    /// The size of a file in a container (started or not), or `None` when it is missing.
    pub async fn path_size(&self, id: &str, path: &str) -> Result<Option<u64>> {
        let options = ContainerArchiveInfoOptionsBuilder::default()
            .path(path)
            .build();
        let docker = self.docker()?;
        let stat = self
            .ask_optional(
                Subject::Container(id),
                docker.get_container_archive_info(container_path_id(id)?, Some(options)),
            )
            .await?;
        Ok(stat.map(|stat| stat.size.max(0) as u64))
    }

    /// A path in a container as a tar stream (entries rooted at its base name); a missing
    /// path is `Ok(None)`.
    pub async fn download(&self, id: &str, path: &str) -> Result<Option<ByteStream>> {
        let options = DownloadFromContainerOptionsBuilder::default()
            .path(path)
            .build();
        let docker = self.docker()?;
        let mut stream = Box::pin(
            docker
                .download_from_container(container_path_id(id)?, Some(options))
                .peekable(),
        );
        // The first item tells a missing path (404) from a stream that has begun.
        if let Some(Err(_)) = stream.as_mut().peek().await {
            match stream.next().await {
                Some(Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                })) => return Ok(None),
                Some(Err(e)) => return Err(self.classify(e, Subject::Container(id))),
                _ => {}
            }
        }
        let endpoint = self.endpoint()?;
        let id = id.to_string();
        Ok(Some(Box::pin(stream.map(move |item| {
            item.map_err(|e| classify(e, endpoint, Subject::Container(&id)))
        }))))
    }

    /// Runs one of adde's helper roles in an environment, through its agent when it has one
    /// (falling back to an Engine-API exec when the agent does not answer), with `stdin` as
    /// its whole standard input; returns its demultiplexed output and how it was reached.
    pub async fn run_helper(
        &self,
        target: &HelperTarget,
        role: Role,
        args: &[&str],
        env: Vec<String>,
        workdir: &str,
        stdin: Vec<u8>,
    ) -> Result<(ExecOutput, Transport)> {
        // ADDE_AGENT=off takes the exec path (to compare the two, or to rule the agent out).
        if target.agent && std::env::var("ADDE_AGENT").map_or(true, |v| v != "off") {
            let owned = args.iter().map(|a| a.to_string()).collect();
            let reached = self
                .agent_exec(&target.id, role, owned, env.clone(), workdir, stdin.clone())
                .await?;
            if let Some(output) = reached {
                return Ok((output, Transport::Agent));
            }
        }
        let output = self
            .exec(&target.id, role.exec_argv(args), env, workdir, stdin)
            .await?;
        Ok((output, Transport::Exec))
    }

    /// Runs a short helper role and returns its stdout and stderr, within `limit`.
    pub async fn run_helper_collect(
        &self,
        target: &HelperTarget,
        role: Role,
        args: &[&str],
        stdin: Vec<u8>,
        limit: Duration,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let collect = async {
            let (mut output, _) = self
                .run_helper(target, role, args, Vec::new(), "/", stdin)
                .await?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some(chunk) = output.next().await {
                match chunk? {
                    OutputChunk::Stdout(bytes) => stdout.extend_from_slice(&bytes),
                    OutputChunk::Stderr(bytes) => stderr.extend_from_slice(&bytes),
                }
            }
            Ok((stdout, stderr))
        };
        tokio::time::timeout(limit, collect)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Helper(format!(
                    "its {:?} role did not finish within {} s",
                    role.as_str(),
                    limit.as_secs()
                )))
            })
    }

    /// Starts `argv` in the container with `stdin` as its whole standard input and returns
    /// its demultiplexed output. The input is written beside the output being read, so a
    /// program that writes before it reads (or never reads) cannot deadlock the call; one
    /// that exits without reading it is not an error. Nothing here bounds the stream: the
    /// caller does.
    async fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        env: Vec<String>,
        workdir: &str,
        stdin: Vec<u8>,
    ) -> Result<ExecOutput> {
        let config = ExecConfig {
            cmd: Some(argv),
            env: Some(env),
            working_dir: Some(workdir.to_string()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let docker = self.docker()?;
        let exec = self
            .ask(
                Subject::Container(id),
                docker.create_exec(container_path_id(id)?, config),
            )
            .await?;
        let started = self
            .ask(Subject::Container(id), docker.start_exec(&exec.id, None))
            .await?;
        let StartExecResults::Attached { output, mut input } = started else {
            return Err(Error::Internal("exec started detached".into()));
        };
        tokio::spawn(async move {
            // A program that exits without reading its input closes the pipe: not an error.
            let _ = input.write_all(&stdin).await;
            // The half-close gives the helper EOF; without it the exec never ends.
            let _ = input.shutdown().await;
        });
        let endpoint = self.endpoint()?;
        let id = id.to_string();
        Ok(Box::pin(output.filter_map(move |item| {
            std::future::ready(output_chunk(item, endpoint, &id))
        })))
    }
}

/// One item of an attached or logs stream as adde's output (an echo of stdin is dropped).
fn output_chunk(
    item: std::result::Result<LogOutput, bollard::errors::Error>,
    endpoint: &Endpoint,
    id: &str,
) -> Option<Result<OutputChunk>> {
    match item {
        Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
            Some(Ok(OutputChunk::Stdout(message)))
        }
        Ok(LogOutput::StdErr { message }) => Some(Ok(OutputChunk::Stderr(message))),
        Ok(LogOutput::StdIn { .. }) => None,
        Err(e) => Some(Err(classify(e, endpoint, Subject::Container(id)))),
    }
}
