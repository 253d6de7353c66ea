//! The image factory: staged contexts, builds behind the Dockerfile gate, image housekeeping.

use std::process::Command;

use serde_json::{json, Value};

use crate::common::{
    assert_error, docker, docker_ok, parse_output, Adde, PackageIndex, Remove, BUSYBOX, PYTHON,
};

fn prepare(adde: &Adde, files: Value) -> String {
    let out = adde.ok("prepare_build_context", json!({"files": files}));
    out["context_id"].as_str().unwrap().to_string()
}

fn unique(name: &str) -> String {
    format!("adde-test-{name}:{}", std::process::id())
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_context_builds_with_its_dockerignore_honoured() {
    let adde = Adde::docker();
    let context = prepare(
        &adde,
        json!({
            "Dockerfile": format!("FROM {BUSYBOX}\nCOPY . /app\nUSER 1000\nCMD [\"ls\", \"-a\", \"/app\"]\n"),
            "main.py": "print('hi')\n",
            ".env": "API_KEY=secret\n",
            ".git/config": "[core]\n",
            "pkg/__pycache__/x.pyc": "junk",
        }),
    );
    let tag = unique("ctx");
    let out = adde.ok(
        "build_image_from_context",
        json!({"context_id": context, "tag": tag, "labels": {"team": "ml"}}),
    );
    let _image = Remove::image(&tag);
    assert_eq!(out["status"], "success");
    assert_eq!(out["tag"], tag);
    assert!(out["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert!(out["size_mb"].as_f64().unwrap() > 0.0);
    assert!(
        out["build_log_summary"]
            .as_str()
            .unwrap()
            .contains("COPY . /app"),
        "{out}"
    );
    let listing = docker(&["run", "--rm", &tag]);
    let names: Vec<&str> = listing.lines().collect();
    assert!(
        names.contains(&"main.py") && names.contains(&"pkg"),
        "{names:?}"
    );
    assert!(
        !names.contains(&".env") && !names.contains(&".git"),
        "secrets reached the image: {names:?}"
    );
    assert_eq!(
        docker(&["run", "--rm", &tag, "ls", "/app/pkg"]).trim(),
        "",
        "__pycache__ reached the image"
    );
    let labels = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &tag,
    ]);
    assert!(
        labels.contains("\"io.adde.managed\":\"true\"") && labels.contains("\"team\":\"ml\""),
        "{labels}"
    );

    let listed = adde.ok("list_agent_images", json!({"filter_tag": "adde-test-ctx"}));
    let images = listed["images"].as_array().unwrap();
    let mine = images
        .iter()
        .find(|i| i["tags"].as_array().unwrap().contains(&json!(tag)))
        .expect("listed");
    assert_eq!(mine["id"], out["image_id"]);
    assert!(mine["created"].as_str().unwrap().ends_with('Z'), "{mine}");
    let none = adde.ok(
        "list_agent_images",
        json!({"filter_tag": "no-such-prefix-adde"}),
    );
    assert_eq!(none["images"], json!([]), "always an array");

    let deleted = adde.ok("delete_image", json!({"image": tag}));
    assert_eq!(deleted["ok"], true);
    assert!(!docker_ok(&["image", "inspect", &tag]));
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_failing_step_is_named_with_its_error() {
    let adde = Adde::docker();
    let context = prepare(
        &adde,
        json!({
            "Dockerfile": format!("FROM {BUSYBOX}\nRUN head -c 3000000 /dev/zero > /big\nRUN echo installing nosuchpkg && exit 3\nUSER 1000\n"),
        }),
    );
    let tag = unique("fail");
    let _image = Remove::image(&tag);
    let out = adde.err(
        "build_image_from_context",
        json!({"context_id": context, "tag": tag}),
        "build_failed",
    );
    assert_eq!(out["status"], "error");
    let layer = out["failed_layer"].as_str().unwrap();
    assert!(
        layer.starts_with("Step 3/")
            && layer.ends_with(": RUN echo installing nosuchpkg && exit 3"),
        "{layer}"
    );
    assert_eq!(out["failed_step"], 3);
    assert!(
        out["error_line"]
            .as_str()
            .unwrap()
            .contains("returned a non-zero code: 3"),
        "{out}"
    );
    assert!(
        out["build_log_summary"]
            .as_str()
            .unwrap()
            .contains("installing nosuchpkg"),
        "{out}"
    );

    // The failed build left a 3 MB intermediate image; prune finds and frees it.
    let pruned = adde.ok("prune_build_cache", json!({}));
    assert!(
        pruned["space_reclaimed_bytes"].as_u64().unwrap() >= 3_000_000,
        "{pruned}"
    );
    assert!(pruned["images_deleted"].as_u64().unwrap() >= 1, "{pruned}");
    let again = adde.ok("prune_build_cache", json!({"older_than_hrs": 1}));
    assert_eq!(again["images_deleted"], 0);
}

#[test]
fn blocked_dockerfiles_never_reach_the_engine() {
    let adde = Adde::offline();
    let context = prepare(
        &adde,
        json!({
            "Dockerfile": "# the socket: /var/run/docker.sock (a comment is fine)\nFROM alpine\nrun --mount=type=bind,\\\nsource=/var/run/docker.sock,target=/s true\nUSER 1\n",
        }),
    );
    let output = adde
        .command()
        .env("DOCKER_HOST", "unix:///nonexistent/adde-test.sock")
        .args([
            "build_image_from_context",
            &json!({"context_id": context}).to_string(),
        ])
        .output()
        .unwrap();
    let out = parse_output(output);
    assert_error(&out, "dockerfile_blocked");
    assert_eq!(out.json["status"], "error");
    let findings = out.json["findings"].as_array().unwrap();
    let rules: Vec<(&str, &str, u64)> = findings
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        vec![("ADDE-W005", "warning", 2), ("ADDE-B001", "block", 3)]
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn bad_inputs_are_clear_errors() {
    let adde = Adde::docker();
    let context = prepare(&adde, json!({"app.txt": "no Dockerfile here"}));
    adde.err(
        "build_image_from_context",
        json!({"context_id": context}),
        "dockerfile_missing",
    );
    let context = prepare(
        &adde,
        json!({"Dockerfile": format!("FROM {BUSYBOX}\nUSER 1\n")}),
    );
    let json = adde.err(
        "build_image_from_context",
        json!({"context_id": context, "tag": "Bad:Tag!"}),
        "invalid_argument",
    );
    assert_eq!(json["field"], "tag");
    for id in ["ctx-0000000000000000", "../../etc", "/tmp"] {
        adde.err(
            "build_image_from_context",
            json!({"context_id": id}),
            "context_not_found",
        );
    }
    adde.err(
        "prepare_build_context",
        json!({"files": {"../escape": "x"}}),
        "invalid_argument",
    );
    adde.err(
        "prepare_build_context",
        json!({"files": {"/abs": "x"}}),
        "invalid_argument",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    adde.err(
        "build_image_from_path",
        json!({"path": file}),
        "invalid_argument",
    );
    adde.err(
        "build_image_from_path",
        json!({"path": dir.path()}),
        "dockerfile_missing",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn escaping_symlinks_and_oversized_contexts_are_refused() {
    let adde = Adde::docker();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {BUSYBOX}\nCOPY . /app\nUSER 1\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
    let json = adde.err(
        "build_image_from_path",
        json!({"path": dir.path()}),
        "context_symlink_escape",
    );
    assert!(json["error"].as_str().unwrap().contains("passwd"), "{json}");

    std::fs::remove_file(dir.path().join("passwd")).unwrap();
    std::os::unix::fs::symlink("Dockerfile", dir.path().join("inside")).unwrap();
    std::fs::write(dir.path().join("big.bin"), vec![7u8; 2 << 20]).unwrap();
    adde.err(
        "build_image_from_path",
        json!({"path": dir.path(), "max_context_mb": 1}),
        "context_too_large",
    );
    // Ignored files do not count.
    std::fs::write(dir.path().join(".dockerignore"), "big.bin\n").unwrap();
    let tag = unique("path");
    let _image = Remove::image(&tag);
    let out = adde.ok(
        "build_image_from_path",
        json!({"path": dir.path(), "max_context_mb": 1, "tag": tag}),
    );
    assert_eq!(out["status"], "success");
    assert!(out["context_bytes"].as_u64().unwrap() < 1024, "{out}");
}

#[test]
fn binary_files_are_staged_byte_for_byte() {
    let adde = Adde::offline();
    let bytes: Vec<u8> = (0..=255u8).collect();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let out = adde.ok(
        "prepare_build_context",
        json!({"files_base64": {"bin/data.bin": encoded}}),
    );
    let id = out["context_id"].as_str().unwrap();
    let staged = adde.state.path().join("contexts").join(id);
    assert_eq!(std::fs::read(staged.join("bin/data.bin")).unwrap(), bytes);
    assert!(std::fs::read_to_string(staged.join(".dockerignore"))
        .unwrap()
        .contains(".env"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&staged).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Adding to the context replaces and adds files.
    let out = adde.ok(
        "prepare_build_context",
        json!({"context_id": id, "files": {"bin/data.bin": "text now", "more.txt": "x"}}),
    );
    assert_eq!(out["context_id"], id);
    assert_eq!(
        std::fs::read_to_string(staged.join("bin/data.bin")).unwrap(),
        "text now"
    );
    assert!(staged.join("more.txt").exists());
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_python_project_gets_a_dockerfile_that_builds_and_runs() {
    let adde = Adde::docker();
    let index = PackageIndex::start();
    let out = adde.ok("prepare_build_context", json!({
        "files": {"requirements.txt": "adde-demo==1.0\n", "main.py": "import adde_demo\nprint(adde_demo.GREETING)\n"},
        "base_image": PYTHON,
    }));
    assert_eq!(out["injected_dockerfile"], "python");
    let tag = unique("py");
    let _image = Remove::image(&tag);
    let built = adde.ok(
        "build_image_from_context",
        json!({
            "context_id": out["context_id"], "tag": tag, "network": "host",
            "build_args": {"PIP_INDEX_URL": index.url},
        }),
    );
    assert_eq!(built["status"], "success", "{built}");
    assert_eq!(
        docker(&["run", "--rm", "--network", "none", &tag]),
        "hello from adde_demo\n"
    );
    assert_eq!(
        docker(&["run", "--rm", &tag, "id", "-u"]).trim(),
        "65534",
        "runs as non-root"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_git_repository_builds_from_a_branch_and_subfolder() {
    let adde = Adde::docker();
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::create_dir(repo.path().join("svc")).unwrap();
    std::fs::write(
        repo.path().join("svc/Dockerfile"),
        format!("FROM {BUSYBOX}\nCOPY . /svc\nUSER 1\nCMD [\"ls\", \"-a\", \"/svc\"]\n"),
    )
    .unwrap();
    std::fs::write(repo.path().join("svc/version"), "v1\n").unwrap();
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qm",
        "one",
    ]);
    git(&["checkout", "-q", "-b", "release"]);
    std::fs::write(repo.path().join("svc/version"), "v2\n").unwrap();
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-qam",
        "two",
    ]);
    let bare = tempfile::tempdir().unwrap();
    let out = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(repo.path())
        .arg(bare.path().join("r.git"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let url = format!("file://{}", bare.path().join("r.git").display());

    let tag = unique("git");
    let _image = Remove::image(&tag);
    let built = adde.ok(
        "build_image_from_git",
        json!({"url": url, "ref": "main", "subdir": "svc", "tag": tag}),
    );
    assert_eq!(built["status"], "success");
    assert_eq!(
        docker(&["run", "--rm", &tag, "cat", "/svc/version"]),
        "v1\n"
    );
    assert!(
        !docker(&["run", "--rm", &tag]).contains(".git"),
        "the clone's .git reached the image"
    );
    adde.ok(
        "build_image_from_git",
        json!({"url": url, "ref": "release", "subdir": "svc", "tag": tag}),
    );
    assert_eq!(
        docker(&["run", "--rm", &tag, "cat", "/svc/version"]),
        "v2\n"
    );
    // The first image lost its tag to the second: a dangling image of adde's, which prune frees.
    let first = built["image_id"].as_str().unwrap();
    assert!(docker_ok(&["image", "inspect", first]));
    adde.ok("prune_build_cache", json!({}));
    assert!(
        !docker_ok(&["image", "inspect", first]),
        "the dangling image survived the prune"
    );

    adde.err(
        "build_image_from_git",
        json!({"url": url, "ref": "no-such-branch", "tag": tag}),
        "git_failed",
    );
    adde.err(
        "build_image_from_git",
        json!({"url": "ext::sh -c touch% /tmp/pwned", "tag": tag}),
        "invalid_argument",
    );
    assert!(
        std::fs::read_dir(adde.state.path().join("git"))
            .unwrap()
            .next()
            .is_none(),
        "staging folders left behind"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn delete_image_refuses_images_adde_did_not_build() {
    let adde = Adde::docker();
    let json = adde.err("delete_image", json!({"image": BUSYBOX}), "not_managed");
    assert_eq!(json["ok"], false);
    assert!(docker_ok(&["image", "inspect", BUSYBOX]));
    adde.err(
        "delete_image",
        json!({"image": "adde-test/none:1"}),
        "image_not_found",
    );
}
