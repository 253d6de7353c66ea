//! A remote engine over SSH (DOCKER_HOST=ssh://user@host:port): sshd on loopback, whose
//! `docker system dial-stdio` reaches the local engine, and the keeper that starts those
//! ahead of the CLI calls that use them.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::common::BUSYBOX;
use crate::{keepers, second_engine, KeeperTmp, On};

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
    let tmp = KeeperTmp::default();
    // sshd knows no key for this user. Calls back to back: a keeper never lends them a
    // connection whose ssh is about to fail (it said "SendRequest" instead of ssh's reason).
    let on = On::new(&[
        ("DOCKER_HOST", "ssh://nobody@127.0.0.1:2222"),
        ("ADDE_SSH_CONFIG", &config),
        ("TMPDIR", tmp.path().to_str().unwrap()),
    ]);
    for _ in 0..6 {
        let err = on.err("ping", json!({}), "docker_unavailable");
        let message = err["error"].as_str().unwrap();
        assert!(message.contains("Permission denied"), "{message}");
    }
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_relative_ssh_config_is_the_caller_s_own_and_a_long_tmpdir_works() {
    let Some((_, config)) = ssh() else { return };
    let host = std::env::var("ADDE_TEST_SSH_HOST").unwrap();
    let tmp = KeeperTmp::default();
    // The right configuration in one folder; in another, one that leads nowhere (port 1).
    let (right, wrong) = (tmp.path().join("right"), tmp.path().join("wrong"));
    std::fs::create_dir(&right).unwrap();
    std::fs::create_dir(&wrong).unwrap();
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(right.join("config"), format!("{base}  Port 2222\n")).unwrap();
    std::fs::write(wrong.join("config"), format!("{base}  Port 1\n")).unwrap();
    // No port in the address: each configuration gives its own.
    let on = On::new(&[
        ("DOCKER_HOST", host.trim_end_matches(":2222")),
        ("ADDE_SSH_CONFIG", "config"),
        ("TMPDIR", tmp.path().to_str().unwrap()),
    ]);
    let ping = |folder: &std::path::Path| {
        let output = on
            .command()
            .current_dir(folder)
            .args(["ping", "{}"])
            .output();
        crate::common::parse_output(output.unwrap())
    };
    let out = ping(&right);
    assert_eq!(out.code, 0, "{out:?}");
    tmp.wait_for_keeper();
    // The keeper started in `right` is not the one for `wrong`'s configuration.
    crate::common::assert_error(&ping(&wrong), "docker_unavailable");

    // ssh's control socket would not fit under a long TMPDIR: no master, but it works.
    let long = tmp.path().join("L".repeat(60));
    std::fs::create_dir(&long).unwrap();
    let (_, config_path) = ssh().unwrap();
    let on = On::new(&[
        ("DOCKER_HOST", &host),
        ("ADDE_SSH_CONFIG", &config_path),
        ("TMPDIR", long.to_str().unwrap()),
    ]);
    assert_eq!(on.ok("ping", json!({}))["ok"], true);
    for pid in keepers(&long) {
        // SAFETY: a keeper this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
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

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_call_over_ssh_uses_a_connection_the_keeper_made_before_it() {
    let Some(vars) = second_engine("ssh", &["ADDE_TEST_SSH_HOST", "ADDE_TEST_SSH_CONFIG"]) else {
        return;
    };
    let tmp = KeeperTmp::default();
    // An `ssh` that cannot connect, first on PATH for the calls that must not run their own.
    let broken = tempfile::tempdir().unwrap();
    let fake = broken.path().join("ssh");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'ssh: broken on purpose' >&2\nexit 255\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var("PATH").unwrap();
    let broken_path = format!("{}:{path}", broken.path().display());
    let tmpdir = tmp.path().to_str().unwrap();
    let on = |path: &str, persist: &str| {
        On::new(&[
            ("DOCKER_HOST", &vars[0].1),
            ("ADDE_SSH_CONFIG", &vars[1].1),
            ("TMPDIR", tmpdir),
            ("ADDE_CONNECTION_PERSIST", persist),
            ("PATH", path),
        ])
    };
    // Made and removed on the local socket: the same engine.
    let local = On::new(&[]);
    let env = local.env(json!({"image": BUSYBOX}));
    // Control: a call on its own connections cannot reach the engine with that ssh.
    on(&broken_path, "off").err("ping", json!({}), "docker_unavailable");

    // The first call connects on its own and starts the keeper, which starts ssh ahead.
    tmp.start_keeper(&on(&path, "30"));
    let log = on(&broken_path, "30").exec(&env, "echo kept", 10.0);
    assert_eq!(log["stdout"], "kept\n", "{log}");
    assert_eq!(keepers(tmp.path()).len(), 1);
}
