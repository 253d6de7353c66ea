//! Docker contexts (`docker context create`, `docker context use`, DOCKER_CONTEXT), read from
//! the docker CLI's own store in a temporary DOCKER_CONFIG: the TLS endpoint of
//! tests/engines/setup.sh with its certificates, and the plain local socket.

use serde_json::json;

use crate::common::BUSYBOX;
use crate::{second_engine, On};

/// A DOCKER_CONFIG folder of its own, with the contexts the docker CLI made in it.
struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn new() -> Store {
        Store {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// adde (and the docker CLI) with this store and `vars`.
    fn on(&self, vars: &[(&str, &str)]) -> On {
        let mut env = vec![("DOCKER_CONFIG", self.path())];
        env.extend_from_slice(vars);
        On::new(&env)
    }

    fn docker(&self, args: &[&str]) {
        self.on(&[]).docker(args);
    }

    /// `docker context create NAME --docker ENDPOINT` in this store.
    fn create_context(&self, name: &str, endpoint: &str) {
        self.docker(&["context", "create", name, "--docker", endpoint]);
    }
}

/// The core contract over `on`: ping names the context and its endpoint, and an environment
/// is created, runs code and is removed.
fn core_contract(on: &On, context: &str, host: &str) {
    let ping = on.ok("ping", json!({}));
    assert_eq!(ping["docker_context"], context, "{ping}");
    assert_eq!(ping["docker_host"], host, "{ping}");
    let env = on.env(json!({"image": BUSYBOX}));
    let log = on.ok(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "run.sh", "code_content": "echo over $0", "timeout_sec": 10}),
    )["log"]
        .clone();
    assert_eq!(log["exit_code"], 0, "{log}");
    assert!(
        log["stdout"].as_str().unwrap().starts_with("over "),
        "{log}"
    );
    let id = env.id.clone();
    drop(env);
    let gone = on.call(
        "execute_command",
        json!({"container_id": id, "command": "true"}),
    );
    assert_eq!(gone.json["error_code"], "container_not_found", "{gone:?}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn contexts_choose_the_engine_as_the_docker_cli_does() {
    let Some(vars) = second_engine("tls", &["ADDE_TEST_TLS_HOST", "ADDE_TEST_TLS_CERTS"]) else {
        return;
    };
    let (tls_host, certs) = (&vars[0].1, &vars[1].1);
    let store = Store::new();
    store.create_context(
        "adde-tls",
        &format!("host={tls_host},ca={certs}/ca.pem,cert={certs}/cert.pem,key={certs}/key.pem"),
    );
    let socket = "unix:///var/run/docker.sock";
    store.create_context("adde-socket", &format!("host={socket}"));

    // DOCKER_CONTEXT: TLS with the context's own certificates (no DOCKER_CERT_PATH).
    core_contract(
        &store.on(&[("DOCKER_CONTEXT", "adde-tls")]),
        "adde-tls",
        tls_host,
    );
    // `docker context use`: config.json's currentContext.
    store.docker(&["context", "use", "adde-socket"]);
    core_contract(&store.on(&[]), "adde-socket", socket);
    // DOCKER_CONTEXT beats config.json; DOCKER_HOST beats both and is the default context.
    let ping = store
        .on(&[("DOCKER_CONTEXT", "adde-tls")])
        .ok("ping", json!({}));
    assert_eq!(ping["docker_context"], "adde-tls", "{ping}");
    let on = store.on(&[("DOCKER_CONTEXT", "adde-tls"), ("DOCKER_HOST", socket)]);
    let ping = on.ok("ping", json!({}));
    assert_eq!(
        (&ping["docker_context"], &ping["docker_host"]),
        (&json!("default"), &json!(socket))
    );
    // `default` is the local socket.
    let ping = store
        .on(&[("DOCKER_CONTEXT", "default")])
        .ok("ping", json!({}));
    assert_eq!(ping["docker_host"], socket, "{ping}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_context_that_skips_verification_needs_no_ca() {
    let Some(vars) = second_engine("tls", &["ADDE_TEST_TLS_HOST", "ADDE_TEST_TLS_CERTS"]) else {
        return;
    };
    let (tls_host, certs) = (&vars[0].1, &vars[1].1);
    let store = Store::new();
    // The client's identity, and no CA: the server's certificate is taken unchecked.
    store.create_context(
        "adde-skip",
        &format!("host={tls_host},cert={certs}/cert.pem,key={certs}/key.pem,skip-tls-verify=true"),
    );
    let ping = store
        .on(&[("DOCKER_CONTEXT", "adde-skip")])
        .ok("ping", json!({}));
    assert_eq!(ping["ok"], true, "{ping}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_missing_or_broken_context_is_docker_unavailable_naming_it_and_its_file() {
    let Some(vars) = second_engine("tls", &["ADDE_TEST_TLS_HOST"]) else {
        return;
    };
    let store = Store::new();
    // Named by DOCKER_CONTEXT, and by config.json, but never created.
    std::fs::write(
        store.dir.path().join("config.json"),
        r#"{"currentContext": "adde-gone"}"#,
    )
    .unwrap();
    for vars in [vec![("DOCKER_CONTEXT", "adde-gone")], vec![]] {
        let err = store.on(&vars).err(
            "create_runtime_env",
            json!({"image": BUSYBOX}),
            "docker_unavailable",
        );
        let message = err["error"].as_str().unwrap();
        assert!(
            message.contains(r#"docker context "adde-gone""#),
            "{message}"
        );
        assert!(message.contains("meta.json does not exist"), "{message}");
    }
    // A context to a TLS port without TLS material says how to give it some.
    store.create_context("adde-plain", &format!("host={}", vars[0].1));
    let err =
        store
            .on(&[("DOCKER_CONTEXT", "adde-plain")])
            .err("ping", json!({}), "docker_unavailable");
    let message = err["error"].as_str().unwrap();
    assert!(
        message.contains("docker context update adde-plain"),
        "{message}"
    );
    // A meta.json that is not JSON.
    let meta = std::fs::read_dir(store.dir.path().join("contexts/meta"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("meta.json");
    std::fs::write(&meta, "{").unwrap();
    let err =
        store
            .on(&[("DOCKER_CONTEXT", "adde-plain")])
            .err("ping", json!({}), "docker_unavailable");
    let message = err["error"].as_str().unwrap();
    assert!(message.contains(&meta.display().to_string()), "{message}");
}
