//! The short-lived containers an environment may need before it starts, and the hardened
//! container body they and the environment share.

use std::io::IsTerminal;
use std::time::Duration;

use futures_util::StreamExt;

use crate::call::Event;
use crate::engine::helper_volume::HelperVolume;
use crate::engine::{
    ContainerSpec, Engine, Kind, Label, Labels, Limits, MountSpec, Network, OutputChunk,
};
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
    let done = run_to_end(engine, spec, helper, Duration::from_secs(60), None).await?;
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
/// happened. With `progress`, its output is reported line by line as it comes.
async fn run_to_end(
    engine: &Engine,
    spec: ContainerSpec,
    helper: &HelperVolume,
    limit: Duration,
    progress: Option<&str>,
) -> Result<Finished> {
    let image = spec.image.clone();
    let (id, _) = engine.create_container(spec).await?;
    let outcome = async {
        helper.ensure(engine, &id, &image).await?;
        engine.start(&id).await?;
        let deadline = tokio::time::Instant::now() + limit;
        let relay = async {
            if let Some(what) = progress {
                report_lines(engine, &id, what).await;
            }
        };
        tokio::pin!(relay);
        let code = tokio::select! {
            // The caller gave up (an MCP client's cancellation): the container goes below.
            _ = crate::call::cancelled() => return Err(Error::Interrupted),
            code = engine.wait(&id, limit) => {
                // The last lines may still be on their way.
                let _ = tokio::time::timeout(LAST_LINES_WAIT, &mut relay).await;
                code?
            }
            // No progress wanted, or the output ended: the container has stopped or is about to.
            _ = &mut relay => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                engine.wait(&id, left).await?
            }
        };
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

/// Reports each line a container prints, as `what: line`, to a caller that listens (an MCP
/// client's progress) and on stderr when it is a terminal; until the container stops.
async fn report_lines(engine: &Engine, id: &str, what: &str) {
    let terminal = std::io::stderr().is_terminal();
    if !terminal && !crate::call::wants_events() {
        return;
    }
    let Ok(mut output) = engine.follow_logs(id) else {
        return;
    };
    let mut pending = Vec::new();
    while let Some(Ok(chunk)) = output.next().await {
        let (OutputChunk::Stdout(bytes) | OutputChunk::Stderr(bytes)) = chunk;
        pending.extend_from_slice(&bytes);
        while let Some(end) = pending.iter().position(|b| matches!(b, b'\n' | b'\r')) {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Some(line) = printable_line(&line) else {
                continue;
            };
            if terminal {
                eprintln!("adde: {what}: {line}");
            }
            crate::call::emit(|| Event::Progress {
                message: format!("{what}: {line}"),
            });
        }
        // A line with no end in sight is cut, so that output cannot grow without bound.
        if pending.len() > MAX_PROGRESS_LINE {
            pending.clear();
        }
    }
}

/// How long the last lines of a container's output may take to arrive after it stopped.
const LAST_LINES_WAIT: Duration = Duration::from_secs(1);

/// Longest line of a container's output reported as progress.
const MAX_PROGRESS_LINE: usize = 1024;

/// A line of a container's output fit for a terminal: control characters (escape sequences
/// included: the output is the installed packages' and untrusted) dropped, blank lines skipped.
fn printable_line(line: &[u8]) -> Option<String> {
    let text: String = String::from_utf8_lossy(line)
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_PROGRESS_LINE)
        .collect();
    let text = text.trim_end();
    (!text.is_empty()).then(|| text.to_string())
}

/// One install of packages into an environment's deps volume: before it starts, or later
/// (install_dependencies). It runs in a short-lived container of the environment's image,
/// with a network, writing into the deps volume that the environment mounts read-only: the
/// code itself never gets the network.
pub(in crate::tools) struct Install<'a> {
    pub image: &'a str,
    pub limits: &'a Limits,
    pub runtime: Option<String>,
    /// The environment's name, as its volumes know it.
    pub env_name: &'a str,
    pub container_name: String,
    pub deps_volume: &'a str,
    pub packages: &'a [String],
    pub manager: Option<PackageManager>,
    /// The installer's environment (package indexes, proxies).
    pub env: Vec<String>,
    pub network: InstallNetwork,
    pub timeout_sec: u64,
}

