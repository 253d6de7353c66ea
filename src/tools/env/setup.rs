//! The short-lived containers an environment may need before it starts, and the hardened
//! container body they and the environment share.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, ResourcesUlimits};

use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::protocol::{
    InstallSpec, Role, DEPS_DIR, HELPER_PATH, INSTALL_MARKER, NO_PACKAGE_MANAGER_EXIT, WORKSPACE,
};
use crate::tools::helper_volume::HelperVolume;

use super::plan::EnvPlan;
use super::{CreateEnvInput, InstallNetwork, PackageManager, Resources};

/// Installer output kept in an error: the end, where the reason is.
const INSTALLER_OUTPUT_CAP: usize = 64 * 1024;

/// Gives the workspace volume to `user` before anything runs, from a short-lived container
/// of the same image that has only CAP_CHOWN. (The archive API cannot: Docker resolves its
/// ownership through the host's user database.)
pub(super) async fn give_workspace_to(
    engine: &Engine,
    plan: &EnvPlan,
    res: &Resources,
    helper: &HelperVolume,
    user: &str,
) -> Result<()> {
    let command = Some(Role::Chown.args(&[user]));
    let mut mounts = mounts(res, helper, false);
    mounts.retain(|m| m.target.as_deref() != Some(DEPS_DIR));
    let labels = engine::labels("prep", &[("io.adde.env", res.name.clone())]);
    let mut body = hardened_body(plan, command, Vec::new(), labels, mounts);
    body.user = Some("0:0".into());
    if let Some(host) = body.host_config.as_mut() {
        host.cap_add = Some(vec!["CHOWN".into()]);
    }
    let name = format!("{}-prep", res.name);
    let done = run_to_end(
        engine,
        &name,
        body,
        helper,
        &plan.image,
        Duration::from_secs(60),
    )
    .await?;
    match done.code {
        Some(0) => Ok(()),
        _ => Err(Error::invalid(
            "user",
            String::from_utf8_lossy(&done.stderr).trim().to_string(),
        )),
    }
}

