//! A remote engine over SSH (DOCKER_HOST=ssh://user@host:port): sshd on loopback, whose
//! `docker system dial-stdio` reaches the local engine.

use serde_json::json;

use crate::common::BUSYBOX;
use crate::{second_engine, On};

fn ssh() -> Option<(On, String)> {
    let vars = second_engine("ssh", &["ADDE_TEST_SSH_HOST", "ADDE_TEST_SSH_CONFIG"])?;
    let on = On::new(&[("DOCKER_HOST", &vars[0].1), ("ADDE_SSH_CONFIG", &vars[1].1)]);
    Some((on, vars[1].1.clone()))
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn the_whole_flow_works_over_ssh_on_a_port_of_its_own() {
    let Some((on, _)) = ssh() else { return };
    let env = on.env(json!({"image": BUSYBOX}));
    on.ok(
        "write_file",
        json!({"container_id": env.id, "path": "notes.txt", "content": "over ssh\n"}),
    );
    let log = on.exec(&env, "cat notes.txt; sleep 30", 2.0);
    assert_eq!(log["stdout"], "over ssh\n", "{log}");
    assert_eq!(log["timed_out"], true, "{log}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_refused_login_is_docker_unavailable_with_ssh_s_reason() {
    let Some((_, config)) = ssh() else { return };
    // sshd knows no key for this user.
    let on = On::new(&[
        ("DOCKER_HOST", "ssh://nobody@127.0.0.1:2222"),
        ("ADDE_SSH_CONFIG", &config),
    ]);
    let err = on.err("ping", json!({}), "docker_unavailable");
    let message = err["error"].as_str().unwrap();
    assert!(message.contains("Permission denied"), "{message}");
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn an_ssh_host_that_looks_like_an_option_is_refused() {
    let Some((_, config)) = ssh() else { return };
    // ssh would read it as an option that runs a command.
    let on = On::new(&[
        ("DOCKER_HOST", "ssh://-oProxyCommand=sh"),
        ("ADDE_SSH_CONFIG", &config),
    ]);
    let err = on.err("ping", json!({}), "docker_unavailable");
    let message = err["error"].as_str().unwrap();
    assert!(message.contains("is not [user@]host[:port]"), "{message}");
}
