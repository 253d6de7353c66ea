//! create_runtime_env and cleanup_env: what the engine really applied, and what is removed.

use serde_json::json;

use crate::common::{
    assert_only_idle, docker, docker_lines, docker_ok, inspect, processes, Adde, PackageIndex,
    Remove, BUSYBOX, PYTHON, SCRATCH,
};

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn environments_are_hardened_by_default_and_say_so() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let out = &env.json;
    assert_eq!(out["workspace"], "/workspace");
    assert_eq!(out["network"], "none");
    assert_eq!(out["security"]["cap_drop"], json!(["ALL"]));
    assert_eq!(out["limits"]["memory_bytes"], 512 << 20);

    let info = inspect(&env.id);
    let host = &info["HostConfig"];
    assert_eq!(host["NetworkMode"], "none");
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
    assert_eq!(host["Memory"], 512 << 20);
    assert_eq!(
        host["MemorySwap"], host["Memory"],
        "no swap beyond the memory limit"
    );
    assert_eq!(host["NanoCpus"], 500_000_000);
    assert_eq!(host["PidsLimit"], 256);
    assert_eq!(
        host["Init"], false,
        "adde's helper is PID 1, not Docker's init"
    );
    assert_eq!(out["security"]["init"], false);
    assert_eq!(info["Config"]["Labels"]["io.adde.managed"], "true");

    // The workspace is a named volume adde made and labelled, not a host folder.
    let mounts = info["Mounts"].as_array().unwrap();
    let workspace = mounts
        .iter()
        .find(|m| m["Destination"] == "/workspace")
        .expect("workspace mount");
    assert_eq!(workspace["Type"], "volume");
    let volume = workspace["Name"].as_str().unwrap();
    let labels = docker(&["volume", "inspect", "--format", "{{json .Labels}}", volume]);
    assert!(labels.contains("\"io.adde.managed\":\"true\""), "{labels}");

    // Inside: no capabilities, no new privileges, no network but loopback.
    let log = adde.exec(
        &env,
        "probe.sh",
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; ls /sys/class/net",
        10.0,
    );
    let stdout = log["stdout"].as_str().unwrap();
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| !l.starts_with("Cap") && !l.starts_with("NoNew"))
            .collect::<Vec<_>>(),
        vec!["lo"]
    );
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn limits_env_vars_and_network_can_be_set() {
    let adde = Adde::docker();
    let env = adde.env(json!({
        "image": BUSYBOX, "memory": "256m", "cpus": 1.5, "pids_limit": 64,
        "env_vars": {"GREETING": "hello there", "EMPTY": ""},
        "network": true, "port_bindings": {"3000": "0"}
    }));
    let host = &inspect(&env.id)["HostConfig"];
    assert_eq!(host["Memory"], 256 << 20);
    assert_eq!(host["NanoCpus"], 1_500_000_000i64);
    assert_eq!(host["PidsLimit"], 64);
    assert_eq!(host["NetworkMode"], "bridge");
    assert_eq!(host["PortBindings"]["3000/tcp"][0]["HostIp"], "127.0.0.1");
    assert_eq!(env.json["port_bindings"]["3000/tcp"], "127.0.0.1:0");
    let log = adde.exec(&env, "env.sh", "echo \"$GREETING\"", 10.0);
    assert_eq!(log["stdout"], "hello there\n");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn an_environment_works_on_an_image_without_a_shell() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": SCRATCH}));
    assert!(
        !docker_ok(&["exec", &env.id, "/bin/sh", "-c", "true"]),
        "the image should have no shell"
    );
    let out = adde.ok(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "data.txt", "code_content": "payload\n",
               "command": ["/busybox", "cat", "data.txt"]}),
    );
    assert_eq!(out["log"]["stdout"], "payload\n");
    assert_eq!(out["log"]["exit_code"], 0);

    // The timeout needs nothing from the image either.
    let out = adde.ok(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "x", "code_content": "",
               "command": ["/busybox", "sleep", "300"], "timeout_sec": 1}),
    );
    assert_eq!(out["log"]["timed_out"], true);
    assert_only_idle(&env.id);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn use_image_cmd_runs_the_images_own_command() {
    let adde = Adde::docker();
    let env = adde.env(json!({"image": SCRATCH, "use_image_cmd": true}));
    assert_eq!(env.json["use_image_cmd"], true);
    let mut procs = Vec::new();
    for _ in 0..50 {
        procs = processes(&env.id);
        if procs.iter().any(|p| p.contains("sleep 3600")) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        procs.iter().any(|p| p.contains("/busybox sleep 3600")),
        "{procs:?}"
    );
    assert!(
        !procs.iter().any(|p| p.contains("__helper idle")),
        "{procs:?}"
    );

    // Its own output is what get_container_logs returns while no code has run.
    let out = adde.ok("get_container_logs", json!({"container_id": env.id}));
    assert_eq!(out["container_output"]["stdout"], "server up\n", "{out}");
    assert_eq!(out["container_output"]["stderr"], "warming up\n", "{out}");

    // Code still runs in it.
    let out = adde.ok(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "f", "code_content": "",
        "command": ["/busybox", "echo", "beside the server"]}),
    );
    assert_eq!(out["log"]["stdout"], "beside the server\n");

    let err = adde.err(
        "create_runtime_env",
        json!({"image": BUSYBOX, "use_image_cmd": true}),
        "invalid_argument",
    );
    assert!(
        err["error"].as_str().unwrap().contains("no command"),
        "{err}"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn dependencies_install_from_a_local_index_while_the_code_stays_offline() {
    let adde = Adde::docker();
    let index = PackageIndex::start();
    let env = adde.env(
        json!({"image": PYTHON, "dependencies": ["adde-demo==1.0"], "pip_index_url": index.url}),
    );
    assert_eq!(
        env.json["dependencies"]["package_manager"], "pip",
        "{}",
        env.json
    );
    assert_eq!(env.json["network"], "none");
    let log = adde.exec(
        &env,
        "use_dep.py",
        "import adde_demo, os\nprint(adde_demo.GREETING)\nprint(sorted(os.listdir('/sys/class/net')))\n",
        30.0,
    );
    assert_eq!(log["stdout"], "hello from adde_demo\n['lo']\n", "{log}");
    // The installed packages cannot be changed by the code.
    let log = adde.exec(&env, "tamper.sh", "touch /opt/adde/deps/python/x", 10.0);
    assert_ne!(log["exit_code"], 0);
    assert!(
        log["stderr"].as_str().unwrap().contains("Read-only"),
        "{log}"
    );
    assert_eq!(inspect(&env.id)["HostConfig"]["NetworkMode"], "none");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_failed_install_carries_the_installers_output() {
    let adde = Adde::docker();
    let index = PackageIndex::start();
    let json = adde.err(
        "create_runtime_env",
        json!({"image": PYTHON, "dependencies": ["no-such-package-adde"], "pip_index_url": index.url}),
        "dependency_install_failed",
    );
    assert_eq!(json["package_manager"], "pip");
    let output = json["installer_output"].as_str().unwrap();
    assert!(output.contains("no-such-package-adde"), "{output}");
    assert_ne!(json["installer_exit_code"], 0);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn cleanup_removes_the_container_and_its_volumes_but_not_the_history() {
    let adde = Adde::docker();
    let env = adde.busybox();
    adde.exec(&env, "a.sh", "echo kept", 10.0);
    // Its own volumes; the helper's volume is shared by every environment and stays.
    let (helper, volumes): (Vec<String>, Vec<String>) = inspect(&env.id)["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .partition(|name| name.starts_with("adde-helper-"));
    assert_eq!(helper.len(), 1);
    assert!(!volumes.is_empty());
    let out = adde.ok("cleanup_env", json!({"container_id": env.id}));
    assert_eq!(out["ok"], true);
    assert_eq!(out["removed"], json!([env.id]));
    assert!(!docker_ok(&["inspect", &env.id]), "container still there");
    for volume in &volumes {
        assert!(
            !docker_ok(&["volume", "inspect", volume]),
            "volume {volume} still there"
        );
    }
    assert!(docker_ok(&["volume", "inspect", &helper[0]]));
    let out = adde.ok("get_container_logs", json!({"container_id": env.id}));
    assert_eq!(out["log"]["stdout"], "kept\n");
    let json = adde.err(
        "cleanup_env",
        json!({"container_id": env.id}),
        "container_not_found",
    );
    assert_eq!(json["ok"], false);
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn adde_refuses_containers_it_did_not_create() {
    let adde = Adde::docker();
    let name = format!("adde-test-foreign-{}", std::process::id());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        "io.adde.test-foreign=true",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let _foreign = Remove::container(&name);
    let json = adde.err("cleanup_env", json!({"container_id": name}), "not_managed");
    assert_eq!(json["ok"], false);
    adde.err(
        "execute_code_block",
        json!({"container_id": name, "filename": "a.sh", "code_content": "true"}),
        "not_managed",
    );
    adde.err(
        "get_container_logs",
        json!({"container_id": name}),
        "not_managed",
    );
    assert_eq!(
        docker_lines(&["ps", "-q", "--filter", &format!("name={name}")]).len(),
        1,
        "it must still run"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn npm_is_detected_from_what_the_image_has() {
    let adde = Adde::docker();
    let env = adde.env(
        json!({"image": crate::common::FAKE_NODE, "dependencies": ["left-pad", "is-odd@3"],
        "npm_registry": "https://registry.example.invalid/"}),
    );
    assert_eq!(
        env.json["dependencies"]["package_manager"], "npm",
        "{}",
        env.json
    );
    let out = adde.ok("execute_command", json!({"container_id": env.id,
        "command": "cat $NODE_PATH/left-pad/index.js $NODE_PATH/is-odd@3/index.js /opt/adde/deps/node/npm-call.txt"}));
    assert_eq!(
        out["log"]["stdout"],
        "module.exports = 'left-pad';\nmodule.exports = 'is-odd@3';\nregistry=https://registry.example.invalid/\n"
    );
    // A package manager the image lacks is an error, not a guess from the image's name.
    let json = adde.err(
        "create_runtime_env",
        json!({"image": crate::common::FAKE_NODE, "dependencies": ["x"], "package_manager": "pip"}),
        "no_package_manager",
    );
    assert!(json["error"].as_str().unwrap().contains("pip"), "{json}");
}
