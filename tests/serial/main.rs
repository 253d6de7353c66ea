//! Tests that need the engine to themselves: they count adde's resources before and after,
//! or remove every environment adde made. Cargo runs this binary after `cli`, never beside it.

#[path = "../common/mod.rs"]
mod common;

use serde_json::json;

use common::{docker_lines, Adde, PackageIndex, BUSYBOX, PYTHON};

/// Cargo runs a binary's tests on parallel threads; these must not overlap.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn managed(kind: &str) -> Vec<String> {
    docker_lines(&[kind, "ls", "-aq", "--filter", "label=io.adde.managed=true"])
}

/// adde's volumes, less the shared helper volumes (a cache that outlives environments).
fn managed_volumes() -> Vec<String> {
    let all = docker_lines(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=io.adde.managed=true",
    ]);
    all.into_iter()
        .filter(|v| !v.starts_with("adde-helper-"))
        .collect()
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn failures_leave_nothing_behind_and_cleanup_all_removes_everything() {
    let _alone = alone();
    let adde = Adde::docker();
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

    // cleanup_env all, filtered by label: removes exactly those environments.
    let label = format!("adde-test-run-{}", std::process::id());
    let tagged = json!({"image": BUSYBOX, "labels": {"adde-test": label}});
    let a = adde.ok("create_runtime_env", tagged.clone());
    let b = adde.ok("create_runtime_env", tagged);
    let other = adde.ok("create_runtime_env", json!({"image": BUSYBOX}));
    let out = adde.ok(
        "cleanup_env",
        json!({"all": true, "labels": {"adde-test": label}}),
    );
    let mut removed: Vec<&str> = out["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    removed.sort();
    let mut expected = vec![
        a["container_id"].as_str().unwrap(),
        b["container_id"].as_str().unwrap(),
    ];
    expected.sort();
    assert_eq!(removed, expected);
    let other_id = other["container_id"].as_str().unwrap();
    assert!(
        common::docker_ok(&["inspect", other_id]),
        "an environment without the label was removed"
    );
    adde.ok("cleanup_env", json!({"container_id": other_id}));

    // Unfiltered, it removes every environment and adde's unused volumes, and nothing that
    // adde did not make. Only where the engine holds no other adde environments: the tests
    // never touch a developer's own.
    if !before.0.is_empty() {
        eprintln!(
            "note: adde environments exist on this engine; the unfiltered cleanup is not exercised"
        );
        return;
    }
    let foreign = docker_lines(&[
        "run",
        "-d",
        "--label",
        "io.adde.test-foreign=true",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let _foreign = common::Remove::container(&foreign[0]);
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
    // Volumes another owner left on this engine (no owner label, say) are not this caller's
    // to sweep: only what the test itself made must be gone.
    let left: Vec<String> = managed_volumes()
        .into_iter()
        .filter(|v| !before.1.contains(v))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        docker_lines(&["ps", "-q", "--filter", &format!("id={}", foreign[0])]).len(),
        1,
        "a foreign container was touched"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn reap_removes_expired_environments_and_what_nothing_uses() {
    let _alone = alone();
    let adde = Adde::docker();
    let expiring = adde.ok(
        "create_runtime_env",
        json!({"image": BUSYBOX, "ttl_sec": 1}),
    );
    let lasting = adde.ok(
        "create_runtime_env",
        json!({"image": BUSYBOX, "ttl_sec": 3600}),
    );
    let orphan = "adde-test-orphan-volume";
    // reap sweeps its owner's volumes: this process's user, as adde records it.
    let uid = String::from_utf8(
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let owner = format!("io.adde.owner=uid:{}", uid.trim());
    common::docker(&[
        "volume",
        "create",
        "--label",
        "io.adde.managed=true",
        "--label",
        "io.adde.kind=volume",
        "--label",
        &owner,
        orphan,
    ]);
    let stale = adde.state.path().join("git").join("deadbeef");
    std::fs::create_dir_all(&stale).unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::open(&stale)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let fresh_context = adde.ok(
        "prepare_build_context",
        json!({"files": {"Dockerfile": "FROM scratch\n"}}),
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let out = adde.ok("reap", json!({}));
    assert_eq!(
        out["removed_environments"],
        json!([expiring["container_id"]]),
        "{out}"
    );
    assert!(
        out["removed_volumes"]
            .as_array()
            .unwrap()
            .contains(&json!(orphan)),
        "{out}"
    );
    assert_eq!(
        out["removed_folders"],
        json!([stale.display().to_string()]),
        "{out}"
    );
    assert!(!stale.exists());
    let context = adde
        .state
        .path()
        .join("contexts")
        .join(fresh_context["context_id"].as_str().unwrap());
    assert!(context.exists(), "a fresh context is kept");
    assert!(!common::docker_ok(&[
        "inspect",
        expiring["container_id"].as_str().unwrap()
    ]));
    let lasting_id = lasting["container_id"].as_str().unwrap();
    assert!(
        common::docker_ok(&["inspect", lasting_id]),
        "an environment before its TTL stays"
    );
    adde.ok("cleanup_env", json!({"container_id": lasting_id}));
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn an_interrupted_one_shot_run_leaves_nothing_behind() {
    let _alone = alone();
    let adde = Adde::docker();
    let before = (managed("container"), managed_volumes());
    let child = adde
        .command()
        .args([
            "run_container",
            &json!({"image": BUSYBOX, "command": "sleep 300", "timeout_sec": 600}).to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until its run is under way, then Ctrl-C it.
    for _ in 0..100 {
        let running = docker_lines(&["ps", "-q", "--filter", "label=io.adde.managed=true"]);
        if running.iter().any(|id| {
            common::processes(id)
                .iter()
                .any(|p| p.contains("sleep 300"))
        }) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = common::parse_output(child.wait_with_output().unwrap());
    common::assert_error(&out, "interrupted");
    assert_eq!(
        (managed("container"), managed_volumes()),
        before,
        "the interrupted run left something behind"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn reap_removes_the_step_images_of_a_build_whose_adde_was_killed() {
    let _alone = alone();
    let adde = Adde::docker();
    let tag = format!("adde-test-killed-build:{}", std::process::id());
    let _image = common::Remove::image(&tag);
    let context = adde.ok(
        "prepare_build_context",
        json!({"files": {"Dockerfile": format!(
            "FROM {BUSYBOX}\nRUN echo first > /first\nRUN sleep 3 && echo second > /second\n"
        )}}),
    );
    let mut build = adde
        .command()
        .arg("build_image_from_context")
        .arg(json!({"context_id": context["context_id"], "tag": tag, "no_cache": true}).to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill adde once the first step's image is on record, as a crash or `kill -9` would.
    let builds = adde.state.path().join("builds");
    let record_path = (0..600)
        .find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            std::fs::read_dir(&builds)
                .ok()?
                .flatten()
                .find_map(|entry| {
                    let record: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()?;
                    (record["intermediates"].as_array()?.len() == 1).then(|| entry.path())
                })
        })
        .expect("the first step was recorded while the build ran");
    build.kill().unwrap();
    build.wait().unwrap();
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    assert_eq!(record["finished"], false);
    let step_image = record["intermediates"][0].as_str().unwrap().to_string();
    assert!(common::docker_ok(&["image", "inspect", &step_image]));

    // An hour later, reap takes what the killed build left.
    record["finished_at"] = json!((rfc3339_hours_ago(2)));
    std::fs::write(&record_path, record.to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4)); // the engine finishes the step
    let out = adde.ok("reap", json!({}));
    assert!(out["removed_build_images"].as_u64().unwrap() >= 1, "{out}");
    assert!(!common::docker_ok(&["image", "inspect", &step_image]));
    assert!(!record_path.exists());
}

/// An RFC 3339 UTC time `hours` ago, as the build record stores it.
fn rfc3339_hours_ago(hours: u64) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - hours * 3600;
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
