//! Everything create_runtime_env checks before the engine is contacted.

use std::collections::BTreeMap;
use std::path::Path;

use crate::engine::{Label, Limits, MountSpec};
use crate::error::{Error, Result};
use crate::protocol::{DEPS_DIR, WORKSPACE};
use crate::refs;
use crate::tools::images::normalize_reference;
use crate::tools::input::{env_vars, in_range, required};

const MAX_CPUS: f64 = 1024.0;
const MAX_PIDS: f64 = 1_000_000.0;
const MAX_NOFILE: f64 = 1_048_576.0;
const MAX_INSTALL_SEC: f64 = 24.0 * 3600.0;

use super::{CreateEnvInput, InstallNetwork};

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
}

pub(super) fn plan(input: &CreateEnvInput) -> Result<EnvPlan> {
    let image = normalize_reference(&required("image", "image name", &input.image)?)?;
    let memory_bytes = parse_memory(&input.memory)?;
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
    Ok(MountSpec::bind(
        &sources.pop().unwrap_or_default(),
        &target,
        spec.read_only,
    ))
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
