//! pull_image against a real registry on 127.0.0.1:5000 (started by tests/images/build.sh).

use serde_json::json;

use crate::common::{docker, docker_ok, Adde, REGISTRY};

fn require_registry() {
    let reachable = std::net::TcpStream::connect(REGISTRY).is_ok();
    assert!(
        reachable,
        "no registry on {REGISTRY}: run `bash tests/images/build.sh` first"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_reference_without_a_tag_pulls_latest_only() {
    let adde = Adde::docker();
    require_registry();
    let repo = format!("{REGISTRY}/adde-test/busybox");
    for tag in ["latest", "other"] {
        let _ = docker_ok(&["rmi", &format!("{repo}:{tag}")]);
    }
    let out = adde.ok("pull_image", json!({"image": repo}));
    assert_eq!(out["ok"], true);
    assert_eq!(out["image"], format!("{repo}:latest"));
    let id = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{repo}:latest"),
    ]);
    assert_eq!(out["id"], id.trim());
    assert!(
        !docker_ok(&["image", "inspect", &format!("{repo}:other")]),
        "pulled every tag"
    );
    docker(&["rmi", &format!("{repo}:latest")]);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_missing_image_is_an_error_with_ok_false() {
    let adde = Adde::docker();
    require_registry();
    let json = adde.err(
        "pull_image",
        json!({"image": format!("{REGISTRY}/adde-test/nope:1")}),
        "image_not_found",
    );
    assert_eq!(json["ok"], false);
    assert!(json["error"].as_str().unwrap().contains("nope"), "{json}");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn an_unreachable_registry_fails_the_pull() {
    let adde = Adde::docker();
    // Port 9 on loopback: nothing listens, the engine's pull fails fast.
    let json = adde.err(
        "pull_image",
        json!({"image": "127.0.0.1:9/adde-test/none:1"}),
        "pull_failed",
    );
    assert_eq!(json["ok"], false, "{json}");
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{json}"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn create_pulls_a_missing_image_unless_told_not_to() {
    let adde = Adde::docker();
    require_registry();
    let image = format!("{REGISTRY}/adde-test/busybox:autopull");
    let _ = docker_ok(&["rmi", &image]);
    let json = adde.err(
        "create_runtime_env",
        json!({"image": image, "pull": "never"}),
        "image_not_present",
    );
    assert!(
        json["error"].as_str().unwrap().contains("pull_image"),
        "{json}"
    );

    let env = adde.env(json!({"image": image}));
    assert_eq!(env.json["image_pulled"], true);
    assert!(docker_ok(&["image", "inspect", &image]));
    drop(env);
    docker(&["rmi", &image]);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn an_error_inside_the_pull_stream_is_an_error() {
    let adde = Adde::docker();
    require_registry();
    // The manifest resolves, the layer blob is gone: the engine fails mid-stream.
    let image = format!("{REGISTRY}/adde-test/broken:1");
    let json = adde.err("pull_image", json!({"image": image}), "pull_failed");
    assert_eq!(json["ok"], false);
    assert!(
        json["error"].as_str().unwrap().contains("unknown blob"),
        "{json}"
    );
    assert!(!docker_ok(&["image", "inspect", &image]));
}
