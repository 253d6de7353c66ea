//! The operator's policy: what callers (increasingly, language models) may ask adde for.
//!
//! A policy file (TOML, or JSON when its name ends in `.json`) is read from `ADDE_POLICY`,
//! else `$XDG_CONFIG_HOME/adde/policy.toml` (`~/.config/adde/policy.toml`), else
//! `/etc/adde/policy.toml`. With none, adde behaves as it always did. A file that cannot be
//! read or parsed is `policy_invalid` for every call: adde never runs unrestricted because
//! a policy had a typo.
//!
//! The policy is applied in one place, `tools::dispatch`, to the raw payload of every call:
//! `prepare` refuses disabled tools and fills the policy's defaults into absent fields, then
//! `check` compares each bounded field with its rule. A refusal is `policy_denied`, naming
//! the field, the value and the rule, before anything is created.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::tools::input::parse_size;

pub const ENV_VAR: &str = "ADDE_POLICY";

/// Tools a policy can never disable: they only describe adde.
const ALWAYS_ENABLED: &[&str] = &["show_policy", "list_tools", "list_error_codes"];

/// adde's own defaults, which a policy's maximum may undercut.
pub const DEFAULT_MEMORY: &str = "512m";
pub const DEFAULT_CPUS: f64 = 0.5;
pub const DEFAULT_PIDS: i64 = 256;
pub const DEFAULT_NOFILE: i64 = 1024;
pub const DEFAULT_DISK: &str = "1g";
pub const DEFAULT_TIMEOUT_SEC: f64 = 30.0;
pub const DEFAULT_OUTPUT_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_BUILD_TIMEOUT_SEC: f64 = 1800.0;
pub const DEFAULT_MAX_CONTEXT_MB: f64 = 512.0;

/// An operator's policy. Every key is optional; an absent key leaves that behaviour as it is
/// without a policy, except `allow.host_network`, which a policy must grant explicitly.
#[derive(Deserialize, Serialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The tools that may be called; absent means all. `show_policy`, `list_tools` and
    /// `list_error_codes` are always enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Image references that may be run or pulled, as globs: `*` matches within a path
    /// component, `**` anything, `?` one character. Absent means any image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    #[serde(default)]
    pub limits: PolicyLimits,
    #[serde(default)]
    pub allow: PolicyAllow,
    #[serde(default)]
    pub defaults: PolicyDefaults,
}

/// Upper bounds of numbers and sizes.
#[derive(Deserialize, Serialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyLimits {
    /// create_runtime_env and run_container `memory`, e.g. "1g".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
    /// `cpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpus: Option<f64>,
    /// `pids_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pids: Option<i64>,
    /// `nofile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nofile: Option<i64>,
    /// create_runtime_env `disk`, e.g. "1g".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_disk: Option<String>,
    /// `timeout_sec` of execute_code_block, execute_command, run_code and run_container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timeout_sec: Option<f64>,
    /// `max_output_bytes` of execute_code_block, execute_command, run_code and run_container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
    /// create_runtime_env `ttl_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ttl_sec: Option<u64>,
    /// The build tools' `timeout_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_build_timeout_sec: Option<f64>,
    /// The build tools' `max_context_mb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_context_mb: Option<f64>,
    /// Calls `adde serve` runs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<usize>,
    /// Calls `adde serve` lets wait for a slot; more are refused as `busy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued_calls: Option<usize>,
    /// Background processes (start_process) running at once in one environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_processes: Option<u32>,
}

/// What callers may ask for at all.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyAllow {
    /// `network: true` (create_runtime_env, run_container).
    #[serde(default = "yes")]
    pub network: bool,
    /// `port_bindings`.
    #[serde(default = "yes")]
    pub port_bindings: bool,
    /// `mounts` of host folders.
    #[serde(default = "yes")]
    pub mounts: bool,
    /// Mounts with `read_only: false`.
    #[serde(default = "yes")]
    pub writable_mounts: bool,
    /// Host folders under which mounts, run_container's `payload_path`, export_files'
    /// `dest`, build_image_from_path's `path` and local git URLs may lie (after resolving
    /// symlinks). Absent means anywhere the fixed mount rules allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_paths: Option<Vec<String>>,
    /// `user`.
    #[serde(default = "yes")]
    pub user: bool,
    /// `runtime` other than the policy's default.
    #[serde(default = "yes")]
    pub runtime: bool,
    /// `use_image_cmd: true`.
    #[serde(default = "yes")]
    pub use_image_cmd: bool,
    /// `dependencies` (their install runs package code with a network).
    #[serde(default = "yes")]
    pub dependencies: bool,
    /// `read_only_rootfs: false`. When false, `read_only_rootfs` defaults to true.
    #[serde(default = "yes")]
    pub writable_rootfs: bool,
    /// `workspace: "volume"`, a workspace with no size bound on most storage drivers. When
    /// false, `workspace` defaults to "tmpfs".
    #[serde(default = "yes")]
    pub workspace_volume: bool,
    /// The host's network: builds with `network: "host"` and installs with
    /// `install_network: "host"` (explicit, or chosen for a loopback index). Both reach the
    /// host's loopback services. Denied unless a policy grants it.
    #[serde(default)]
    pub host_network: bool,
    /// Builds with `allow_remote_add: true` (ADD of URLs, fetched by the engine from the host).
    #[serde(default = "yes")]
    pub remote_add: bool,
    /// `cleanup_env` and `reap` with `all_owners: true`.
    #[serde(default = "yes")]
    pub all_owners: bool,
}

