//! The CLI envelope: arguments, payloads, errors and exit codes. None of these reach an
//! engine: DOCKER_HOST points at a socket that does not exist, so a test that contacted the
//! engine would fail with docker_unavailable instead of the expected error.

use serde_json::json;

use crate::common::{assert_error, parse_output, Adde};

fn offline() -> Adde {
    Adde::offline()
}

fn call(tool: &str, payload: &str) -> crate::common::Out {
    let adde = offline();
    let output = adde
        .command()
        .env("DOCKER_HOST", "unix:///nonexistent/adde-test.sock")
        .arg(tool)
        .arg(payload)
        .output()
        .unwrap();
    parse_output(output)
}

#[test]
fn no_arguments_prints_usage_on_stderr_and_exits_2() {
    let out = parse_output(offline().command().output().unwrap());
    assert_eq!(out.code, 2);
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.to_lowercase().contains("usage"), "{out:?}");
}

#[test]
fn help_and_version_work() {
    let out = parse_output(offline().command().arg("--help").output().unwrap());
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("execute_code_block"), "{}", out.stdout);
    let out = parse_output(offline().command().arg("--version").output().unwrap());
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout.trim(),
        format!("adde {}", env!("CARGO_PKG_VERSION"))
    );
    let out = parse_output(
        offline()
            .command()
            .args(["execute_code_block", "--help"])
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("timeout_sec (number, default 30)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("container_id (string, required)"),
        "{}",
        out.stdout
    );
    // `adde help TOOL` is `adde TOOL --help`, and aliases are named.
    let create_help = parse_output(
        offline()
            .command()
            .args(["help", "create_runtime_env"])
            .output()
            .unwrap(),
    );
    assert_eq!(create_help.code, 0, "{}", create_help.stderr);
    assert!(
        create_help.stdout.contains("session (string, also name)"),
        "{}",
        create_help.stdout
    );
    assert!(
        create_help
            .stdout
            .contains("memory (string, default \"512m\")"),
        "{}",
        create_help.stdout
    );
}

#[test]
fn an_unknown_tool_is_named_and_the_tools_listed() {
    let out = call("execute_python", "{}");
    assert_error(&out, "unknown_tool");
    let message = out.json["error"].as_str().unwrap();
    assert!(
        message.contains("unknown tool \"execute_python\""),
        "{message}"
    );
    assert!(message.contains("execute_code_block"), "{message}");
    assert!(out.json["tools"].as_array().unwrap().len() >= 6);
}

#[test]
fn payloads_that_are_not_json_objects_are_rejected() {
    for payload in ["{not json", "[1, 2]", "\"busybox\"", "42"] {
        let out = call("pull_image", payload);
        assert_error(&out, "invalid_json");
    }
}

#[test]
fn unknown_fields_wrong_types_and_missing_fields_are_named() {
    let out = call(
        "execute_code_block",
        r#"{"container_id": "x", "filename": "a.py", "code_content": "", "timeout_secs": 5}"#,
    );
    assert_error(&out, "invalid_payload");
    assert_eq!(out.json["field"], "timeout_secs");
    assert!(
        out.json["error"]
            .as_str()
            .unwrap()
            .contains("`timeout_sec`"),
        "{out:?}"
    );

    let out = call(
        "create_runtime_env",
        r#"{"image": "busybox", "network": "yes"}"#,
    );
    assert_error(&out, "invalid_payload");
    assert_eq!(out.json["field"], "network");

    let out = call(
        "execute_code_block",
        r#"{"container_id": "x", "filename": "a.py"}"#,
    );
    assert_error(&out, "invalid_payload");
    assert_eq!(out.json["field"], "code_content");
}

#[test]
fn a_blank_image_is_refused_before_the_engine_is_contacted() {
    for image in ["", "   "] {
        let out = call("pull_image", &json!({"image": image}).to_string());
        assert_error(&out, "invalid_argument");
        assert_eq!(out.json["error"], "image name is required");
        assert_eq!(out.json["ok"], false, "pull_image failures carry ok: false");
    }
}

