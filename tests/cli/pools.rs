//! Warm pools: environments started ahead of time for a spec. A claim is atomic across
//! processes, a claimed environment is as fresh as a cold one, and what a pool cannot serve
//! is served cold with the reason.

use std::collections::HashSet;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{docker_lines, remove_env_resources, Adde, BUSYBOX};

/// Removes what a test's pool made: the pool's ready members and every claimed environment.
struct PoolGuard<'a> {
    adde: &'a Adde,
    pool: String,
    claimed: Vec<(String, String)>,
}

impl Drop for PoolGuard<'_> {
    fn drop(&mut self) {
        let _ = self
            .adde
            .call("pool_remove", json!({"pool": self.pool.clone()}));
        for (id, name) in &self.claimed {
            remove_env_resources(id, name);
        }
        // A refill may still be creating one: wait for it, then remove what is left.
        thread::sleep(Duration::from_secs(2));
        // Volumes know their environment by its name as a pool member.
        for volume in docker_lines(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            "label=io.adde.managed=true",
        ]) {
            let env = docker_lines(&[
                "volume",
                "inspect",
                "--format",
                "{{index .Labels \"io.adde.env\"}}",
                &volume,
            ]);
            if env
                .join("")
                .starts_with(&format!("adde-pool-{}-", self.pool))
            {
                let _ = docker_lines(&["volume", "rm", &volume]);
            }
        }
        let filter = format!("label=io.adde.pool={}", self.pool);
        for id in docker_lines(&["ps", "-aq", "--no-trunc", "--filter", &filter]) {
            let name = docker_lines(&["inspect", "--format", "{{.Name}}", &id])
                .join("")
                .trim_start_matches('/')
                .to_string();
            remove_env_resources(&id, &name);
        }
    }
}

fn spec() -> Value {
    json!({"image": BUSYBOX, "memory": "64m", "env_vars": {"POOLED": "yes"}})
}

