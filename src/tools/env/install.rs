//! install_dependencies: packages installed into an environment that is already running,
//! the way create_runtime_env installs them: in a short-lived installer container of the same
//! image, with a network, writing into the environment's deps volume (mounted read-only in
//! the environment, already on its PYTHONPATH, NODE_PATH and PATH). The environment and the
//! code in it stay offline.

use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::helper_volume::HelperVolume;
use crate::engine::{Engine, Label};
use crate::error::{Error, Result};
use crate::ids::random_hex;
use crate::refs;
use crate::tools::input::in_range;

use super::plan::{installer_setup, validate_dependency, MAX_INSTALL_SEC};
use super::setup::{install, Install};
use super::{InstallNetwork, PackageManager};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallInput {
    /// The environment (id, short id or name).
    pub container_id: String,
    /// Packages to install, e.g. ["pandas==2.2.2"]: pip for images with Python, npm for
    /// images with Node (detected from the image).
    pub packages: Vec<String>,
    /// Force the installer ("pip" or "npm") instead of detecting it.
    #[serde(default)]
    pub manager: Option<PackageManager>,
    /// Package index for pip (else PIP_INDEX_URL from adde's environment, else pip's default).
    #[serde(default)]
    pub pip_index_url: Option<String>,
    /// Registry for npm (else NPM_CONFIG_REGISTRY from adde's environment, else npm's default).
    #[serde(default)]
    pub npm_registry: Option<String>,
    /// Network of the install: "bridge", or "host" to reach an index on the host's loopback.
    /// Default: "host" when the index is on 127.0.0.1/localhost, else "bridge".
    #[serde(default)]
    pub install_network: Option<InstallNetwork>,
    /// Time limit of the install in seconds.
    #[serde(default = "default_install_timeout")]
    pub install_timeout_sec: u64,
}

fn default_install_timeout() -> u64 {
    super::default_install_timeout()
}

#[derive(Serialize)]
pub struct InstallOutput {
    pub container_id: String,
    pub package_manager: String,
    pub packages: Vec<String>,
    /// How long the install took ("12.30s").
    pub execution_time: String,
}

pub async fn install_dependencies(engine: &Engine, input: InstallInput) -> Result<InstallOutput> {
    let started = Instant::now();
    let container = refs::container_id("container_id", &input.container_id)?;
    if input.packages.is_empty() {
        return Err(Error::invalid("packages", "packages is empty"));
    }
    let packages = input
        .packages
        .iter()
        .map(|p| validate_dependency("packages", p))
        .collect::<Result<Vec<_>>>()?;
    in_range(
        "install_timeout_sec",
        input.install_timeout_sec as f64,
        1.0,
        MAX_INSTALL_SEC,
    )?;
    let (env, network) = installer_setup(
        input.pip_index_url.as_deref(),
        input.npm_registry.as_deref(),
        input.install_network,
    );
    let target = engine.inspect_managed(&container).await?;
    let name = target
        .labels
        .get(Label::Env)
        .unwrap_or(&target.name)
        .to_string();
    let Some(deps) = target
        .labels
        .volumes()
        .into_iter()
        .find(|v| v.starts_with("adde-deps-"))
    else {
        return Err(Error::invalid(
            "container_id",
            format!(
                "environment {} has no dependency folder (an older adde made it without \
                 dependencies); create a new one, or pass `dependencies` at creation",
                target.id
            ),
        ));
    };
    let runtime = Some(target.runtime.clone()).filter(|r| !r.is_empty());
    let job = Install {
        image: &target.image_id,
        limits: &target.limits,
        runtime,
        env_name: &name,
        container_name: format!("{name}-install-{}", random_hex(3)),
        deps_volume: &deps,
        packages: &packages,
        manager: input.manager,
        env,
        network,
        timeout_sec: input.install_timeout_sec,
    };
    let helper = HelperVolume::for_this_binary()?;
    let manager = install(engine, job, &helper).await?;
    Ok(InstallOutput {
        container_id: target.id,
        package_manager: manager,
        packages,
        execution_time: crate::tools::exec::execution_time(started.elapsed().as_millis() as u64),
    })
}
