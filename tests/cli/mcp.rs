//! `adde mcp` spoken to in raw JSON-RPC over its stdin and stdout: stdout carries protocol
//! messages only, and bad input gets an answer or is ignored, never a crash. (tests/mcp
//! drives it with the official MCP Python SDK.)

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::Adde;

/// Sends `lines` to `adde mcp ARGS`, closes stdin, and returns every stdout line as JSON
/// (failing on a line that is not a JSON-RPC message), stderr, and the exit status.
fn converse(adde: &Adde, args: &[&str], lines: &[String]) -> (Vec<Value>, String, i32) {
    converse_with(adde, &[], args, lines)
}

/// `converse` with extra environment variables for the server.
fn converse_with(
    adde: &Adde,
    env: &[(&str, &str)],
    args: &[&str],
    lines: &[String],
) -> (Vec<Value>, String, i32) {
    let mut child = adde
        .command()
        .envs(env.iter().copied())
        .arg("mcp")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run adde mcp");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map(|l| l.expect("stdout line"))
            .collect::<Vec<String>>()
    });
    let expected = lines.iter().filter(|l| l.contains("\"id\"")).count();
    for line in lines {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }
    // Give the answers time to come before closing stdin, which ends the session.
    std::thread::sleep(Duration::from_millis(300 * expected as u64));
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "adde mcp did not exit after stdin closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let messages = out
        .iter()
        .map(|line| {
            let message: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
            assert_eq!(message["jsonrpc"], "2.0", "{line}");
            message
        })
        .collect();
    (messages, stderr, status.code().unwrap_or(-1))
}

fn initialize() -> Vec<String> {
    vec![
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "adde-test", "version": "1"}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
    ]
}

fn answer(messages: &[Value], id: u64) -> &Value {
    messages.iter().find(|m| m["id"] == id).unwrap_or_else(|| {
        let ids: Vec<&Value> = messages.iter().map(|m| &m["id"]).collect();
        panic!("no answer to request {id}; answers: {ids:?}")
    })
}

#[test]
fn mcp_lists_tools_and_survives_malformed_messages() {
    let adde = Adde::offline();
    let mut lines = initialize();
    lines.extend([
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(),
        // Not JSON at all: ignored (there is no id to answer).
        "{this is not json".to_string(),
        // JSON, but not a message: answered with an error.
        json!({"hello": "world"}).to_string(),
        // A call whose params have the wrong type.
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": "oops"}).to_string(),
        // An unknown tool, and arguments of the wrong type.
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": {"name": "no_such_tool", "arguments": {}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "execute_code_block", "arguments": {"container_id": 7}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "id": 6, "method": "no/such/method"}).to_string(),
        // Still serving.
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).to_string(),
    ]);
    let (messages, stderr, code) = converse(&adde, &[], &lines);
    assert_eq!(code, 0, "stderr: {stderr}");

    let init = answer(&messages, 1);
    assert_eq!(init["result"]["serverInfo"]["name"], "adde");
    assert!(init["result"]["capabilities"]["tools"].is_object());

    let tools = answer(&messages, 2)["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"execute_code_block"), "{names:?}");
    assert!(!names.contains(&"reap"), "{names:?}");
    for tool in tools {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert!(tool["annotations"].is_object(), "{tool}");
    }
    assert_eq!(
        answer(&messages, 7)["result"],
        answer(&messages, 2)["result"]
    );

    // The two messages that are JSON but not requests are answered "Invalid request", with
    // no id (rmcp cannot tell the id of a message it cannot read).
    let invalid: Vec<&Value> = messages
        .iter()
        .filter(|m| m["error"]["code"] == -32600)
        .collect();
    assert_eq!(invalid.len(), 2, "{invalid:?}");
    let unknown = answer(&messages, 4);
    assert_eq!(unknown["error"]["code"], -32602);
    assert_eq!(unknown["error"]["data"]["error_code"], "unknown_tool");
    let bad = &answer(&messages, 5)["result"];
    assert_eq!(bad["isError"], true);
    assert_eq!(bad["structuredContent"]["error_code"], "invalid_payload");
    assert_eq!(answer(&messages, 6)["error"]["code"], -32601);
}

#[test]
fn mcp_bound_to_an_environment_hides_container_id() {
    let adde = Adde::offline();
    let mut lines = initialize();
    lines.push(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string());
    let (messages, stderr, code) = converse(&adde, &["--env", "some-env"], &lines);
    assert_eq!(code, 0, "stderr: {stderr}");
    let tools = answer(&messages, 2)["result"]["tools"].as_array().unwrap();
    assert!(!tools.is_empty());
    for tool in tools {
        assert!(
            tool["inputSchema"]["properties"]
                .get("container_id")
                .is_none(),
            "{tool}"
        );
        assert_ne!(tool["name"], "create_runtime_env");
    }
}

#[test]
fn mcp_flags_are_checked_before_serving() {
    let adde = Adde::offline();
    let out = adde
        .command()
        .args(["mcp", "--session", "s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--session"));
    let out = adde
        .command()
        .args(["mcp", "--spec", r#"{"image": "busybox", "memory": 5}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory"));
}

#[test]
fn mcp_lists_only_the_tools_the_policy_enables() {
    let adde = Adde::offline();
    let policy = adde.state.path().join("policy.toml");
    std::fs::write(&policy, "tools = [\"execute_code_block\", \"read_file\"]\n").unwrap();
    let mut lines = initialize();
    lines.push(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string());
    let policy = policy.to_str().unwrap();
    let (messages, stderr, code) =
        converse_with(&adde, &[("ADDE_POLICY", policy)], &["--all-tools"], &lines);
    assert_eq!(code, 0, "stderr: {stderr}");
    let tools = answer(&messages, 2)["result"]["tools"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"execute_code_block") && names.contains(&"read_file"),
        "{names:?}"
    );
    assert!(!names.contains(&"create_runtime_env"), "{names:?}");
    assert!(!names.contains(&"cleanup_env"), "{names:?}");
}
