//! The short-lived containers an environment may need before it starts, and the hardened
//! container body they and the environment share.

use std::time::Duration;

use crate::engine::helper_volume::HelperVolume;
use crate::engine::{ContainerSpec, Engine, Kind, Label, Labels, MountSpec, Network};
use crate::error::{Error, Result};
use crate::protocol::{
    InstallSpec, Role, DEPS_DIR, INSTALL_MARKER, NO_PACKAGE_MANAGER_EXIT, WORKSPACE,
};

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
    mounts.retain(|m| m.target != DEPS_DIR);
    let labels = Labels::new(Kind::Prep).with(Label::Env, res.name.clone());
    let name = format!("{}-prep", res.name);
    let mut spec = container_spec(plan, name, command, Vec::new(), labels, mounts);
    spec.user = Some("0:0".into());
    spec.cap_add = vec!["CHOWN".into()];
    let done = run_to_end(engine, spec, helper, Duration::from_secs(60)).await?;
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
    spec: ContainerSpec,
    helper: &HelperVolume,
    limit: Duration,
) -> Result<Finished> {
    let image = spec.image.clone();
    let (id, _) = engine.create_container(spec).await?;
    let outcome = async {
        helper.ensure(engine, &id, &image).await?;
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
    let labels = Labels::new(Kind::Installer).with(Label::Env, res.name.clone());
    let command = Some(Role::Install.args(&[&spec]));
    let mut mounts = mounts(res, helper, false);
    mounts.retain(|m| m.source != res.workspace);
    let name = format!("{}-install", res.name);
    let env = plan.installer_env.clone();
    let mut spec = container_spec(plan, name, command, env, labels, mounts);
    spec.network = match plan.install_network {
        InstallNetwork::Bridge => Network::Bridge,
        InstallNetwork::Host => Network::Host,
    };
    let limit = Duration::from_secs(input.install_timeout_sec);
    let Finished {
        code,
        stdout,
        stderr,
    } = run_to_end(engine, spec, helper, limit).await?;

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
pub(super) fn mounts(
    res: &Resources,
    helper: &HelperVolume,
    read_only_deps: bool,
) -> Vec<MountSpec> {
    let mut mounts = vec![
        MountSpec::volume(&res.workspace, WORKSPACE, false),
        helper.mount(true),
    ];
    if let Some(deps) = &res.deps {
        mounts.push(MountSpec::volume(deps, DEPS_DIR, read_only_deps));
    }
    mounts
}

/// A container of the plan's image and limits, with Docker's init process, which reaps
/// orphans (environments that run adde's helper as their main process drop it: the helper is
/// PID 1 itself, see `build_env`). `helper_args` run adde's helper; `None` keeps the image's
/// own command.
pub(super) fn container_spec(
    plan: &EnvPlan,
    name: String,
    helper_args: Option<Vec<String>>,
    env: Vec<String>,
    labels: Labels,
    mounts: Vec<MountSpec>,
) -> ContainerSpec {
    ContainerSpec {
        name,
        image: plan.image.clone(),
        helper_args,
        env,
        labels,
        mounts,
        user: None,
        workdir: WORKSPACE.to_string(),
        limits: plan.limits.clone(),
        network: Network::None,
        ports: Default::default(),
        read_only_rootfs: false,
        cap_add: Vec::new(),
        runtime: plan.runtime.clone(),
        init: true,
        agent: false,
    }
}
