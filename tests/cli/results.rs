//! What a result tells the model reading it: why a run stopped, what could not run, and the
//! file a path really names.

use serde_json::json;

use crate::common::{Adde, BUSYBOX};

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn stderr_says_when_adde_or_the_kernel_stopped_the_run() {
    let adde = Adde::docker();
    // Room for adde's own processes (a 26 MB debug binary in tests) beside the hog, so the
    // OOM killer picks the hog: at 32 MiB it sometimes picked the agent, and the environment
    // died (environment_died, which integrity.rs tests on purpose).
    let env = adde.env(json!({"image": BUSYBOX, "memory": "64m"}));
    let log = adde.exec(
        &env,
        "loop.sh",
        "echo started >&2; while :; do :; done",
        1.0,
    );
    assert_eq!(log["timed_out"], true);
    let stderr = log["stderr"].as_str().unwrap();
    assert!(stderr.starts_with("started\n"), "{stderr}");
    assert!(
        stderr.contains("[adde: killed after the 1 s timeout"),
        "{stderr}"
    );

    let log = adde.exec(&env, "oom.sh", "head -c 400000000 /dev/zero | tail", 30.0);
    assert_eq!(log["oom_killed"], true, "{log}");
    let stderr = log["stderr"].as_str().unwrap();
    assert!(stderr.contains("memory limit"), "{stderr}");

    let log = adde.exec(&env, "fine.sh", "echo fine >&2", 10.0);
    assert_eq!(
        log["stderr"], "fine\n",
        "a run that ended by itself gets no note"
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_file_with_no_interpreter_and_no_shebang_is_refused_not_run_as_a_script() {
    let adde = Adde::docker();
    let env = adde.busybox();
    let out = adde.err(
        "execute_code_block",
        json!({"container_id": env.id, "filename": "notes.txt", "code_content": "echo pwned > /workspace/x"}),
        "invalid_argument",
    );
    assert_eq!(out["field"], "filename");
    let out = adde.call(
        "read_file",
        json!({"container_id": env.id, "path": "/workspace/x"}),
    );
    assert_eq!(out.json["error_code"], "file_not_found", "nothing ran");
    let log = adde.exec(&env, "tool", "#!/bin/sh\necho via shebang", 10.0);
    assert_eq!(log["stdout"], "via shebang\n");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn read_file_of_a_symlink_returns_the_file_it_names() {
    let adde = Adde::docker();
    let env = adde.busybox();
    adde.exec(
        &env,
        "links.sh",
        "mkdir -p d && echo target-text > d/real.txt && ln -s d/real.txt rel && ln -s /workspace/rel abs && ln -s loop1 loop2 && ln -s loop2 loop1",
        10.0,
    );
    for path in ["rel", "abs", "/workspace/d/real.txt"] {
        let out = adde.ok("read_file", json!({"container_id": env.id, "path": path}));
        assert_eq!(out["content"], "target-text\n", "{path}");
    }
    // A loop ends in an error (the engine's own, or adde's after 40 links), never a hang.
    let out = adde.call(
        "read_file",
        json!({"container_id": env.id, "path": "loop1"}),
    );
    assert_eq!(out.code, 1, "{out:?}");
}