impl Default for PolicyAllow {
    fn default() -> Self {
        PolicyAllow {
            network: true,
            port_bindings: true,
            mounts: true,
            writable_mounts: true,
            host_paths: None,
            user: true,
            runtime: true,
            use_image_cmd: true,
            dependencies: true,
            writable_rootfs: true,
            workspace_volume: true,
            host_network: false,
            remote_add: true,
            all_owners: true,
        }
    }
}

/// Values that replace adde's defaults when a call leaves the field out.
#[derive(Deserialize, Serialize, Debug, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    /// "volume" or "tmpfs".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_rootfs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_sec: Option<u64>,
    /// `timeout_sec` of execute_code_block, execute_command, run_code and run_container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
}

fn yes() -> bool {
    true
}

/// The policy in force and where it came from.
#[derive(Debug, Default)]
pub struct Loaded {
    pub policy: Option<Policy>,
    pub source: Option<PathBuf>,
}

static CURRENT: OnceLock<std::result::Result<Loaded, (String, String)>> = OnceLock::new();

/// The policy of this process, read once.
pub fn current() -> Result<&'static Loaded> {
    CURRENT
        .get_or_init(|| load().map_err(|e| policy_error_parts(&e)))
        .as_ref()
        .map_err(|(path, message)| Error::PolicyInvalid {
            path: path.clone(),
            message: message.clone(),
        })
}

fn policy_error_parts(err: &Error) -> (String, String) {
    match err {
        Error::PolicyInvalid { path, message } => (path.clone(), message.clone()),
        other => (String::new(), other.to_string()),
    }
}

/// Where a policy is looked for when `ADDE_POLICY` is not set.
pub fn default_locations() -> Vec<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    config
        .map(|c| c.join("adde/policy.toml"))
        .into_iter()
        .chain([PathBuf::from("/etc/adde/policy.toml")])
        .collect()
}

/// Reads the policy: `ADDE_POLICY` (which must exist), else the first default location
/// that exists, else none.
pub fn load() -> Result<Loaded> {
    if let Some(path) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        return Ok(Loaded {
            policy: Some(read(&path)?),
            source: Some(path),
        });
    }
    for path in default_locations() {
        if path.exists() {
            return Ok(Loaded {
                policy: Some(read(&path)?),
                source: Some(path),
            });
        }
    }
    Ok(Loaded::default())
}

