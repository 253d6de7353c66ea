//! The Dockerfile gate and the build options: each attack that once got past them.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::common::{assert_error, docker, parse_output, Adde, Out, Remove, BUSYBOX};

/// Calls adde with an engine address that does not exist: whatever is refused here was
/// refused before the engine was contacted.
fn call_without_engine(adde: &Adde, tool: &str, payload: Value) -> Out {
    let output = adde
        .command()
        .env("DOCKER_HOST", "unix:///nonexistent/adde-test.sock")
        .args([tool, &payload.to_string()])
        .output()
        .unwrap();
    parse_output(output)
}

fn refused(adde: &Adde, tool: &str, payload: Value, code: &str) -> Value {
    let out = call_without_engine(adde, tool, payload);
    assert_error(&out, code);
    out.json
}

fn rules(error: &Value) -> Vec<&str> {
    error["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect()
}

fn context_with(adde: &Adde, dockerfile: &str) -> String {
    let out = adde.ok(
        "prepare_build_context",
        json!({"files": {"Dockerfile": dockerfile}}),
    );
    out["context_id"].as_str().unwrap().to_string()
}

#[test]
fn no_build_can_claim_an_image_is_adde_s() {
    let adde = Adde::offline();
    let context = context_with(&adde, "FROM a:1\nUSER 1\n");
    // The attack: an image labelled with a victim volume, which cleanup would have removed.
    for key in ["io.adde.volumes", "io.adde.managed", " IO.ADDE.kind"] {
        let error = refused(
            &adde,
            "build_image_from_context",
            json!({"context_id": context, "labels": {key: "victim"}}),
            "invalid_argument",
        );
        assert_eq!(error["field"], "labels", "{error}");
    }
    for dockerfile in [
        "FROM a:1\nLABEL io.adde.volumes=victim\nUSER 1\n",
        "FROM a:1\nLABEL team=ml \\\n  \"io.adde.volumes\"=\"victim\"\nUSER 1\n",
        "FROM a:1\nlabel io.adde.volumes victim\nUSER 1\n",
        "FROM a:1\nARG NS=io.adde\nLABEL ${NS}.volumes=victim\nUSER 1\n",
    ] {
        let context = context_with(&adde, dockerfile);
        let error = refused(
            &adde,
            "build_image_from_context",
            json!({"context_id": context}),
            "dockerfile_blocked",
        );
        assert!(
            rules(&error).contains(&"ADDE-B006"),
            "{dockerfile}: {error}"
        );
    }
}

#[test]
fn heredoc_lines_cannot_hide_from_the_classic_builder() {
    let adde = Adde::offline();
    // The classic builder read the "heredoc" body as a VOLUME instruction.
    let context = context_with(
        &adde,
        "FROM a:1\nRUN <<EOF\nVOLUME /var/run/docker.sock\nEOF\nUSER 1\n",
    );
    let error = refused(
        &adde,
        "build_image_from_context",
        json!({"context_id": context}),
        "dockerfile_blocked",
    );
    assert_eq!(rules(&error), ["ADDE-B008", "ADDE-B002"]);
    let heredoc = &error["findings"][0];
    assert_eq!(heredoc["severity"], "block");
    assert!(
        heredoc["message"]
            .as_str()
            .unwrap()
            .contains("classic builder"),
        "{error}"
    );
    assert_eq!(error["findings"][1]["line"], 3);
}

/// A loopback HTTP server that counts its requests and answers each with `body`.
fn serve(body: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn remote_add_needs_allow_remote_add() {
    let adde = Adde::docker();
    let (port, hits) = serve("host-only-secret");
    let context = context_with(
        &adde,
        &format!("FROM {BUSYBOX}\nADD http://127.0.0.1:{port}/secret /s\nUSER 1\nCMD [\"cat\", \"/s\"]\n"),
    );
    let tag = format!("adde-test-remote-add:{}", std::process::id());
    let _image = Remove::image(&tag);
    // The attack: with the build's network off, the engine still fetched a host-loopback
    // secret into the image.
    let error = adde.err(
        "build_image_from_context",
        json!({"context_id": context, "tag": tag, "network": "none"}),
        "dockerfile_blocked",
    );
    assert_eq!(rules(&error), ["ADDE-B007"]);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("allow_remote_add"),
        "{error}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the engine fetched the URL");

    let built = adde.ok(
        "build_image_from_context",
        json!({"context_id": context, "tag": tag, "allow_remote_add": true}),
    );
    let findings: Vec<&str> = built["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(findings, ["ADDE-W001"], "{built}");
    // ADD makes the file root's, mode 0600.
    assert_eq!(
        docker(&["run", "--rm", "--user", "0", &tag]),
        "host-only-secret"
    );
}

#[test]
fn a_dockerfile_symlinked_out_of_the_context_is_never_read() {
    let adde = Adde::offline();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.env"), "SECRET_KEY=hunter2\n").unwrap();
    std::fs::write(outside.path().join("Dockerfile"), "FROM a:1\nUSER 1\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.env"),
        dir.path().join("Dockerfile"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
    for (dockerfile, named) in [
        (None, "Dockerfile"),
        (Some("linked/Dockerfile"), "linked/Dockerfile"),
    ] {
        let out = call_without_engine(
            &adde,
            "build_image_from_path",
            json!({"path": dir.path(), "dockerfile": dockerfile}),
        );
        assert_error(&out, "context_symlink_escape");
        let message = out.json["error"].as_str().unwrap();
        assert!(message.starts_with(named), "{message}");
        assert!(!out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"));
    }
    for dockerfile in ["../Dockerfile", "/etc/passwd", "a/../../Dockerfile"] {
        let error = refused(
            &adde,
            "build_image_from_path",
            json!({"path": dir.path(), "dockerfile": dockerfile}),
            "invalid_argument",
        );
        assert_eq!(error["field"], "dockerfile", "{dockerfile}");
    }
}

#[test]
fn a_git_subdir_symlinked_out_of_the_clone_is_refused() {
    let adde = Adde::offline();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(
        host.path().join("Dockerfile"),
        "FROM a:1\nCOPY . /host\nUSER 1\n",
    )
    .unwrap();
    std::fs::write(host.path().join("id_rsa"), "host key").unwrap();
    let repo = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(host.path(), repo.path().join("svc")).unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "link",
        ],
    ] {
        let status = Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }
    let url = format!("file://{}", repo.path().display());
    let out = call_without_engine(
        &adde,
        "build_image_from_git",
        json!({"url": url, "subdir": "svc"}),
    );
    assert_error(&out, "context_symlink_escape");
    assert!(
        out.json["error"].as_str().unwrap().starts_with("svc"),
        "{out:?}"
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
fn build_numbers_out_of_range_are_refused_before_anything_is_done() {
    let adde = Adde::offline();
    let context = context_with(&adde, "FROM a:1\nUSER 1\n");
    let cases = [
        ("max_context_mb", json!(0)),
        ("max_context_mb", json!(-1)),
        ("max_context_mb", json!(1e300)),
        ("max_context_mb", json!(0.5)),
        ("max_context_mb", json!(18014398509481984u64)),
        ("timeout_sec", json!(0)),
        ("timeout_sec", json!(-5)),
        ("timeout_sec", json!(1e300)),
        ("timeout_sec", json!(86401)),
    ];
    for (field, value) in cases {
        let mut payload = json!({"context_id": context});
        payload[field] = value.clone();
        let error = refused(
            &adde,
            "build_image_from_context",
            payload,
            "invalid_argument",
        );
        assert_eq!(error["field"], field, "{field}={value}: {error}");
    }
    // Before a clone too: the URL is never fetched.
    let error = refused(
        &adde,
        "build_image_from_git",
        json!({"url": "https://invalid.example/repo.git", "timeout_sec": -1}),
        "invalid_argument",
    );
    assert_eq!(error["field"], "timeout_sec");
}
