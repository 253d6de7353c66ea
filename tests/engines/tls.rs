//! A remote engine over TLS (DOCKER_HOST=tcp://…, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH): a
//! TLS endpoint with client-certificate verification in front of the local engine.

use serde_json::json;

use crate::common::{assert_error, BUSYBOX};
use crate::{second_engine, On};

fn tls(cert_var: &str, host_var: &str) -> Option<On> {
    let vars = second_engine("tls", &[host_var, cert_var])?;
    Some(On::new(&[
        ("DOCKER_HOST", &vars[0].1),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", &vars[1].1),
    ]))
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn the_whole_flow_works_over_tls() {
    let Some(on) = tls("ADDE_TEST_TLS_CERTS", "ADDE_TEST_TLS_HOST") else {
        return;
    };
    let env = on.env(json!({"image": BUSYBOX}));
    on.ok(
        "write_file",
        json!({"container_id": env.id, "path": "notes.txt", "content": "over tls\n"}),
    );
    let log = on.exec(&env, "cat notes.txt; sleep 30", 2.0);
    assert_eq!(log["stdout"], "over tls\n", "{log}");
    assert_eq!(log["timed_out"], true, "{log}");
    let read = on.ok(
        "read_file",
        json!({"container_id": env.id, "path": "notes.txt"}),
    );
    assert_eq!(read["content"], "over tls\n", "{read}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn requests_after_an_attach_make_a_new_connection_that_works() {
    // run_container attaches (that connection is the run's) and then removes the container
    // over a new one: a resumed handshake, which the endpoint refused with InternalError.
    let Some(on) = tls("ADDE_TEST_TLS_CERTS", "ADDE_TEST_TLS_HOST") else {
        return;
    };
    let out = on.ok(
        "run_container",
        json!({"image": BUSYBOX, "command": "echo once", "timeout_sec": 20}),
    );
    assert_eq!(out["log"]["stdout"], "once\n", "{out}");
    assert_eq!(out["removed"], true, "{out}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_ca_alone_in_the_cert_path_verifies_the_server() {
    let Some(on) = tls("ADDE_TEST_TLS_CA_ONLY_CERTS", "ADDE_TEST_TLS_CA_ONLY_HOST") else {
        return;
    };
    assert_eq!(on.ok("ping", json!({}))["ok"], true);
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_server_certificate_from_another_ca_is_docker_unavailable_with_the_cause() {
    let Some(on) = tls("ADDE_TEST_TLS_WRONG_CERTS", "ADDE_TEST_TLS_HOST") else {
        return;
    };
    let err = on.err("ping", json!({}), "docker_unavailable");
    let message = err["error"].as_str().unwrap();
    assert!(message.contains("certificate"), "{message}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_client_certificate_from_another_ca_is_refused_by_the_engine() {
    // The right CA for the server; a client certificate signed by a CA the engine does not
    // trust.
    let Some(on) = tls("ADDE_TEST_TLS_WRONG_CLIENT_CERTS", "ADDE_TEST_TLS_HOST") else {
        return;
    };
    let err = on.err("ping", json!({}), "docker_unavailable");
    let message = err["error"].as_str().unwrap();
    assert!(
        message.contains("refused this client's certificate"),
        "{message}"
    );
    let env = on.call("create_runtime_env", json!({"image": BUSYBOX}));
    assert_error(&env, "docker_unavailable");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn plain_http_to_a_tls_port_says_to_turn_tls_on() {
    let Some(vars) = second_engine("tls", &["ADDE_TEST_TLS_HOST"]) else {
        return;
    };
    let on = On::new(&[("DOCKER_HOST", &vars[0].1)]);
    let err = on.err("ping", json!({}), "docker_unavailable");
    let message = err["error"].as_str().unwrap();
    assert!(message.contains("DOCKER_TLS_VERIFY=1"), "{message}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn an_unreachable_tls_engine_is_docker_unavailable() {
    let Some(vars) = second_engine("tls", &["ADDE_TEST_TLS_CERTS"]) else {
        return;
    };
    // Nothing listens on port 1.
    let on = On::new(&[
        ("DOCKER_HOST", "tcp://127.0.0.1:1"),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", &vars[0].1),
    ]);
    let err = on.err("ping", json!({}), "docker_unavailable");
    let message = err["error"].as_str().unwrap();
    assert!(message.contains("refused"), "{message}");
}