#[test]
fn escaping_filenames_are_refused() {
    for filename in ["/etc/passwd", "../../x.py", "a/../../b.sh"] {
        let payload =
            json!({"container_id": "x", "filename": filename, "code_content": "print(1)"});
        let out = call("execute_code_block", &payload.to_string());
        assert_error(&out, "invalid_argument");
        assert_eq!(out.json["field"], "filename");
    }
}

#[test]
fn port_bindings_without_a_network_are_an_error_not_ignored() {
    let payload = json!({"image": "busybox", "port_bindings": {"3000": "8080"}});
    let out = call("create_runtime_env", &payload.to_string());
    assert_error(&out, "invalid_argument");
    assert_eq!(out.json["field"], "port_bindings");
}

#[test]
fn cleanup_needs_an_id_or_all_and_fails_with_ok_false() {
    let out = call("cleanup_env", "{}");
    assert_error(&out, "invalid_argument");
    assert_eq!(out.json["ok"], false);
}

#[test]
fn an_unreachable_engine_is_docker_unavailable_with_the_address() {
    let out = call("pull_image", r#"{"image": "busybox"}"#);
    assert_error(&out, "docker_unavailable");
    assert_eq!(
        out.json["docker_host"],
        "unix:///nonexistent/adde-test.sock"
    );
    assert!(
        out.json["error"].as_str().unwrap().contains("DOCKER_HOST"),
        "{out:?}"
    );

    let adde = offline();
    let output = adde
        .command()
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .args(["create_runtime_env", r#"{"image": "busybox"}"#])
        .output()
        .unwrap();
    let out = parse_output(output);
    assert_error(&out, "docker_unavailable");
    assert!(
        out.json["error"]
            .as_str()
            .unwrap()
            .contains("tcp://127.0.0.1:1"),
        "{out:?}"
    );
}

#[test]
fn list_tools_describes_every_tool_with_its_schema() {
    let out = call("list_tools", "{}");
    assert_eq!(out.code, 0, "{out:?}");
    let tools = out.json["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for name in [
        "pull_image",
        "create_runtime_env",
        "execute_code_block",
        "get_container_logs",
        "cleanup_env",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    let exec = tools
        .iter()
        .find(|t| t["name"] == "execute_code_block")
        .unwrap();
    let schema = &exec["input_schema"];
    assert_eq!(schema["type"], "object");
    assert!(schema["properties"]["timeout_sec"].is_object(), "{schema}");
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown fields are refused: {schema}"
    );
    assert!(!exec["description"].as_str().unwrap().is_empty());
}

#[test]
fn the_payload_can_come_from_stdin() {
    let adde = offline();
    let out = adde.call_stdin("list_tools", "{\n}\n");
    assert_eq!(out.code, 0, "{out:?}");
    let out = adde.call_stdin("pull_image", "{\"image\": \"\"}");
    assert_error(&out, "invalid_argument");
}

/// The error envelope is part of the contract: its exact shape for each kind of refusal, and
/// the extra fields the tools that ADDE's users branch on carry.
#[test]
fn the_error_envelope_is_pinned() {
    let cases = [
        ("unknown_tool_x", "{}"),
        (
            "execute_code_block",
            r#"{"container_id": "x", "filename": "a.py", "code_content": "", "timeout_secs": 5}"#,
        ),
        (
            "create_runtime_env",
            r#"{"image": "busybox", "cpus": "two"}"#,
        ),
        ("cleanup_env", r#"{"container_id": "../images/x"}"#),
        ("build_image_from_path", r#"{"path": ""}"#),
        ("pull_image", r#"["busybox"]"#),
    ];
    let envelopes: Vec<serde_json::Value> = cases
        .iter()
        .map(|(tool, payload)| {
            let out = call(tool, payload);
            assert_eq!(out.code, 1, "{out:?}");
            assert_eq!(
                out.stderr,
                format!("adde: error: {}\n", out.json["error"].as_str().unwrap())
            );
            json!({"tool": tool, "payload": payload, "stdout": out.json})
        })
        .collect();
    insta::assert_json_snapshot!("error_envelopes", envelopes);
}