fn ready(adde: &Adde, pool: &str) -> u64 {
    let list = adde.ok("pool_list", json!({}));
    list["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pool"] == pool)
        .map_or(0, |p| p["ready"].as_u64().unwrap())
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn racing_claims_each_get_a_different_fresh_environment_and_the_pool_refills() {
    let adde = Adde::docker();
    let created = adde.ok("pool_create", json!({"spec": spec(), "size": 16}));
    let mut guard = PoolGuard {
        adde: &adde,
        pool: created["pool"].as_str().unwrap().to_string(),
        claimed: Vec::new(),
    };
    assert_eq!(created["ready"], 16, "{created}");

    // 16 processes claim at once: 16 different environments, none twice.
    let outs: Vec<Value> = thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| adde.ok("create_runtime_env", spec())))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outs {
        guard.claimed.push((
            out["container_id"].as_str().unwrap().to_string(),
            out["name"].as_str().unwrap().to_string(),
        ));
    }
    let ids: HashSet<&str> = outs
        .iter()
        .map(|o| o["container_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 16, "every claim got its own environment");
    let hits = outs.iter().filter(|o| o["pool"]["result"] == "hit").count();
    assert!(hits >= 14, "most claims are served warm: {hits}");

    // A claimed environment is as a cold one: its own empty workspace, the spec applied,
    // an ordinary name, and it works.
    let first = &outs[0];
    assert!(first["name"].as_str().unwrap().starts_with("adde-"));
    assert!(!first["name"].as_str().unwrap().starts_with("adde-pool-"));
    assert_eq!(first["limits"]["memory"], "64m");
    let env = crate::common::Env {
        id: first["container_id"].as_str().unwrap().to_string(),
        name: first["name"].as_str().unwrap().to_string(),
        json: first.clone(),
    };
    let log = adde.exec(
        &env,
        "a.sh",
        "ls -A /workspace | grep -v a.sh; echo $POOLED",
        10.0,
    );
    assert_eq!(log["stdout"], "yes\n");
    std::mem::forget(env); // the guard removes it
                           // Cleaning one up removes its own volumes, though it was renamed when claimed.
    let cleaned = adde.ok(
        "cleanup_env",
        json!({"container_id": first["container_id"]}),
    );
    // Its workspace and its dependency folder.
    assert_eq!(
        cleaned["volumes_removed"].as_array().unwrap().len(),
        2,
        "{cleaned}"
    );
    // Claimed environments are listed; ready ones are not anyone's yet.
    let listed = adde.ok("list_runtime_envs", json!({}));
    assert!(listed["environments"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| !e["name"].as_str().unwrap().starts_with("adde-pool-")));

    // The pool refills in the background, up to its size and no further.
    let deadline = Instant::now() + Duration::from_secs(240);
    while ready(&adde, &guard.pool) < 16 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(ready(&adde, &guard.pool), 16);
    thread::sleep(Duration::from_secs(2));
    assert_eq!(ready(&adde, &guard.pool), 16, "never past its size");
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn what_a_pool_cannot_serve_is_served_cold_with_the_reason() {
    let adde = Adde::docker();
    let created = adde.ok("pool_create", json!({"spec": spec(), "size": 1}));
    let mut guard = PoolGuard {
        adde: &adde,
        pool: created["pool"].as_str().unwrap().to_string(),
        claimed: Vec::new(),
    };
    let mut cold = |payload: Value, reason: &str| {
        let out = adde.ok("create_runtime_env", payload);
        guard.claimed.push((
            out["container_id"].as_str().unwrap().to_string(),
            out["name"].as_str().unwrap().to_string(),
        ));
        assert_eq!(out["pool"]["result"], "miss", "{out}");
        assert!(
            out["pool"]["reason"].as_str().unwrap().contains(reason),
            "{out}"
        );
    };
    cold(
        json!({"image": BUSYBOX, "memory": "128m"}),
        "no pool has this spec",
    );
    let mut labelled = spec();
    labelled["labels"] = json!({"team": "x"});
    cold(labelled, "labels");
    let mut with_ttl = spec();
    with_ttl["ttl_sec"] = json!(600);
    cold(with_ttl, "ttl_sec");
    // A pool cannot be declared for what it could never serve.
    let mut session = spec();
    session["session"] = json!("s");
    adde.err(
        "pool_create",
        json!({"spec": session, "size": 1}),
        "invalid_argument",
    );
    adde.err(
        "pool_create",
        json!({"spec": spec(), "size": 0}),
        "invalid_argument",
    );
}

#[test]
#[ignore = "needs the Docker engine: tests/run.sh runs it (cargo test -- --include-ignored)"]
fn a_pool_is_its_own_state_directory_s_even_with_the_same_spec() {
    // Two adde users of one engine (two state directories) declare the same spec. Before pool
    // ids named the owner and the state directory, they shared one id: removing one's pool
    // removed the other's members, and one's claims took the other's environments.
    let spec = json!({"image": BUSYBOX, "memory": "64m", "env_vars": {"POOL_OWNER_TEST": "1"}});
    let (alice, bob) = (Adde::docker(), Adde::docker());
    let made = alice.ok("pool_create", json!({"spec": spec, "size": 1}));
    let _alice_pool = PoolGuard {
        adde: &alice,
        pool: made["pool"].as_str().unwrap().to_string(),
        claimed: Vec::new(),
    };
    let theirs = bob.ok("pool_create", json!({"spec": spec, "size": 1}));
    let mut bob_pool = PoolGuard {
        adde: &bob,
        pool: theirs["pool"].as_str().unwrap().to_string(),
        claimed: Vec::new(),
    };
    assert_ne!(made["pool"], theirs["pool"], "{made} {theirs}");
    let claimed = bob.ok("create_runtime_env", spec.clone());
    bob_pool.claimed.push((
        claimed["container_id"].as_str().unwrap().to_string(),
        claimed["name"].as_str().unwrap().to_string(),
    ));
    assert_eq!(claimed["pool"]["pool"], theirs["pool"], "{claimed}");
    bob.ok("pool_remove", json!({"pool": theirs["pool"]}));
    assert_eq!(
        ready(&alice, made["pool"].as_str().unwrap()),
        1,
        "alice's member is still ready"
    );
}