/// How a short-lived container ended: its exit code (`None` past the time limit) and output.
struct Finished {
    code: Option<i64>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs a short-lived container of adde's to its end (or `limit`), and removes it whatever
/// happened.
async fn run_to_end(
    engine: &Engine,
    name: &str,
    body: ContainerCreateBody,
    helper: &HelperVolume,
    image: &str,
    limit: Duration,
) -> Result<Finished> {
    let (id, _) = engine.create_container(name, body).await?;
    let outcome = async {
        helper.ensure(engine, &id, image).await?;
        engine.start(&id).await?;
        let code = engine.wait(&id, limit).await?;
        let (stdout, stderr) = engine.logs(&id, None).await?;
        Ok(Finished {
            code,
            stdout,
            stderr,
        })
    }
    .await;
    let _ = engine.remove_container(&id).await;
    outcome
}

/// Runs the install in a short-lived container of the same image, with a network, writing
/// into the deps volume that the environment later mounts read-only. Returns the manager.
pub(super) async fn install_dependencies(
    engine: &Engine,
    plan: &EnvPlan,
    input: &CreateEnvInput,
    res: &Resources,
    helper: &HelperVolume,
) -> Result<String> {
    let spec = InstallSpec {
        packages: plan.packages.clone(),
        manager: input
            .package_manager
            .map(|m| format!("{m:?}").to_lowercase()),
    };
    let spec = serde_json::to_string(&spec).map_err(|e| Error::Internal(e.to_string()))?;
    let labels = engine::labels("installer", &[("io.adde.env", res.name.clone())]);
    let command = Some(Role::Install.args(&[&spec]));
    let mut mounts = mounts(res, helper, false);
    mounts.retain(|m| m.source.as_deref() != Some(res.workspace.as_str()));
    let mut body = hardened_body(plan, command, plan.installer_env.clone(), labels, mounts);
    if let Some(host) = body.host_config.as_mut() {
        host.network_mode = Some(
            match plan.install_network {
                InstallNetwork::Bridge => "bridge",
                InstallNetwork::Host => "host",
            }
            .into(),
        );
    }
    let name = format!("{}-install", res.name);
    let limit = Duration::from_secs(input.install_timeout_sec);
    let Finished {
        code,
        stdout,
        stderr,
    } = run_to_end(engine, &name, body, helper, &plan.image, limit).await?;

    let stderr = String::from_utf8_lossy(&stderr);
    let manager = stderr
        .lines()
        .find_map(|l| l.strip_prefix(INSTALL_MARKER))
        .unwrap_or("unknown")
        .to_string();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        stderr
            .lines()
            .filter(|l| !l.starts_with(INSTALL_MARKER))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    match code {
        Some(0) => Ok(manager),
        Some(code) if code == i64::from(NO_PACKAGE_MANAGER_EXIT) && manager == "none" => {
            Err(Error::NoPackageManager {
                wanted: match input.package_manager {
                    Some(PackageManager::Pip) => "pip (python3 -m pip)".into(),
                    Some(PackageManager::Npm) => "npm".into(),
                    None => {
                        "package manager adde knows (pip through python3/python, or npm)".into()
                    }
                },
            })
        }
        Some(code) => Err(Error::DependencyInstallFailed {
            manager,
            exit_code: code,
            output: keep_end(&output, INSTALLER_OUTPUT_CAP),
        }),
        None => Err(Error::DependencyInstallFailed {
            manager,
            exit_code: crate::protocol::TIMEOUT_EXIT_CODE,
            output: keep_end(
                &format!(
                    "{output}\n[adde: install timed out after {} s]",
                    input.install_timeout_sec
                ),
                INSTALLER_OUTPUT_CAP,
            ),
        }),
    }
}

fn keep_end(text: &str, cap: usize) -> String {
    if text.len() <= cap {
        return text.to_string();
    }
    let mut start = text.len() - cap;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// The workspace volume, the deps volume (read-only in the environment itself) and the
/// helper's volume (always read-only).
pub(super) fn mounts(res: &Resources, helper: &HelperVolume, read_only_deps: bool) -> Vec<Mount> {
    let volume = |source: &str, target: &str, read_only: bool| Mount {
        source: Some(source.to_string()),
        target: Some(target.to_string()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        ..Default::default()
    };
    let mut mounts = vec![volume(&res.workspace, WORKSPACE, false), helper.mount(true)];
    if let Some(deps) = &res.deps {
        mounts.push(volume(deps, DEPS_DIR, read_only_deps));
    }
    mounts
}

/// A container with adde's defaults: no network, every capability dropped,
/// no-new-privileges, memory without swap, CPU, PID and open-file limits, and Docker's init
/// process, which reaps orphans (environments that run adde's helper as their main process
/// drop it: the helper is PID 1 itself, see `build_env`). `command` runs adde's helper, which
/// stops on SIGTERM whatever the image's STOPSIGNAL; `None` keeps the image's own command.
pub(super) fn hardened_body(
    plan: &EnvPlan,
    command: Option<Vec<String>>,
    env: Vec<String>,
    labels: HashMap<String, String>,
    mounts: Vec<Mount>,
) -> ContainerCreateBody {
    let limits = &plan.limits;
    let stop_signal = command.as_ref().map(|_| "SIGTERM".to_string());
    ContainerCreateBody {
        image: Some(plan.image.clone()),
        entrypoint: command.as_ref().map(|_| vec![HELPER_PATH.to_string()]),
        cmd: command,
        stop_signal,
        env: Some(env),
        working_dir: Some(WORKSPACE.to_string()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            memory: Some(limits.memory_bytes),
            memory_swap: Some(limits.memory_swap_bytes),
            nano_cpus: Some((limits.cpus * 1e9) as i64),
            pids_limit: Some(limits.pids_limit),
            ulimits: Some(vec![ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(limits.nofile),
                hard: Some(limits.nofile),
            }]),
            init: Some(true),
            mounts: Some(mounts),
            ..Default::default()
        }),
        ..Default::default()
    }
}