/// Reads and checks one policy file.
pub fn read(path: &Path) -> Result<Policy> {
    let invalid = |message: String| Error::PolicyInvalid {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    parse(&text, json).map_err(invalid)
}

/// Parses a policy's text (TOML, or JSON) and checks its values.
pub fn parse(text: &str, json: bool) -> std::result::Result<Policy, String> {
    let policy: Policy = if json {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        toml::from_str(text).map_err(|e| e.to_string())?
    };
    policy.validate()?;
    Ok(policy)
}

impl Policy {
    /// The values in the file must make sense on their own: sizes parse, numbers are
    /// positive, tools exist, defaults respect the maximums and the permissions.
    fn validate(&self) -> std::result::Result<(), String> {
        let size = |key: &str, value: &Option<String>| -> std::result::Result<(), String> {
            match value {
                Some(v) => parse_size("policy", v, 1)
                    .map(drop)
                    .map_err(|_| format!("{key} = {v:?} is not a size such as \"512m\" or \"2g\"")),
                None => Ok(()),
            }
        };
        size("limits.max_memory", &self.limits.max_memory)?;
        size("limits.max_disk", &self.limits.max_disk)?;
        size("defaults.memory", &self.defaults.memory)?;
        size("defaults.disk", &self.defaults.disk)?;
        let positive = |key: &str, value: Option<f64>| match value {
            Some(v) if !(v.is_finite() && v > 0.0) => {
                Err(format!("{key} must be a number above 0, not {v}"))
            }
            _ => Ok(()),
        };
        positive("limits.max_cpus", self.limits.max_cpus)?;
        positive("limits.max_pids", self.limits.max_pids.map(|v| v as f64))?;
        positive(
            "limits.max_nofile",
            self.limits.max_nofile.map(|v| v as f64),
        )?;
        positive("limits.max_timeout_sec", self.limits.max_timeout_sec)?;
        positive(
            "limits.max_output_bytes",
            self.limits.max_output_bytes.map(|v| v as f64),
        )?;
        positive(
            "limits.max_ttl_sec",
            self.limits.max_ttl_sec.map(|v| v as f64),
        )?;
        positive(
            "limits.max_build_timeout_sec",
            self.limits.max_build_timeout_sec,
        )?;
        positive("limits.max_context_mb", self.limits.max_context_mb)?;
        positive(
            "limits.max_concurrent_calls",
            self.limits.max_concurrent_calls.map(|v| v as f64),
        )?;
        positive(
            "limits.max_processes",
            self.limits.max_processes.map(f64::from),
        )?;
        positive("defaults.cpus", self.defaults.cpus)?;
        positive("defaults.timeout_sec", self.defaults.timeout_sec)?;
        if let Some(tools) = &self.tools {
            let known = crate::tools::names();
            if let Some(unknown) = tools.iter().find(|t| !known.contains(&t.as_str())) {
                return Err(format!(
                    "tools: {unknown:?} is not a tool; the tools are: {}",
                    known.join(", ")
                ));
            }
        }
        if let Some(images) = &self.images {
            if let Some(bad) = images.iter().find(|p| p.trim().is_empty()) {
                return Err(format!("images: {bad:?} is an empty pattern"));
            }
        }
        if let Some(roots) = &self.allow.host_paths {
            if let Some(bad) = roots.iter().find(|r| !r.starts_with('/')) {
                return Err(format!("allow.host_paths: {bad:?} is not an absolute path"));
            }
        }
        if let Some(workspace) = &self.defaults.workspace {
            if !["volume", "tmpfs"].contains(&workspace.as_str()) {
                return Err(format!(
                    "defaults.workspace must be \"volume\" or \"tmpfs\", not {workspace:?}"
                ));
            }
        }
        // The defaults must pass the policy's own rules: a default that is denied would make
        // every call that leaves the field out fail.
        let mut probe = json!({});
        self.fill("create_runtime_env", &mut probe);
        self.fill("execute_command", &mut probe);
        if let Err(e) = self.check_create(&probe) {
            return Err(format!("a default breaks the policy's own rules: {e}"));
        }
        if let Err(e) = self.check_run_limits(&probe) {
            return Err(format!("a default breaks the policy's own rules: {e}"));
        }
        Ok(())
    }

    /// Whether the tool may be called.
    pub fn enabled(&self, tool: &str) -> bool {
        ALWAYS_ENABLED.contains(&tool)
            || self
                .tools
                .as_ref()
                .is_none_or(|tools| tools.iter().any(|t| t == tool))
    }

    /// Refuses a disabled tool and fills the policy's defaults into the absent fields.
    pub fn prepare(&self, tool: &str, payload: &mut Value) -> Result<()> {
        if !self.enabled(tool) {
            return Err(denied(
                "tool",
                tool,
                "tools",
                format!(
                    "the tool {tool} is not enabled by the policy; the enabled tools are: {}",
                    self.tools.as_deref().unwrap_or_default().join(", ")
                ),
            ));
        }
        self.fill(tool, payload);
        Ok(())
    }

    /// Puts the policy's defaults into the fields the payload leaves out (or sets to null).
    /// With no default but a maximum below adde's own default, the maximum is the default;
    /// with a permission denied, the only allowed value is.
    fn fill(&self, tool: &str, payload: &mut Value) {
        let Some(map) = payload.as_object_mut() else {
            return;
        };
        let mut set = |field: &str, value: Option<Value>| {
            if let Some(value) = value {
                if map.get(field).is_none_or(Value::is_null) {
                    map.insert(field.to_string(), value);
                }
            }
        };
        let d = &self.defaults;
        let l = &self.limits;
        let size_default = |default: &Option<String>, max: &Option<String>, adde: &str| {
            default.clone().or_else(|| {
                let max = max.as_deref()?;
                (bytes(max)? < bytes(adde)?).then(|| max.to_string())
            })
        };
        let capped = |default: Option<f64>, max: Option<f64>, adde: f64| {
            default.or_else(|| max.filter(|m| *m < adde))
        };
        match tool {
            "create_runtime_env" | "run_container" => {
                set(
                    "memory",
                    size_default(&d.memory, &l.max_memory, DEFAULT_MEMORY).map(Value::from),
                );
                set(
                    "cpus",
                    capped(d.cpus, l.max_cpus, DEFAULT_CPUS).map(Value::from),
                );
                set(
                    "pids_limit",
                    capped(
                        d.pids_limit.map(|v| v as f64),
                        l.max_pids.map(|v| v as f64),
                        DEFAULT_PIDS as f64,
                    )
                    .map(|v| Value::from(v as i64)),
                );
                if tool == "create_runtime_env" {
                    set(
                        "nofile",
                        capped(
                            d.nofile.map(|v| v as f64),
                            l.max_nofile.map(|v| v as f64),
                            DEFAULT_NOFILE as f64,
                        )
                        .map(|v| Value::from(v as i64)),
                    );
                    set(
                        "disk",
                        size_default(&d.disk, &l.max_disk, DEFAULT_DISK).map(Value::from),
                    );
                    set(
                        "workspace",
                        d.workspace
                            .clone()
                            .or_else(|| (!self.allow.workspace_volume).then(|| "tmpfs".to_string()))
                            .map(Value::from),
                    );
                    set(
                        "read_only_rootfs",
                        d.read_only_rootfs
                            .or_else(|| (!self.allow.writable_rootfs).then_some(true))
                            .map(Value::from),
                    );
                    set("runtime", d.runtime.clone().map(Value::from));
                    set("ttl_sec", d.ttl_sec.or(l.max_ttl_sec).map(Value::from));
                } else {
                    set(
                        "timeout_sec",
                        capped(d.timeout_sec, l.max_timeout_sec, DEFAULT_TIMEOUT_SEC)
                            .map(Value::from),
                    );
                    set(
                        "max_output_bytes",
                        d.max_output_bytes
                            .or_else(|| l.max_output_bytes.filter(|m| *m < DEFAULT_OUTPUT_BYTES))
                            .map(Value::from),
                    );
                }
            }
            "execute_code_block" | "execute_command" | "run_code" => {
                set(
                    "timeout_sec",
                    capped(d.timeout_sec, l.max_timeout_sec, DEFAULT_TIMEOUT_SEC).map(Value::from),
                );
                set(
                    "max_output_bytes",
                    d.max_output_bytes
                        .or_else(|| l.max_output_bytes.filter(|m| *m < DEFAULT_OUTPUT_BYTES))
                        .map(Value::from),
                );
            }
            // A background process has no deadline unless it asks for one.
            "start_process" => set(
                "max_output_bytes",
                d.max_output_bytes
                    .or_else(|| l.max_output_bytes.filter(|m| *m < DEFAULT_OUTPUT_BYTES))
                    .map(Value::from),
            ),
            "build_image_from_context" | "build_image_from_path" | "build_image_from_git" => {
                set(
                    "timeout_sec",
                    l.max_build_timeout_sec
                        .filter(|m| *m < DEFAULT_BUILD_TIMEOUT_SEC)
                        .map(Value::from),
                );
                set(
                    "max_context_mb",
                    l.max_context_mb
                        .filter(|m| *m < DEFAULT_MAX_CONTEXT_MB)
                        .map(Value::from),
                );
            }
            _ => {}
        }
    }

    /// Checks every bounded field of the (filled) payload against the policy.
    pub fn check(&self, tool: &str, payload: &Value) -> Result<()> {
        match tool {
            "create_runtime_env" => self.check_create(payload),
            "run_container" => {
                self.check_image(payload)?;
                self.check_resources(payload)?;
                self.check_flag(payload, "network", self.allow.network, "allow.network")?;
                self.check_run_limits(payload)?;
                self.check_host_path(payload, "payload_path")
            }
            "pull_image" => self.check_image(payload),
            "install_dependencies" => self.check_install(payload, "packages"),
            "execute_code_block" | "execute_command" | "start_process" | "run_code" => {
                self.check_run_limits(payload)
            }
            "export_files" => self.check_host_path(payload, "dest"),
            "build_image_from_context" | "build_image_from_path" | "build_image_from_git" => {
                self.check_build(payload)?;
                if tool == "build_image_from_path" {
                    self.check_host_path(payload, "path")?;
                }
                if tool == "build_image_from_git" {
                    if let Some(url) = payload.get("url").and_then(Value::as_str) {
                        let local = url.strip_prefix("file://").unwrap_or(url);
                        if local.starts_with('/') {
                            self.check_path_value("url", local)?;
                        }
                    }
                }
                Ok(())
            }
            "cleanup_env" | "reap" => self.check_flag(
                payload,
                "all_owners",
                self.allow.all_owners,
                "allow.all_owners",
            ),
            _ => Ok(()),
        }
    }

    fn check_create(&self, p: &Value) -> Result<()> {
        self.check_image(p)?;
        self.check_resources(p)?;
        self.check_max_size(p, "disk", &self.limits.max_disk, "limits.max_disk")?;
        self.check_max(
            p,
            "nofile",
            self.limits.max_nofile.map(|v| v as f64),
            "limits.max_nofile",
        )?;
        self.check_max(
            p,
            "ttl_sec",
            self.limits.max_ttl_sec.map(|v| v as f64),
            "limits.max_ttl_sec",
        )?;
        if self.limits.max_ttl_sec.is_some() && p.get("ttl_sec").is_none_or(Value::is_null) {
            return Err(denied(
                "ttl_sec",
                "none",
                "limits.max_ttl_sec",
                "an environment without ttl_sec lives forever; the policy bounds ttl_sec",
            ));
        }
        self.check_flag(p, "network", self.allow.network, "allow.network")?;
        self.check_flag(
            p,
            "use_image_cmd",
            self.allow.use_image_cmd,
            "allow.use_image_cmd",
        )?;
        let ports = p.get("port_bindings").and_then(Value::as_object);
        if !self.allow.port_bindings && ports.is_some_and(|m| !m.is_empty()) {
            return Err(denied(
                "port_bindings",
                &compact(&p["port_bindings"]),
                "allow.port_bindings",
                "publishing ports is not allowed by the policy",
            ));
        }
        self.check_install(p, "dependencies")?;
        if let Some(user) = p
            .get("user")
            .and_then(Value::as_str)
            .filter(|u| !u.trim().is_empty())
        {
            if !self.allow.user {
                return Err(denied(
                    "user",
                    user,
                    "allow.user",
                    "choosing the user is not allowed by the policy",
                ));
            }
        }
        if let Some(runtime) = p
            .get("runtime")
            .and_then(Value::as_str)
            .filter(|r| !r.trim().is_empty())
        {
            if !self.allow.runtime && Some(runtime) != self.defaults.runtime.as_deref() {
                return Err(denied(
                    "runtime",
                    runtime,
                    "allow.runtime",
                    format!(
                        "choosing the runtime is not allowed by the policy{}",
                        self.defaults
                            .runtime
                            .as_deref()
                            .map(|r| format!(" (its runtime is {r})"))
                            .unwrap_or_default()
                    ),
                ));
            }
        }
        if !self.allow.writable_rootfs
            && p.get("read_only_rootfs").and_then(Value::as_bool) != Some(true)
        {
            return Err(denied("read_only_rootfs", "false", "allow.writable_rootfs", "a writable root filesystem (unbounded disk on most storage drivers) is not allowed by the policy"));
        }
        if !self.allow.workspace_volume
            && p.get("workspace")
                .and_then(Value::as_str)
                .unwrap_or("volume")
                == "volume"
        {
            return Err(denied("workspace", "volume", "allow.workspace_volume", "a volume workspace (no size bound on this kind of storage) is not allowed by the policy; use workspace: \"tmpfs\""));
        }
        if let Some(mounts) = p
            .get("mounts")
            .and_then(Value::as_array)
            .filter(|m| !m.is_empty())
        {
            if !self.allow.mounts {
                return Err(denied(
                    "mounts",
                    &compact(&p["mounts"]),
                    "allow.mounts",
                    "host mounts are not allowed by the policy",
                ));
            }
            for mount in mounts {
                let source = mount
                    .get("source")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !self.allow.writable_mounts
                    && mount.get("read_only").and_then(Value::as_bool) == Some(false)
                {
                    return Err(denied(
                        "mounts",
                        source,
                        "allow.writable_mounts",
                        "writable host mounts are not allowed by the policy",
                    ));
                }
                self.check_path_value("mounts", source)?;
            }
        }
        Ok(())
    }

    /// An install of the packages in `field` (create_runtime_env's `dependencies`,
    /// install_dependencies' `packages`): allowed at all, and on which network.
    fn check_install(&self, p: &Value, field: &str) -> Result<()> {
        let packages = p.get(field).and_then(Value::as_array);
        if packages.is_none_or(Vec::is_empty) {
            return Ok(());
        }
        if !self.allow.dependencies {
            return Err(denied(
                field,
                &compact(&p[field]),
                "allow.dependencies",
                "installing dependencies is not allowed by the policy",
            ));
        }
        let explicit = p.get("install_network").and_then(Value::as_str);
        let automatic = explicit.is_none()
            && crate::tools::loopback_index(
                p.get("pip_index_url").and_then(Value::as_str),
                p.get("npm_registry").and_then(Value::as_str),
            );
        if !self.allow.host_network && (explicit == Some("host") || automatic) {
            return Err(denied("install_network", "host", "allow.host_network", "the install would run with the host's network (it reaches the host's loopback services); the policy does not grant the host network"));
        }
        Ok(())
    }

    fn check_resources(&self, p: &Value) -> Result<()> {
        self.check_max_size(p, "memory", &self.limits.max_memory, "limits.max_memory")?;
        self.check_max(p, "cpus", self.limits.max_cpus, "limits.max_cpus")?;
        self.check_max(
            p,
            "pids_limit",
            self.limits.max_pids.map(|v| v as f64),
            "limits.max_pids",
        )
    }

    fn check_run_limits(&self, p: &Value) -> Result<()> {
        self.check_max(
            p,
            "timeout_sec",
            self.limits.max_timeout_sec,
            "limits.max_timeout_sec",
        )?;
        self.check_max(
            p,
            "max_output_bytes",
            self.limits.max_output_bytes.map(|v| v as f64),
            "limits.max_output_bytes",
        )
    }

    fn check_build(&self, p: &Value) -> Result<()> {
        if !self.allow.host_network && p.get("network").and_then(Value::as_str) == Some("host") {
            return Err(denied("network", "host", "allow.host_network", "a build with the host's network reaches the host's loopback services; the policy does not grant the host network"));
        }
        self.check_flag(
            p,
            "allow_remote_add",
            self.allow.remote_add,
            "allow.remote_add",
        )?;
        self.check_max(
            p,
            "timeout_sec",
            self.limits.max_build_timeout_sec,
            "limits.max_build_timeout_sec",
        )?;
        self.check_max(
            p,
            "max_context_mb",
            self.limits.max_context_mb,
            "limits.max_context_mb",
        )
    }

    fn check_image(&self, p: &Value) -> Result<()> {
        let Some(patterns) = &self.images else {
            return Ok(());
        };
        let Some(image) = p.get("image").and_then(Value::as_str) else {
            return Ok(());
        };
        // The normalized reference (a tag added), and its short Docker Hub form.
        let normal = crate::tools::normalize_image(image.trim())
            .unwrap_or_else(|_| image.trim().to_string());
        let short = normal
            .strip_prefix("docker.io/library/")
            .or_else(|| normal.strip_prefix("docker.io/"))
            .unwrap_or(&normal)
            .to_string();
        if patterns
            .iter()
            .any(|pat| glob(pat, &normal) || glob(pat, &short))
        {
            return Ok(());
        }
        Err(denied(
            "image",
            image,
            "images",
            format!(
                "image {normal} is not allowed by the policy; the allowed images are: {}",
                patterns.join(", ")
            ),
        ))
    }

    fn check_flag(&self, p: &Value, field: &str, allowed: bool, rule: &str) -> Result<()> {
        if !allowed && p.get(field).and_then(Value::as_bool) == Some(true) {
            return Err(denied(
                field,
                "true",
                rule,
                format!("{field}: true is not allowed by the policy"),
            ));
        }
        Ok(())
    }

    fn check_max(&self, p: &Value, field: &str, max: Option<f64>, rule: &str) -> Result<()> {
        let (Some(max), Some(value)) = (max, p.get(field).and_then(Value::as_f64)) else {
            return Ok(());
        };
        if value > max {
            return Err(denied(
                field,
                &value.to_string(),
                rule,
                format!("{field} {value} is over the policy's maximum of {max}"),
            ));
        }
        Ok(())
    }

    fn check_max_size(
        &self,
        p: &Value,
        field: &str,
        max: &Option<String>,
        rule: &str,
    ) -> Result<()> {
        let (Some(max), Some(value)) = (max, p.get(field).and_then(Value::as_str)) else {
            return Ok(());
        };
        // A size that does not parse is refused by the tool itself, naming the field.
        let (Some(max_bytes), Some(bytes)) = (bytes(max), bytes(value)) else {
            return Ok(());
        };
        if bytes > max_bytes {
            return Err(denied(
                field,
                value,
                rule,
                format!("{field} {value} is over the policy's maximum of {max}"),
            ));
        }
        Ok(())
    }

    fn check_host_path(&self, p: &Value, field: &str) -> Result<()> {
        match p.get(field).and_then(Value::as_str) {
            Some(path) => self.check_path_value(field, path),
            None => Ok(()),
        }
    }

    /// A host path must lie under one of `allow.host_paths` (when the policy lists them),
    /// compared after resolving symlinks.
    fn check_path_value(&self, field: &str, path: &str) -> Result<()> {
        let Some(roots) = &self.allow.host_paths else {
            return Ok(());
        };
        let real = resolve(Path::new(path.trim()));
        let inside = roots.iter().any(|root| {
            let root = resolve(Path::new(root));
            real.starts_with(&root)
        });
        if inside {
            return Ok(());
        }
        Err(denied(
            field,
            path,
            "allow.host_paths",
            format!(
                "{} is not under a host folder the policy allows ({})",
                real.display(),
                roots.join(", ")
            ),
        ))
    }

    /// The policy as `show_policy` reports it: every key, with the defaults filled in.
    pub fn describe(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// A path with its symlinks resolved as far as it exists, and the rest normalized.
pub fn resolve(path: &Path) -> PathBuf {
    let normal = PathBuf::from(format!(
        "/{}",
        crate::paths::lexical_parts(&path.to_string_lossy()).join("/")
    ));
    let mut existing = normal.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return normal,
        }
    }
}

fn bytes(size: &str) -> Option<i64> {
    parse_size("size", size, 1).ok()
}

fn compact(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 200 {
        let mut cut = 200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

fn denied(field: &str, value: &str, rule: &str, why: impl Into<String>) -> Error {
    Error::PolicyDenied {
        field: field.to_string(),
        value: value.to_string(),
        rule: rule.to_string(),
        message: why.into(),
    }
}

/// Glob matching for image references: `*` matches within a path component (not '/'),
/// `**` matches anything, `?` one character other than '/'. Dynamic programming over the
/// pattern's tokens: time is pattern length times text length, whatever the stars.
pub fn glob(pattern: &str, text: &str) -> bool {
    enum Token {
        Star,
        DoubleStar,
        One,
        Literal(char),
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                Token::DoubleStar
            }
            '*' => Token::Star,
            '?' => Token::One,
            c => Token::Literal(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let m = text.len();
    // next[j]: the tokens after the current one match text[j..].
    let mut next = vec![false; m + 1];
    next[m] = true;
    for token in tokens.iter().rev() {
        let mut cur = vec![false; m + 1];
        for j in (0..=m).rev() {
            cur[j] = match token {
                Token::Star => next[j] || (j < m && text[j] != '/' && cur[j + 1]),
                Token::DoubleStar => next[j] || (j < m && cur[j + 1]),
                Token::One => j < m && text[j] != '/' && next[j + 1],
                Token::Literal(c) => j < m && text[j] == *c && next[j + 1],
            };
        }
        next = cur;
    }
    next[0]
}

/// show_policy's answer.
pub fn show() -> Result<Value> {
    let loaded = current()?;
    Ok(json!({
        "policy": loaded.policy.as_ref().map(Policy::describe),
        "source": loaded.source.as_ref().map(|p| p.display().to_string()),
        "searched": std::env::var_os(ENV_VAR)
            .filter(|v| !v.is_empty())
            .map(|v| vec![PathBuf::from(v)])
            .unwrap_or_else(default_locations)
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        parse(text, false).unwrap()
    }

    fn denial(p: &Policy, tool: &str, mut payload: Value) -> Error {
        p.prepare(tool, &mut payload)
            .and_then(|()| p.check(tool, &payload))
            .expect_err("denied")
    }

    fn admitted(p: &Policy, tool: &str, mut payload: Value) -> Value {
        p.prepare(tool, &mut payload).unwrap();
        p.check(tool, &payload).unwrap();
        payload
    }

    #[test]
    fn globs_match_within_components() {
        assert!(glob("python:*", "python:3.12-slim"));
        assert!(!glob("python:*", "python:3/evil"));
        assert!(glob("adde-test/*", "adde-test/busybox:1"));
        assert!(!glob("adde-test/*", "adde-test/a/b:1"));
        assert!(glob("127.0.0.1:5000/**", "127.0.0.1:5000/a/b:1"));
        assert!(glob("busybox:1.3?", "busybox:1.36"));
        assert!(!glob("busybox", "busybox:latest"));
        assert!(glob("*", "busybox:latest"));
        assert!(!glob("*", "evil/busybox:latest"));
        assert!(glob("**", "a/b/c"));
        assert!(!glob("a*b", "a/b"));
        // Long inputs finish quickly (no backtracking blow-up).
        let long = "a".repeat(400);
        assert!(!glob(&"*a".repeat(100), &format!("{long}b")));
    }

    #[test]
    fn an_empty_policy_changes_nothing_but_the_host_network() {
        let p = policy("");
        let out = admitted(
            &p,
            "create_runtime_env",
            json!({"image": "busybox", "network": true, "mounts": [{"source": "/srv", "target": "/x", "read_only": false}]}),
        );
        assert_eq!(
            out,
            json!({"image": "busybox", "network": true, "mounts": [{"source": "/srv", "target": "/x", "read_only": false}]})
        );
        let err = denial(
            &p,
            "build_image_from_path",
            json!({"path": "/x", "network": "host"}),
        );
        assert_eq!(err.code(), "policy_denied");
        assert_eq!(err.details()["rule"], "allow.host_network");
    }

    #[test]
    fn unknown_keys_bad_sizes_and_unknown_tools_are_errors() {
        for text in [
            "max_memory = \"1g\"",
            "[limits]\nmax_memroy = \"1g\"",
            "[limits]\nmax_memory = \"lots\"",
            "[limits]\nmax_cpus = -1",
            "tools = [\"rm_rf\"]",
            "[allow]\nhost_paths = [\"relative\"]",
            "[defaults]\nworkspace = \"ramdisk\"",
            "[limits]\nmax_memory = \"256m\"\n[defaults]\nmemory = \"1g\"",
            "[allow]\nnetwork = \"no\"",
            "images = [\"\"]",
            "not toml at all [",
        ] {
            assert!(parse(text, false).is_err(), "{text}");
        }
        assert!(parse("{\"limits\": {\"max_cpus\": 2}}", true).is_ok());
        assert!(parse("{\"limits\": {\"max_cpu\": 2}}", true).is_err());
    }

    #[test]
    fn limits_deny_and_defaults_fill() {
        let p = policy("[limits]\nmax_memory = \"256m\"\nmax_cpus = 1\nmax_pids = 100\nmax_disk = \"1g\"\nmax_timeout_sec = 60\nmax_output_bytes = 65536\n[defaults]\ncpus = 0.25\n");
        let out = admitted(&p, "create_runtime_env", json!({"image": "busybox"}));
        assert_eq!(
            out["memory"], "256m",
            "a max below adde's default becomes the default"
        );
        assert_eq!(out["cpus"], 0.25);
        assert_eq!(out["pids_limit"], 100);
        assert!(
            out.get("disk").is_none(),
            "1g is adde's default and within the max"
        );
        let err = denial(
            &p,
            "create_runtime_env",
            json!({"image": "busybox", "memory": "2g"}),
        );
        let d = err.details();
        assert_eq!(
            (d["field"].as_str(), d["value"].as_str(), d["rule"].as_str()),
            (Some("memory"), Some("2g"), Some("limits.max_memory"))
        );
        assert!(
            err.to_string().contains("2g") && err.to_string().contains("256m"),
            "{err}"
        );
        assert_eq!(
            denial(&p, "create_runtime_env", json!({"image": "b", "cpus": 4})).details()["rule"],
            "limits.max_cpus"
        );
        assert_eq!(
            denial(
                &p,
                "create_runtime_env",
                json!({"image": "b", "disk": "10g"})
            )
            .details()["rule"],
            "limits.max_disk"
        );
        assert_eq!(
            denial(
                &p,
                "run_container",
                json!({"image": "b", "command": "x", "pids_limit": 1000})
            )
            .details()["rule"],
            "limits.max_pids"
        );
        assert_eq!(
            denial(&p, "execute_code_block", json!({"timeout_sec": 3600})).details()["rule"],
            "limits.max_timeout_sec"
        );
        assert_eq!(
            denial(
                &p,
                "execute_command",
                json!({"max_output_bytes": 1_000_000})
            )
            .details()["rule"],
            "limits.max_output_bytes"
        );
        let out = admitted(&p, "execute_command", json!({"command": "x"}));
        assert_eq!(out["max_output_bytes"], 65536);
        assert!(out.get("timeout_sec").is_none(), "30 s is within 60");
        let out = admitted(&p, "run_container", json!({"image": "b", "command": "x"}));
        assert_eq!(out["memory"], "256m");
        assert_eq!(out["max_output_bytes"], 65536);
    }

    #[test]
    fn permissions_deny_the_field_they_name() {
        let p = policy("[allow]\nnetwork = false\nport_bindings = false\nmounts = false\nuser = false\nruntime = false\nuse_image_cmd = false\ndependencies = false\nremote_add = false\nall_owners = false\n[defaults]\nruntime = \"runsc\"\n");
        for (payload, field, rule) in [
            (json!({"network": true}), "network", "allow.network"),
            (
                json!({"port_bindings": {"3000": "8080"}}),
                "port_bindings",
                "allow.port_bindings",
            ),
            (
                json!({"mounts": [{"source": "/tmp/secret", "target": "/host", "read_only": false}]}),
                "mounts",
                "allow.mounts",
            ),
            (json!({"user": "0"}), "user", "allow.user"),
            (json!({"runtime": "runc"}), "runtime", "allow.runtime"),
            (
                json!({"use_image_cmd": true}),
                "use_image_cmd",
                "allow.use_image_cmd",
            ),
            (
                json!({"dependencies": ["requests"]}),
                "dependencies",
                "allow.dependencies",
            ),
        ] {
            let mut payload = payload;
            payload["image"] = json!("busybox");
            let err = denial(&p, "create_runtime_env", payload.clone());
            assert_eq!(err.details()["field"], field, "{payload}");
            assert_eq!(err.details()["rule"], rule, "{payload}");
        }
        let out = admitted(&p, "create_runtime_env", json!({"image": "busybox"}));
        assert_eq!(
            out["runtime"], "runsc",
            "the policy's runtime is the default, and allowed"
        );
        assert_eq!(
            denial(&p, "run_container", json!({"image": "b", "network": true})).details()["rule"],
            "allow.network"
        );
        assert_eq!(
            denial(
                &p,
                "build_image_from_context",
                json!({"context_id": "c", "allow_remote_add": true})
            )
            .details()["rule"],
            "allow.remote_add"
        );
        assert_eq!(
            denial(&p, "cleanup_env", json!({"all": true, "all_owners": true})).details()["rule"],
            "allow.all_owners"
        );
        assert_eq!(
            denial(&p, "reap", json!({"all_owners": true})).details()["rule"],
            "allow.all_owners"
        );
    }

    #[test]
    fn writable_mounts_and_host_paths() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("tools");
        std::fs::create_dir(&allowed).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("escape")).unwrap();
        let text = format!(
            "[allow]\nwritable_mounts = false\nhost_paths = [{:?}]\n",
            allowed.display().to_string()
        );
        let p = policy(&text);
        let inside = allowed.display().to_string();
        admitted(
            &p,
            "create_runtime_env",
            json!({"image": "b", "mounts": [{"source": inside, "target": "/t"}]}),
        );
        let err = denial(
            &p,
            "create_runtime_env",
            json!({"image": "b", "mounts": [{"source": inside, "target": "/t", "read_only": false}]}),
        );
        assert_eq!(err.details()["rule"], "allow.writable_mounts");
        for outside in ["/tmp/secret", "/etc"] {
            let err = denial(
                &p,
                "create_runtime_env",
                json!({"image": "b", "mounts": [{"source": outside, "target": "/t"}]}),
            );
            assert_eq!(err.details()["rule"], "allow.host_paths", "{outside}");
        }
        // A symlink inside the allowed folder that leads out of it is judged by its target.
        let escape = allowed.join("escape").display().to_string();
        let err = denial(
            &p,
            "create_runtime_env",
            json!({"image": "b", "mounts": [{"source": escape, "target": "/t"}]}),
        );
        assert_eq!(err.details()["rule"], "allow.host_paths");
        let dotdot = format!("{inside}/../../etc");
        assert_eq!(
            denial(&p, "export_files", json!({"dest": dotdot})).details()["rule"],
            "allow.host_paths"
        );
        assert_eq!(
            denial(
                &p,
                "run_container",
                json!({"image": "b", "payload_path": "/etc/shadow"})
            )
            .details()["field"],
            "payload_path"
        );
        assert_eq!(
            denial(&p, "build_image_from_path", json!({"path": "/"})).details()["field"],
            "path"
        );
        assert_eq!(
            denial(
                &p,
                "build_image_from_git",
                json!({"url": "file:///root/repo"})
            )
            .details()["field"],
            "url"
        );
        admitted(
            &p,
            "export_files",
            json!({"dest": format!("{inside}/out/new")}),
        );
    }

    #[test]
    fn images_are_matched_normalized() {
        let p = policy("images = [\"python:3.12-*\", \"adde-test/*\"]");
        admitted(
            &p,
            "create_runtime_env",
            json!({"image": "python:3.12-slim"}),
        );
        admitted(
            &p,
            "create_runtime_env",
            json!({"image": "docker.io/library/python:3.12-slim"}),
        );
        admitted(&p, "pull_image", json!({"image": "adde-test/busybox:1"}));
        for bad in [
            "python",
            "python:3.11",
            "evil/python:3.12-slim",
            "adde-test/busybox/../x:1",
        ] {
            let err = denial(&p, "create_runtime_env", json!({"image": bad}));
            assert_eq!(err.details()["rule"], "images", "{bad}");
            assert_eq!(err.details()["value"], bad);
        }
        assert_eq!(
            denial(&p, "run_container", json!({"image": "busybox"})).details()["field"],
            "image"
        );
    }

    #[test]
    fn disabled_tools_are_denied_and_describing_tools_never_are() {
        let p = policy("tools = [\"execute_code_block\"]");
        let err = denial(&p, "create_runtime_env", json!({"image": "b"}));
        assert_eq!(err.details()["field"], "tool");
        assert_eq!(err.details()["rule"], "tools");
        for tool in ALWAYS_ENABLED {
            assert!(p.enabled(tool));
        }
    }

    #[test]
    fn disk_rules_choose_the_bounded_kinds() {
        let p = policy("[allow]\nworkspace_volume = false\nwritable_rootfs = false\n");
        let out = admitted(&p, "create_runtime_env", json!({"image": "b"}));
        assert_eq!(out["workspace"], "tmpfs");
        assert_eq!(out["read_only_rootfs"], true);
        assert_eq!(
            denial(
                &p,
                "create_runtime_env",
                json!({"image": "b", "workspace": "volume"})
            )
            .details()["rule"],
            "allow.workspace_volume"
        );
        assert_eq!(
            denial(
                &p,
                "create_runtime_env",
                json!({"image": "b", "read_only_rootfs": false})
            )
            .details()["rule"],
            "allow.writable_rootfs"
        );
    }

    #[test]
    fn host_network_needs_consent() {
        let p = policy("");
        let err = denial(
            &p,
            "create_runtime_env",
            json!({"image": "b", "dependencies": ["x"], "install_network": "host"}),
        );
        assert_eq!(err.details()["rule"], "allow.host_network");
        let err = denial(
            &p,
            "create_runtime_env",
            json!({"image": "b", "dependencies": ["x"], "pip_index_url": "http://127.0.0.1:9/simple"}),
        );
        assert_eq!(err.details()["field"], "install_network");
        let p = policy("[allow]\nhost_network = true");
        admitted(
            &p,
            "build_image_from_context",
            json!({"context_id": "c", "network": "host"}),
        );
    }

    #[test]
    fn the_example_llm_policy_parses_and_denies_the_mount_attack() {
        let text = include_str!("../examples/policy-llm.toml");
        let p = policy(text);
        let err = denial(
            &p,
            "create_runtime_env",
            json!({"image": "python:3.12-slim", "mounts": [{"source": "/tmp/secret", "target": "/host", "read_only": false}]}),
        );
        assert_eq!(err.details()["field"], "mounts");
        let out = admitted(
            &p,
            "create_runtime_env",
            json!({"image": "python:3.12-slim"}),
        );
        assert_eq!(out["workspace"], "tmpfs");
        assert_eq!(out["read_only_rootfs"], true);
        assert_eq!(
            denial(
                &p,
                "create_runtime_env",
                json!({"image": "python:3.12-slim", "network": true})
            )
            .details()["rule"],
            "allow.network"
        );
        assert_eq!(
            denial(&p, "create_runtime_env", json!({"image": "ubuntu"})).details()["rule"],
            "images"
        );
        assert!(!p.enabled("build_image_from_path"));
        assert!(!p.enabled("export_files"));
    }
}
