//! Tests that need the engine to themselves: they count adde's resources before and after,
//! or remove every environment adde made. Cargo runs this binary after `cli`, never beside it.

#[path = "../common/mod.rs"]
mod common;

use serde_json::json;

use common::{docker_lines, Adde, PackageIndex, BUSYBOX, PYTHON};

fn managed(kind: &str) -> Vec<String> {
    docker_lines(&[kind, "ls", "-aq", "--filter", "label=io.adde.managed=true"])
}

fn managed_volumes() -> Vec<String> {
    docker_lines(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=io.adde.managed=true",
    ])
}

#[test]
fn failures_leave_nothing_behind_and_cleanup_all_removes_everything() {
    let Some(adde) = Adde::docker() else { return };
    let before = (managed("container"), managed_volumes());

    // A failed install, an image with no package manager, a missing image: nothing is left.
    let index = PackageIndex::start();
    adde.err(
        "create_runtime_env",
        json!({"image": PYTHON, "dependencies": ["no-such-package-adde"], "pip_index_url": index.url}),
        "dependency_install_failed",
    );
    adde.err(
        "create_runtime_env",
        json!({"image": BUSYBOX, "dependencies": ["anything"]}),
        "no_package_manager",
    );
    adde.err(
        "create_runtime_env",
        json!({"image": "adde-test/none:1", "pull": "never"}),
        "image_not_present",
    );
    assert_eq!(
        (managed("container"), managed_volumes()),
        before,
        "a failed create left something behind"
    );

    // cleanup_env all: removes every environment and adde's unused volumes, and nothing else.
    let foreign = docker_lines(&[
        "run",
        "-d",
        "--label",
        "io.adde.test-foreign=true",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let a = adde.ok("create_runtime_env", json!({"image": BUSYBOX}));
    let b = adde.ok("create_runtime_env", json!({"image": BUSYBOX}));
    let out = adde.ok("cleanup_env", json!({"all": true}));
    assert_eq!(out["ok"], true);
    let removed = out["removed"].as_array().unwrap();
    assert!(
        removed.contains(&a["container_id"]) && removed.contains(&b["container_id"]),
        "{out}"
    );
    assert!(managed("container").is_empty());
    assert!(managed_volumes().is_empty());
    assert_eq!(
        docker_lines(&["ps", "-q", "--filter", &format!("id={}", foreign[0])]).len(),
        1,
        "a foreign container was touched"
    );
    common::docker(&["rm", "-f", &foreign[0]]);
}
