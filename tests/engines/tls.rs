//! A remote engine over TLS (DOCKER_HOST=tcp://…, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH): a
//! TLS endpoint with client-certificate verification in front of the local engine, and the
//! keeper that makes connections ahead of the CLI calls that use them.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::{assert_error, BUSYBOX};
use crate::{keeper_folder, keeper_sockets, keepers, second_engine, wait_until, KeeperTmp, On};

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

/// A TLS endpoint of the test's own in front of the local engine (socat, as
/// tests/engines/setup.sh starts it, with its certificates), in a process group of its own.
struct OwnEndpoint {
    listener: std::process::Child,
    host: String,
}

impl OwnEndpoint {
    fn start(certs: &Path) -> OwnEndpoint {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tls = certs.parent().unwrap();
        let listen = format!(
            "openssl-listen:{port},bind=127.0.0.1,reuseaddr,fork,nodelay,cert={0}/server.pem,key={0}/server-key.pem,cafile={0}/ca.pem,verify=1",
            tls.display()
        );
        let listener = Command::new("socat")
            .args([&listen, "unix-connect:/var/run/docker.sock"])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat");
        wait_until("the endpoint listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        OwnEndpoint {
            listener,
            host: format!("tcp://127.0.0.1:{port}"),
        }
    }

    /// No new connection from now on; those made go on.
    fn stop_listening(&mut self) {
        self.listener.kill().unwrap();
        self.listener.wait().unwrap();
    }
}

impl Drop for OwnEndpoint {
    fn drop(&mut self) {
        // SAFETY: the endpoint's own process group: the listener and one process per
        // connection.
        unsafe { libc::kill(-(self.listener.id() as i32), libc::SIGKILL) };
        let _ = self.listener.wait();
    }
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_call_over_tls_uses_a_connection_the_keeper_made_before_it() {
    let Some(vars) = second_engine("tls", &["ADDE_TEST_TLS_CERTS"]) else {
        return;
    };
    let certs = PathBuf::from(&vars[0].1);
    let tmp = KeeperTmp::default();
    let mut endpoint = OwnEndpoint::start(&certs);
    let over_tls = |persist: &str| {
        let own = [
            ("DOCKER_HOST", endpoint.host.as_str()),
            ("ADDE_CONNECTION_PERSIST", persist),
        ];
        kept_over_tls(tmp.path(), &own).unwrap()
    };
    let (kept, alone) = (over_tls("30"), over_tls("off"));
    // Made and removed on the local socket: the same engine, and none of this test's TLS.
    let local = On::new(&[]);
    let env = local.env(json!({"image": BUSYBOX}));

    // The first call connects on its own and starts the keeper, which makes connections ahead.
    tmp.start_keeper(&kept);
    wait_until("the keeper has made its connections", || {
        socat_connections(&endpoint) >= 2
    });
    endpoint.stop_listening();
    // Control: no connection can be made now.
    let err = alone.err("ping", json!({}), "docker_unavailable");
    assert!(err["error"].as_str().unwrap().contains("refused"), "{err}");

    let log = kept.exec(&env, "echo kept", 10.0);
    assert_eq!(log["stdout"], "kept\n", "{log}");

    // Its successor cannot be made: the keeper leaves, and calls fail as they would alone.
    wait_until("the keeper has left", || {
        keeper_sockets(tmp.path()).is_empty() && keepers(tmp.path()).is_empty()
    });
    let err = kept.err("ping", json!({}), "docker_unavailable");
    assert!(err["error"].as_str().unwrap().contains("refused"), "{err}");
}

/// How many connections the endpoint serves (socat forks a process for each).
fn socat_connections(endpoint: &OwnEndpoint) -> usize {
    let children = format!("/proc/{0}/task/{0}/children", endpoint.listener.id());
    std::fs::read_to_string(children)
        .unwrap_or_default()
        .split_whitespace()
        .count()
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn the_keeper_answers_in_a_private_folder_and_leaves_when_unused() {
    if second_engine("tls", &["ADDE_TEST_TLS_HOST", "ADDE_TEST_TLS_CERTS"]).is_none() {
        return;
    }
    let on = |tmp: &Path, persist: &str| {
        kept_over_tls(tmp, &[("ADDE_CONNECTION_PERSIST", persist)]).unwrap()
    };

    let tmp = KeeperTmp::default();
    let brief = on(tmp.path(), "1");
    tmp.start_keeper(&brief);
    let folder = std::fs::symlink_metadata(keeper_folder(tmp.path())).unwrap();
    assert!(folder.is_dir());
    assert_eq!(folder.mode() & 0o777, 0o700, "only this user may enter");
    assert_eq!(folder.uid(), unsafe { libc::getuid() });
    assert_eq!(keepers(tmp.path()).len(), 1);
    assert_eq!(brief.ok("ping", json!({}))["ok"], true);
    // ADDE_CONNECTION_PERSIST=1: a second after the last call, it is gone.
    wait_until("the keeper has left", || {
        keeper_sockets(tmp.path()).is_empty() && keepers(tmp.path()).is_empty()
    });

    // Not kept: no keeper.
    let off = KeeperTmp::default();
    assert_eq!(on(off.path(), "off").ok("ping", json!({}))["ok"], true);
    std::thread::sleep(Duration::from_millis(500));
    assert!(keeper_sockets(off.path()).is_empty() && keepers(off.path()).is_empty());

    // A folder someone else prepared (here a link to one anyone may write): not used, and
    // calls work on their own connections.
    let planted = KeeperTmp::default();
    let open = planted.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&open, keeper_folder(planted.path())).unwrap();
    assert_eq!(on(planted.path(), "30").ok("ping", json!({}))["ok"], true);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
    assert!(keepers(planted.path()).is_empty());

    // ssh's ControlPersist takes no more than a C int of seconds.
    for value in ["soon", "2147483648"] {
        let err = on(tmp.path(), value).err("ping", json!({}), "docker_unavailable");
        let message = err["error"].as_str().unwrap();
        let named = format!("ADDE_CONNECTION_PERSIST={value:?}");
        assert!(message.contains(&named), "{message}");
    }
}

/// adde over the shared TLS endpoint with TMPDIR=`tmp`, and `extra` variables (which win).
fn kept_over_tls(tmp: &Path, extra: &[(&str, &str)]) -> Option<On> {
    let vars = second_engine("tls", &["ADDE_TEST_TLS_HOST", "ADDE_TEST_TLS_CERTS"])?;
    let mut env = vec![
        ("DOCKER_HOST", vars[0].1.as_str()),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", vars[1].1.as_str()),
        ("TMPDIR", tmp.to_str().unwrap()),
    ];
    env.retain(|(key, _)| !extra.iter().any(|(k, _)| k == key));
    env.extend_from_slice(extra);
    Some(On::new(&env))
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_socket_another_user_listens_on_gets_no_call() {
    // An attack on a TMPDIR others can write: the keeper's folder swapped, between the check
    // and the connect, for one where another user listens under the keeper's name.
    let tmp = KeeperTmp::default();
    let Some(on) = kept_over_tls(tmp.path(), &[]) else {
        return;
    };
    tmp.start_keeper(&on);
    let socket = keeper_sockets(tmp.path()).remove(0);
    tmp.signal_keepers(libc::SIGKILL);
    wait_until("the keeper has gone", || keepers(tmp.path()).is_empty());

    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (planted, heard) = (open.join("evil.sock"), open.join("heard"));
    let listener = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(16)
open(sys.argv[1] + ".ready", "w").close()
while True:
    c, _ = s.accept(); c.sendall(b"\x02\x01")
    with open(sys.argv[2], "ab") as f: f.write(c.recv(65536) or b"<eof>")
    c.close()
"#;
    let mut nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            listener,
        ])
        .current_dir("/")
        .arg(&planted)
        .arg(&heard)
        .process_group(0)
        .spawn()
        .expect("setpriv");
    wait_until("the other user listens", || {
        open.join("evil.sock.ready").exists()
    });
    std::fs::rename(&planted, &socket).unwrap();

