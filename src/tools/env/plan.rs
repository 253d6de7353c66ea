//! Everything create_runtime_env checks before the engine is contacted.

use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::{Engine, Label, Limits, MountSpec};
use crate::error::{Error, Result};
use crate::protocol::{DEPS_DIR, WORKSPACE};
use crate::refs;
use crate::tools::images::normalize_reference;
use crate::tools::input::{env_vars, in_range, parse_size, required};

const MAX_CPUS: f64 = 1024.0;
const MAX_PIDS: f64 = 1_000_000.0;
const MAX_NOFILE: f64 = 1_048_576.0;
pub(super) const MAX_INSTALL_SEC: f64 = 24.0 * 3600.0;

use super::{CreateEnvInput, InstallNetwork, WorkspaceKind};

/// The smallest disk bound: a workspace must hold at least a few files.
const MIN_DISK: i64 = 1024 * 1024;

/// Everything validated before the engine is contacted.
pub(super) struct EnvPlan {
    pub(super) image: String,
    pub(super) limits: Limits,
    pub(super) env: Vec<String>,
    pub(super) ports: BTreeMap<String, String>,
    pub(super) packages: Vec<String>,
    pub(super) installer_env: Vec<String>,
    pub(super) install_network: InstallNetwork,
    pub(super) session: Option<String>,
    pub(super) binds: Vec<MountSpec>,
    pub(super) user: Option<String>,
    pub(super) read_only_rootfs: bool,
    pub(super) workdir: String,
    pub(super) labels: Vec<(String, String)>,
    pub(super) runtime: Option<String>,
    pub(super) expires_at: Option<i64>,
    /// The warm pool the environment is made for, if any.
    pub(super) pool: Option<String>,
    /// The disk bound as given ("1g") and in bytes.
    pub(super) disk: String,
    pub(super) disk_bytes: i64,
    pub(super) workspace: WorkspaceKind,
}

pub(super) fn plan(input: &CreateEnvInput) -> Result<EnvPlan> {
    let image = normalize_reference(&required("image", "image name", &input.image)?)?;
    let memory_bytes = parse_memory(&input.memory)?;
    let disk_bytes = parse_size("disk", &input.disk, MIN_DISK)?;
    if !(input.cpus > 0.0 && input.cpus <= MAX_CPUS) {
        return Err(Error::invalid(
            "cpus",
            format!("cpus must be a number of cores above 0 and at most {MAX_CPUS}, e.g. 0.5"),
        ));
    }
    in_range("pids_limit", input.pids_limit as f64, 16.0, MAX_PIDS)?;
    in_range("nofile", input.nofile as f64, 64.0, MAX_NOFILE)?;
    in_range(
        "install_timeout_sec",
        input.install_timeout_sec as f64,
        1.0,
        MAX_INSTALL_SEC,
    )?;
    let env = env_vars("env_vars", &input.env_vars)?;
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
        .map(|dep| validate_dependency("dependencies", dep))
        .collect::<Result<Vec<_>>>()?;
    let (installer_env, install_network) = installer_setup(
        input.pip_index_url.as_deref(),
        input.npm_registry.as_deref(),
        input.install_network,
    );

    let session = input
        .session
        .as_deref()
        .map(|s| refs::session("session", s))
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
        if Label::is_reserved(key) || key.is_empty() {
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
            disk: None,
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
        pool: None,
        disk: input.disk.trim().to_string(),
        disk_bytes,
        workspace: input.workspace,
    })
}

/// Host paths that are never mounted, nor anything inside them, nor any folder holding
/// them: the kernel's and the engine's own, where sockets, devices and every container's
/// files live. The engine's actual data root is added once the engine is asked
/// (`refuse_engine_data`).
const FORBIDDEN_ROOTS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
    "/etc/docker",
    "/boot",
];

/// How many entries of a mounted folder adde looks through for sockets; a larger folder
/// is refused rather than mounted unchecked.
const MOUNT_SCAN_LIMIT: usize = 20_000;