/// Runs an install; returns the package manager it used.
pub(in crate::tools) async fn install(
    engine: &Engine,
    install: Install<'_>,
    helper: &HelperVolume,
) -> Result<String> {
    let spec = InstallSpec {
        packages: install.packages.to_vec(),
        manager: install.manager.map(|m| format!("{m:?}").to_lowercase()),
    };
    let spec = serde_json::to_string(&spec).map_err(|e| Error::Internal(e.to_string()))?;
    let labels = Labels::new(Kind::Installer).with(Label::Env, install.env_name.to_string());
    let command = Some(Role::Install.args(&[&spec]));
    let mounts = vec![
        helper.mount(true),
        MountSpec::volume(install.deps_volume, DEPS_DIR, false),
    ];
    let mut spec = prep_spec(
        install.image,
        install.limits,
        install.runtime,
        install.container_name,
        command,
        install.env,
        labels,
        mounts,
    );
    spec.network = match install.network {
        InstallNetwork::Bridge => Network::Bridge,
        InstallNetwork::Host => Network::Host,
    };
    let limit = Duration::from_secs(install.timeout_sec);
    let Finished {
        code,
        stdout,
        stderr,
    } = run_to_end(engine, spec, helper, limit, Some("install")).await?;

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
                wanted: match install.manager {
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
                    install.timeout_sec
                ),
                INSTALLER_OUTPUT_CAP,
            ),
        }),
    }
}

/// The install an environment is created with.
pub(super) async fn install_at_creation(
    engine: &Engine,
    plan: &EnvPlan,
    input: &CreateEnvInput,
    res: &Resources,
    deps_volume: &str,
    helper: &HelperVolume,
) -> Result<String> {
    let job = Install {
        image: &plan.image,
        limits: &plan.limits,
        runtime: plan.runtime.clone(),
        env_name: &res.name,
        container_name: format!("{}-install", res.name),
        deps_volume,
        packages: &plan.packages,
        manager: input.package_manager,
        env: plan.installer_env.clone(),
        network: plan.install_network,
        timeout_sec: input.install_timeout_sec,
    };
    install(engine, job, helper).await
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

/// A container of the plan's image and limits (see [`prep_spec`]).
pub(super) fn container_spec(
    plan: &EnvPlan,
    name: String,
    helper_args: Option<Vec<String>>,
    env: Vec<String>,
    labels: Labels,
    mounts: Vec<MountSpec>,
) -> ContainerSpec {
    prep_spec(
        &plan.image,
        &plan.limits,
        plan.runtime.clone(),
        name,
        helper_args,
        env,
        labels,
        mounts,
    )
}

/// A container of `image` with `limits`, and Docker's init process, which reaps orphans
/// (environments that run adde's helper as their main process drop it: the helper is PID 1
/// itself, see `build_env`). `helper_args` run adde's helper; `None` keeps the image's own
/// command.
#[allow(clippy::too_many_arguments)]
fn prep_spec(
    image: &str,
    limits: &Limits,
    runtime: Option<String>,
    name: String,
    helper_args: Option<Vec<String>>,
    env: Vec<String>,
    labels: Labels,
    mounts: Vec<MountSpec>,
) -> ContainerSpec {
    ContainerSpec {
        name,
        image: image.to_string(),
        helper_args,
        env,
        labels,
        mounts,
        user: None,
        workdir: WORKSPACE.to_string(),
        limits: limits.clone(),
        network: Network::None,
        ports: Default::default(),
        read_only_rootfs: false,
        cap_add: Vec::new(),
        runtime,
        init: true,
        agent: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_carry_no_control_characters() {
        assert_eq!(
            printable_line(b"\x1b[31mCollecting six\x1b[0m\r"),
            Some("[31mCollecting six[0m".into())
        );
        assert_eq!(printable_line(b"   \n"), None);
        assert_eq!(
            printable_line(&[b'x'; 5000]).unwrap().len(),
            MAX_PROGRESS_LINE
        );
    }
}
