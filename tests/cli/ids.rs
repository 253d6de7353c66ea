//! Ids, names and numbers from the caller are hostile input: each attack here once reached an
//! Engine API path or a host path, deleted what adde never made, or panicked.

use serde_json::json;

use crate::common::{assert_error, docker, docker_ok, parse_output, Adde, Remove, BUSYBOX};

/// A call that must be refused before any engine is contacted: DOCKER_HOST points nowhere,
/// so reaching the engine would give docker_unavailable instead.
fn refused_offline(tool: &str, payload: serde_json::Value, field: &str) {
    let adde = Adde::offline();
    let out = parse_output(
        adde.command()
            .env("DOCKER_HOST", "unix:///nonexistent/adde-test.sock")
            .arg(tool)
            .arg(payload.to_string())
            .output()
            .unwrap(),
    );
    assert_error(&out, "invalid_argument");
    assert_eq!(out.json["field"], field, "{payload}");
}

#[test]
fn ids_that_would_rewrite_request_paths_are_refused() {
    let long = "a".repeat(100_000);
    for id in [
        "../images/busybox",
        "x#",
        "x?all=1",
        "..",
        "/",
        "a/b",
        long.as_str(),
    ] {
        for tool in ["cleanup_env", "get_container_logs", "list_files"] {
            refused_offline(tool, json!({"container_id": id}), "container_id");
        }
        refused_offline(
            "execute_code_block",
            json!({"container_id": id, "filename": "a.sh", "code_content": "true"}),
            "container_id",
        );
    }
    for image in ["../containers/x/json", "busybox?x=1", "a#b", "%2e%2e"] {
        refused_offline("delete_image", json!({"image": image}), "image");
        refused_offline("pull_image", json!({"image": image}), "image");
        refused_offline("create_runtime_env", json!({"image": image}), "image");
    }
}

#[test]
fn ids_that_would_reach_host_paths_are_refused_whatever_docker_host_says() {
    for id in ["..", "/", "/etc", "../contexts/ctx-1", "./x"] {
        refused_offline(
            "get_container_logs",
            json!({"container_id": id}),
            "container_id",
        );
    }
    refused_offline(
        "get_container_logs",
        json!({"container_id": "abc", "run_id": "../../contexts/x"}),
        "run_id",
    );
}

#[test]
fn numbers_out_of_range_are_refused_before_anything_is_done() {
    refused_offline(
        "prune_build_cache",
        json!({"older_than_hrs": 1e15}),
        "older_than_hrs",
    );
    refused_offline(
        "prune_build_cache",
        json!({"older_than_hrs": -1}),
        "older_than_hrs",
    );
    refused_offline(
        "reap",
        json!({"context_max_age_hrs": 1e300}),
        "context_max_age_hrs",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn an_image_path_in_container_id_cannot_remove_a_volume_adde_never_made() {
    let adde = Adde::docker();
    let suffix = format!("{}-{:x}", std::process::id(), rand_suffix());
    let victim = format!("adde-test-victim-{suffix}");
    let tag = format!("adde-test-claims:{suffix}");
    docker(&["volume", "create", &victim]);
    let _victim = Remove::volume(&victim);
    // An image that claims to be an adde environment owning the victim volume.
    docker(&["tag", BUSYBOX, &tag]);
    let _tag = Remove::image(&tag);
    let id = format!("../images/{tag}");
    adde.err(
        "cleanup_env",
        json!({"container_id": id}),
        "invalid_argument",
    );
    assert!(
        docker_ok(&["volume", "inspect", &victim]),
        "the volume is still there"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn cleanup_removes_only_volumes_that_are_adde_s_and_belong_to_that_environment() {
    let adde = Adde::docker();
    let suffix = format!("{}-{:x}", std::process::id(), rand_suffix());
    let victim = format!("adde-test-victim-{suffix}");
    let name = format!("adde-test-impostor-{suffix}");
    docker(&["volume", "create", &victim]);
    let _victim = Remove::volume(&victim);
    // A container made outside adde that carries adde's labels and names the victim volume.
    docker(&[
        "create",
        "--name",
        &name,
        "--label",
        "io.adde.managed=true",
        "--label",
        "io.adde.kind=env",
        "--label",
        &format!("io.adde.volumes={victim}"),
        BUSYBOX,
        "true",
    ]);
    // Declared after the volume's, so dropped first: the volume is then free to go.
    let _impostor = Remove::container(&name);
    let out = adde.ok("cleanup_env", json!({"container_id": name}));
    assert_eq!(out["volumes_removed"], json!([]), "{out}");
    assert!(
        docker_ok(&["volume", "inspect", &victim]),
        "the volume is still there"
    );
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}