    let out = on.call("ping", json!({}));
    let _ = nobody.kill();
    let _ = nobody.wait();
    assert_eq!(out.code, 0, "{out:?}");
    let heard = std::fs::read(&heard).unwrap_or_default();
    assert!(
        heard.is_empty(),
        "the other user got: {}",
        String::from_utf8_lossy(&heard)
    );
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn without_a_ca_pem_each_call_s_own_system_roots_verify_the_server() {
    let Some(vars) = second_engine("tls", &["ADDE_TEST_TLS_CERTS"]) else {
        return;
    };
    let certs = PathBuf::from(&vars[0].1);
    let tmp = KeeperTmp::default();
    let no_ca = tmp.path().join("no-ca");
    std::fs::create_dir(&no_ca).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(certs.join(file), no_ca.join(file)).unwrap();
    }
    let (no_ca, ca) = (no_ca.to_str().unwrap(), certs.join("ca.pem"));
    // The test's CA as the system's roots: trusted, and a keeper starts.
    let trusting = [
        ("DOCKER_CERT_PATH", no_ca),
        ("SSL_CERT_FILE", ca.to_str().unwrap()),
    ];
    tmp.start_keeper(&kept_over_tls(tmp.path(), &trusting).unwrap());
    // The machine's own roots do not know that CA: the keeper made with the other roots is
    // not this call's.
    let own_roots = kept_over_tls(tmp.path(), &[("DOCKER_CERT_PATH", no_ca)]).unwrap();
    let err = own_roots.err("ping", json!({}), "docker_unavailable");
    assert!(
        err["error"].as_str().unwrap().contains("certificate"),
        "{err}"
    );
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn a_keeper_that_does_not_answer_is_set_aside() {
    let tmp = KeeperTmp::default();
    let Some(on) = kept_over_tls(tmp.path(), &[]) else {
        return;
    };
    tmp.start_keeper(&on);
    // Killed at the end, stopped as it is.
    tmp.signal_keepers(libc::SIGSTOP);
    assert_eq!(on.ok("ping", json!({}))["ok"], true);
    // Its socket is gone: later calls neither wait for it nor ask it.
    assert!(keeper_sockets(tmp.path()).is_empty());
    assert_eq!(on.ok("ping", json!({}))["ok"], true);
}

#[test]
#[ignore = "needs the Docker engine and tests/engines/setup.sh"]
fn the_keeper_keeps_none_of_the_caller_s_open_files() {
    // A caller given a pipe (`adde … 3>&1 | wc`, a test harness's descriptor) would have its
    // reader wait for the keeper to leave.
    let tmp = KeeperTmp::default();
    let Some(on) = kept_over_tls(tmp.path(), &[]) else {
        return;
    };
    let marker = tmp.path().join("marker");
    let file = std::fs::File::create(&marker).unwrap();
    let fd = file.as_raw_fd();
    let mut cmd = on.command();
    // SAFETY: dup2 is async-signal-safe; fd 7 is left open across exec, as a shell's
    // redirection leaves it.
    unsafe {
        cmd.pre_exec(move || {
            libc::dup2(fd, 7);
            Ok(())
        });
    }
    let out = cmd.args(["ping", "{}"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    tmp.wait_for_keeper();
    let keeper = keepers(tmp.path())[0];
    let held: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{keeper}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect();
    assert!(!held.contains(&marker), "the keeper holds {held:?}");
}