/// Whether `a` and `b` are the same path or one holds the other.
fn on_one_branch(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// A host folder to bind, checked against the host as this process sees it:
///
/// - absolute source and target; the target not adde's own nor the root;
/// - the source (as spelled and with its symlinks resolved) is not one of
///   `FORBIDDEN_ROOTS`, inside one, or a folder holding one (`/`, `/var`, `/var/lib`);
/// - the source is not a unix socket (by file type, so a hard link to the engine's socket
///   under any name is caught), and a folder holds no socket at any depth;
/// - the engine's socket (DOCKER_HOST's or its docker context's) is refused like the default
///   ones.
fn validate_mount(spec: &super::MountSpec) -> Result<MountSpec> {
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
    let normal = |p: &str| format!("/{}", crate::paths::lexical_parts(p).join("/"));
    let target = normal(target);
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
    let mut sources = vec![normal(source)];
    let real = std::fs::canonicalize(source).ok();
    if let Some(real) = &real {
        sources.push(real.display().to_string());
    }
    let mut forbidden: Vec<String> = FORBIDDEN_ROOTS.iter().map(|r| r.to_string()).collect();
    forbidden.extend(Engine::local_socket().map(str::to_string));
    for src in &sources {
        if let Some(root) = forbidden
            .iter()
            .find(|root| on_one_branch(Path::new(src), Path::new(root)))
        {
            return Err(Error::invalid(
                "mounts",
                format!("{source} is, holds or lies inside {root}, which is never mounted (the kernel's and the engine's own files, sockets and devices)"),
            ));
        }
    }
    if Engine::local_socket().is_some() {
        let Some(real) = real else {
            return Err(Error::invalid(
                "mounts",
                format!("mount source {source} does not exist"),
            ));
        };
        refuse_sockets(source, &real)?;
    }
    Ok(MountSpec::bind(
        &sources.pop().unwrap_or_default(),
        &target,
        spec.read_only,
    ))
}

/// Refuses a unix socket, or a folder holding one at any depth (without following
/// symlinks, which a container resolves inside itself). A socket is the engine's (or any
/// daemon's) front door whatever its name: a hard link to /var/run/docker.sock is one.
fn refuse_sockets(source: &str, real: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let socket = |path: &Path| {
        Error::invalid(
            "mounts",
            format!("{source}: {} is a unix socket (a daemon's control socket, such as the engine's); sockets are never mounted", path.display()),
        )
    };
    let meta = std::fs::metadata(real)
        .map_err(|e| Error::invalid("mounts", format!("mount source {source}: {e}")))?;
    if meta.file_type().is_socket() {
        return Err(socket(real));
    }
    if !meta.is_dir() {
        return Ok(());
    }
    let mut pending = vec![real.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Error::invalid(
                "mounts",
                format!("{source}: cannot check {} for sockets ({e}); adde mounts only folders it can check", dir.display()),
            )
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::invalid("mounts", format!("{source}: {e}")))?;
            seen += 1;
            if seen > MOUNT_SCAN_LIMIT {
                return Err(Error::invalid(
                    "mounts",
                    format!("{source} holds over {MOUNT_SCAN_LIMIT} entries; adde checks a mounted folder for sockets and refuses one it cannot check fully: mount a smaller folder"),
                ));
            }
            let kind = entry
                .file_type()
                .map_err(|e| Error::invalid("mounts", format!("{source}: {e}")))?;
            if kind.is_socket() {
                return Err(socket(&entry.path()));
            }
            if kind.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}

/// Refuses a mount source that is, holds or lies inside the engine's data root (its
/// `DockerRootDir`, where every container's files and volumes are).
pub(super) fn refuse_engine_data(source: &str, data_root: &str) -> Result<()> {
    if data_root.is_empty() {
        return Ok(());
    }
    let root = std::fs::canonicalize(data_root).unwrap_or_else(|_| data_root.into());
    if on_one_branch(Path::new(source), &root)
        || on_one_branch(Path::new(source), Path::new(data_root))
    {
        return Err(Error::invalid(
            "mounts",
            format!("{source} is, holds or lies inside the engine's data root {data_root}, which is never mounted"),
        ));
    }
    Ok(())
}

/// "512m", "2g", "1048576", "64k" into bytes; the engine needs at least 6 MiB.
pub fn parse_memory(text: &str) -> Result<i64> {
    parse_size("memory", text, 6 * 1024 * 1024).map_err(|_| {
        Error::invalid(
            "memory",
            format!("memory {text:?} is not a size of at least 6m, e.g. \"512m\" or \"2g\""),
        )
    })
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

/// The installer's environment (package indexes, proxies) and network: the host's when an
/// index is on its loopback and the caller did not choose.
pub(super) fn installer_setup(
    pip_index_url: Option<&str>,
    npm_registry: Option<&str>,
    network: Option<InstallNetwork>,
) -> (Vec<String>, InstallNetwork) {
    let (pip_index, npm_registry) = package_indexes(pip_index_url, npm_registry);
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
    let network = network.unwrap_or(if on_loopback {
        InstallNetwork::Host
    } else {
        InstallNetwork::Bridge
    });
    (installer_env, network)
}

/// A package spec goes to the installer as one argument, after `--`; one that looks like an
/// option or holds control characters is refused anyway.
pub(super) fn validate_dependency(field: &'static str, dep: &str) -> Result<String> {
    let trimmed = dep.trim();
    if trimmed.is_empty() || trimmed.starts_with('-') || trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{dep:?} is not a package name (it may not be empty, start with '-' or hold control characters)"),
        ));
    }
    Ok(trimmed.to_string())
}

/// The package indexes an install uses: the call's, else adde's environment's.
fn package_indexes(pip: Option<&str>, npm: Option<&str>) -> (Option<String>, Option<String>) {
    let pass_through = |field: Option<&str>, vars: &[&str]| {
        field
            .map(str::to_string)
            .or_else(|| vars.iter().find_map(|v| std::env::var(v).ok()))
            .filter(|v| !v.trim().is_empty())
    };
    (
        pass_through(pip, &["PIP_INDEX_URL"]),
        pass_through(npm, &["NPM_CONFIG_REGISTRY", "npm_config_registry"]),
    )
}

/// Whether an install with these indexes would be given the host's network automatically
/// (an index on the host's loopback).
pub fn loopback_index(pip: Option<&str>, npm: Option<&str>) -> bool {
    let (pip, npm) = package_indexes(pip, npm);
    [pip, npm].iter().flatten().any(|url| is_loopback_url(url))
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
        assert_eq!(
            validate_dependency("dependencies", " requests>=2 ").unwrap(),
            "requests>=2"
        );
        for bad in ["", "--index-url=http://evil", "-e.", "a\nb"] {
            assert!(validate_dependency("dependencies", bad).is_err(), "{bad:?}");
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
        crate::tools::input::parse(payload).unwrap()
    }

    #[test]
    fn plan_applies_safe_defaults_and_refuses_ports_without_network() {
        let plan = plan(&input(serde_json::json!({}))).unwrap();
        assert_eq!(plan.image, "busybox:latest");
        assert_eq!(plan.limits.memory_bytes, 512 << 20);
        assert_eq!(plan.limits.memory_swap_bytes, plan.limits.memory_bytes);
        assert_eq!(plan.limits.pids_limit, super::super::DEFAULT_PIDS);
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
