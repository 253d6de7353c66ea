//! install_dependencies: packages installed into a running environment with the guarantees
//! of an install at creation (the code stays offline, the packages are read-only to it, the
//! installer's output comes back on failure), and its progress as it goes.

use std::process::Command;

use serde_json::json;

use crate::common::{inspect, Adde, PackageIndex, PYTHON};

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn packages_install_into_a_running_environment_that_stays_offline() {
    let adde = Adde::docker();
    let index = PackageIndex::start();
    let env = adde.env(json!({"image": PYTHON}));
    let missing = adde.exec(&env, "use.py", "import adde_demo", 30.0);
    assert!(missing["stderr"]
        .as_str()
        .unwrap()
        .contains("ModuleNotFoundError"));
    let out = adde.ok(
        "install_dependencies",
        json!({"container_id": env.id, "packages": ["adde-demo==1.0"], "pip_index_url": index.url}),
    );
    assert_eq!(out["package_manager"], "pip", "{out}");
    assert_eq!(out["packages"], json!(["adde-demo==1.0"]));
    let log = adde.exec(
        &env,
        "use.py",
        "import adde_demo, os\nprint(adde_demo.GREETING)\nprint(sorted(os.listdir('/sys/class/net')))\n",
        30.0,
    );
    assert_eq!(log["stdout"], "hello from adde_demo\n['lo']\n", "{log}");
    let log = adde.exec(&env, "tamper.sh", "touch /opt/adde/deps/python/x", 10.0);
    assert_ne!(log["exit_code"], 0);
    assert!(
        log["stderr"].as_str().unwrap().contains("Read-only"),
        "{log}"
    );
    assert_eq!(inspect(&env.id)["HostConfig"]["NetworkMode"], "none");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_failed_live_install_carries_the_installers_output() {
    let adde = Adde::docker();
    let index = PackageIndex::start();
    let env = adde.env(json!({"image": PYTHON}));
    let json = adde.err(
        "install_dependencies",
        json!({"container_id": env.id, "packages": ["no-such-package-adde"], "pip_index_url": index.url}),
        "dependency_install_failed",
    );
    assert_eq!(json["package_manager"], "pip");
    let output = json["installer_output"].as_str().unwrap();
    assert!(output.contains("no-such-package-adde"), "{output}");
    adde.err(
        "install_dependencies",
        json!({"container_id": env.id, "packages": ["--index-url=http://evil"]}),
        "invalid_argument",
    );
    adde.err(
        "install_dependencies",
        json!({"container_id": env.id, "packages": []}),
        "invalid_argument",
    );
}

/// On a terminal, the installer's lines are shown as they come (a long install used to be
/// silent), without the control characters a package could print.
#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn install_progress_is_shown_on_a_terminal() {
    let adde = Adde::docker();
    let index = PackageIndex::start();
    let env = adde.env(json!({"image": PYTHON}));
    let payload =
        json!({"container_id": env.id, "packages": ["adde-demo==1.0"], "pip_index_url": index.url});
    let adde_bin = env!("CARGO_BIN_EXE_adde");
    // `script` gives the call a terminal; its stderr and stdout both land in the transcript.
    let line = format!(
        "{adde_bin} install_dependencies '{}' 2>&1 >/dev/null",
        payload.to_string().replace('\'', "'\\''")
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("ADDE_STATE_DIR", adde.state.path())
        .env_remove("PIP_INDEX_URL")
        .output()
        .expect("script(1)");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    assert!(
        transcript.contains("adde: install: ") && transcript.contains("adde-demo"),
        "{transcript}"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn the_policy_governs_live_installs_as_it_does_installs_at_creation() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": PYTHON}));
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[allow]\ndependencies = false\n").unwrap();
    let policy = policy.display().to_string();
    let out = adde.call_with(
        &[("ADDE_POLICY", &policy)],
        "install_dependencies",
        json!({"container_id": env.id, "packages": ["six"]}),
    );
    assert_eq!(out.json["error_code"], "policy_denied", "{out:?}");
    assert_eq!(out.json["rule"], "allow.dependencies");
    assert_eq!(out.json["field"], "packages");
    // A loopback index means the host's network, which a policy must grant.
    std::fs::write(
        dir.path().join("policy.toml"),
        "tools = [\"install_dependencies\"]\n",
    )
    .unwrap();
    let out = adde.call_with(
        &[("ADDE_POLICY", &policy)],
        "install_dependencies",
        json!({"container_id": env.id, "packages": ["six"], "pip_index_url": "http://127.0.0.1:1/simple"}),
    );
    assert_eq!(out.json["rule"], "allow.host_network", "{out:?}");
}
