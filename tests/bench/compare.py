#!/usr/bin/env python3
"""Benchmark adde against the docker CLI, side by side in one run (not a test).

Prints the median wall time of each operation and adde's ratio to the docker CLI doing the
same job on the same engine, measured in the same run, so the figures compare across machines.

    python3 tests/bench/compare.py [--runs N] [--adde PATH] [--only remote|python]

Needs the test images (bash tests/images/build.sh) and a release build of adde. With the
TLS and SSH endpoints of tests/engines/setup.sh exported (eval "$(bash tests/engines/setup.sh)"),
it also compares execute over each of them with `docker exec` over the same transport.
"""
import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BUSYBOX = "adde-test/busybox:1"
PYTHON = "adde-test/python:3"


def timed(argv, **kwargs):
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def median_ms(samples):
    return statistics.median(samples) * 1000


def adde_call(adde, tool, payload):
    out = subprocess.run([adde, tool, json.dumps(payload)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


@contextlib.contextmanager
def side_by_side(adde, image):
    """An adde environment and a plain `docker run -d` container of `image`, removed at the
    end; yields (environment id, container id)."""
    cid = adde_call(adde, "create_runtime_env", {"image": image})["container_id"]
    plain = subprocess.run(
        ["docker", "run", "-d", "--network", "none", image, "sleep", "3600"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    try:
        yield cid, plain
    finally:
        adde_call(adde, "cleanup_env", {"container_id": cid})
        subprocess.run(["docker", "rm", "-f", plain], check=True, stdout=subprocess.DEVNULL)


EXEC_PATH = {**os.environ, "ADDE_AGENT": "off"}
COLD_PYTHON = {**os.environ, "ADDE_WARM_PYTHON": "off"}


def bench_exec(adde, runs, warmup):
    with side_by_side(adde, BUSYBOX) as (cid, plain):
        payload = json.dumps({"container_id": cid, "filename": "a.sh", "code_content": "echo 42"})
        with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
            f.write("echo 42\n")
            script = f.name
        cases = {
            "adde execute_code_block": [adde, "execute_code_block", payload],
            "adde, the earlier exec path": ([adde, "execute_code_block", payload], EXEC_PATH),
            "docker exec sh -c 'echo 42'": ["docker", "exec", plain, "sh", "-c", "echo 42"],
        }
        samples = {name: [] for name in cases}
        samples["docker cp + docker exec"] = []
        for i in range(warmup + runs):
            # Interleaved, so drift on the machine hits every case alike.
            for name, argv in cases.items():
                argv, env = argv if isinstance(argv, tuple) else (argv, None)
                t = timed(argv, env=env)
                if i >= warmup:
                    samples[name].append(t)
            t = timed(["docker", "cp", script, f"{plain}:/a.sh"]) + timed(["docker", "exec", plain, "sh", "/a.sh"])
            if i >= warmup:
                samples["docker cp + docker exec"].append(t)
        os.unlink(script)
        return samples


def bench_python(adde, runs, warmup):
    """print(6*7) in a Python environment: adde runs a file, docker exec runs python3 -c."""
    with side_by_side(adde, PYTHON) as (cid, plain):
        payload = json.dumps({"container_id": cid, "filename": "main.py", "code_content": "print(6*7)"})
        cases = {
            "adde execute_code_block (warm)": ([adde, "execute_code_block", payload], None),
            "adde, cold (ADDE_WARM_PYTHON=off)": ([adde, "execute_code_block", payload], COLD_PYTHON),
            "adde, the earlier exec path": ([adde, "execute_code_block", payload], EXEC_PATH),
            "docker exec python3 -c": (["docker", "exec", plain, "python3", "-c", "print(6*7)"], None),
        }
        return interleaved(cases, runs, warmup)


def remote_transports(wrappers):
    """The TLS and SSH endpoints tests/engines/setup.sh exported, as environments for adde and
    for the docker CLI (which runs `ssh` from PATH: a wrapper in `wrappers` gives it the
    test's ssh config)."""
    found = {}
    tls_host, tls_certs = os.environ.get("ADDE_TEST_TLS_HOST"), os.environ.get("ADDE_TEST_TLS_CERTS")
    if tls_host and tls_certs:
        tls = {"DOCKER_HOST": tls_host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": tls_certs}
        found["TLS"] = ({**os.environ, **tls}, {**os.environ, **tls})
    ssh_host, ssh_config = os.environ.get("ADDE_TEST_SSH_HOST"), os.environ.get("ADDE_TEST_SSH_CONFIG")
    if ssh_host and ssh_config:
        with open(os.path.join(wrappers, "ssh"), "w") as f:
            f.write(f'#!/bin/sh\nexec /usr/bin/ssh -F {ssh_config} "$@"\n')
        os.chmod(os.path.join(wrappers, "ssh"), 0o755)
        adde_env = {**os.environ, "DOCKER_HOST": ssh_host, "ADDE_SSH_CONFIG": ssh_config}
        docker_env = {**os.environ, "DOCKER_HOST": ssh_host, "PATH": f"{wrappers}:{os.environ['PATH']}"}
        found["SSH"] = (adde_env, docker_env)
    return found


def bench_remote(adde, runs, warmup):
    """execute (echo 42) through adde and through `docker exec`, over the unix socket and over
    each remote transport to the same engine. Returns {transport: samples}."""
    results = {}
    with side_by_side(adde, BUSYBOX) as (cid, plain), \
            tempfile.TemporaryDirectory(prefix="adde-bench-ssh-") as wrappers:
        payload = json.dumps({"container_id": cid, "command": "echo 42"})
        docker_exec = ["docker", "exec", plain, "sh", "-c", "echo 42"]
        for transport, (adde_env, docker_env) in remote_transports(wrappers).items():
            cases = {
                "adde execute_command, unix socket": ([adde, "execute_command", payload], None),
                f"adde execute_command, {transport}": ([adde, "execute_command", payload], adde_env),
                "docker exec, unix socket": (docker_exec, None),
                f"docker exec, {transport}": (docker_exec, docker_env),
            }
            results[transport] = interleaved(cases, runs, warmup)
            # The same calls each right after the last, as a script's loop makes them: a TLS
            # keeper (src/engine/tls_keeper.rs) makes each call's successor connection while
            # the next call runs, where the interleaved rows above give it the docker calls'
            # time. Blocks, not interleaved, so that work lands on its own transport.
            back_to_back = {}
            for name, env in (("adde execute_command, unix socket", None),
                              (f"adde execute_command, {transport}", adde_env)):
                block = [timed([adde, "execute_command", payload], env=env) for _ in range(warmup + runs)]
                back_to_back[name] = block[warmup:]
            results[f"{transport}, calls back to back"] = back_to_back
            # One long-lived adde keeps its connection: what a call costs once it is open.
            with adde_serve(adde) as local, adde_serve(adde, adde_env) as remote:
                clients = {"adde serve, unix socket": ServeClient(local),
                           f"adde serve, {transport}": ServeClient(remote)}
                args = {"container_id": cid, "command": "echo 42"}
                samples = {name: [] for name in clients}
                for i in range(warmup + runs):
                    for name, client in clients.items():
                        begin = time.perf_counter()
                        client.call("execute_command", args)
                        if i >= warmup:
                            samples[name].append(time.perf_counter() - begin)
                results[f"{transport}, through adde serve"] = samples
    return results


def interleaved(cases, runs, warmup):
    samples = {name: [] for name in cases}
    for i in range(warmup + runs):
        for name, (argv, env) in cases.items():
            t = timed(argv, env=env)
            if i >= warmup:
                samples[name].append(t)
    return samples


def bench_throughput(adde, calls_per_caller=10, envs=8, callers=16):
    """Executions per second on one engine: `callers` concurrent callers over `envs`
    environments, through adde, and through `docker exec` (the Engine-API exec ceiling)."""
    ours = [adde_call(adde, "create_runtime_env", {"image": BUSYBOX})["container_id"] for _ in range(envs)]
    plain = [
        subprocess.run(["docker", "run", "-d", "--network", "none", BUSYBOX, "sleep", "3600"],
                       check=True, capture_output=True, text=True).stdout.strip()
        for _ in range(envs)
    ]
    def adde_job(k):
        payload = json.dumps({"container_id": ours[k % envs], "command": "echo 42"})
        for _ in range(calls_per_caller):
            subprocess.run([adde, "execute_command", payload], check=True, stdout=subprocess.DEVNULL)
    def docker_job(k):
        for _ in range(calls_per_caller):
            subprocess.run(["docker", "exec", plain[k % envs], "sh", "-c", "echo 42"], check=True,
                           stdout=subprocess.DEVNULL)
    rates = {}
    try:
        for name, job in (("adde execute_command", adde_job), ("docker exec (Engine-API exec)", docker_job)):
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(callers) as pool:
                list(pool.map(job, range(callers)))
            rates[name] = callers * calls_per_caller / (time.perf_counter() - start)
    finally:
        for cid in ours:
            adde_call(adde, "cleanup_env", {"container_id": cid})
        subprocess.run(["docker", "rm", "-f", *plain], check=True, stdout=subprocess.DEVNULL)
    return rates


class ServeClient:
    """One connection to `adde serve`'s socket: a JSON request per line, a JSON answer per line."""

    def __init__(self, path):
        import socket
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")

    def call(self, tool, args):
        self.file.write((json.dumps({"tool": tool, "args": args}) + "\n").encode())
        self.file.flush()
        answer = json.loads(self.file.readline())
        assert "error_code" not in answer, answer
        return answer


@contextlib.contextmanager
def adde_serve(adde, env=None):
    """A running `adde serve` on a private socket (with environment `env`, else this one);
    yields the socket's path."""
    folder = tempfile.mkdtemp(prefix="adde-bench-serve-")
    path = os.path.join(folder, "serve.sock")
    server = subprocess.Popen([adde, "serve", "--no-http", "--socket", path, "--max-concurrent", "64"],
                              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    server.stderr.readline()
    try:
        yield path
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def bench_serve(adde, envs=8, callers=32, calls_per_caller=25, latency_runs=300):
    """Executions per second through one `adde serve`, `callers` clients over `envs`
    environments; then the latency of one execution, p50 and p99."""
    with adde_serve(adde) as path:
        return serve_rates(path, envs, callers, calls_per_caller, latency_runs)


def serve_rates(path, envs, callers, calls_per_caller, latency_runs):
    setup = ServeClient(path)
    ours = [setup.call("create_runtime_env", {"image": BUSYBOX})["container_id"] for _ in range(envs)]
    try:
        def job(k):
            client = ServeClient(path)
            args = {"container_id": ours[k % envs], "command": "echo 42"}
            for _ in range(calls_per_caller):
                assert client.call("execute_command", args)["log"]["stdout"] == "42\n"
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(callers) as pool:
            list(pool.map(job, range(callers)))
        rate = callers * calls_per_caller / (time.perf_counter() - start)
        latencies = []
        args = {"container_id": ours[0], "command": "echo 42"}
        for _ in range(latency_runs):
            begin = time.perf_counter()
            setup.call("execute_command", args)
            latencies.append(time.perf_counter() - begin)
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        return rate, p50, p99
    finally:
        for cid in ours:
            setup.call("cleanup_env", {"container_id": cid})


def peak_rss_kib(adde):
    """Peak resident memory of one adde execute call (the CLI process itself), by GNU time."""
    env = adde_call(adde, "create_runtime_env", {"image": BUSYBOX})
    try:
        payload = json.dumps({"container_id": env["container_id"], "filename": "a.sh", "code_content": "echo 42"})
        out = subprocess.run(["/usr/bin/time", "-f", "%M", adde, "execute_code_block", payload],
                             check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        return int(out.stderr.strip().splitlines()[-1])
    finally:
        adde_call(adde, "cleanup_env", {"container_id": env["container_id"]})


def bench_trajectory(adde, rounds=10):
    """A 50-action agent trajectory (ls, cat, grep, write a file, run a short python test,
    in rounds of five), end to end through adde and through the docker CLI (docker exec, and
    docker exec with stdin for the file write)."""
    env = adde_call(adde, "create_runtime_env", {"image": PYTHON})
    cid = env["container_id"]
    plain = subprocess.run(
        ["docker", "run", "-d", "--network", "none", "-w", "/workspace", PYTHON, "sleep", "3600"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    subprocess.run(["docker", "exec", plain, "mkdir", "-p", "/workspace"], check=True)
    test = "def test():\n    assert sum(range(10)) == 45\ntest()\nprint('ok')\n"

    def adde_round(i):
        cmd = lambda c: [adde, "execute_command", json.dumps({"container_id": cid, "command": c})]
        return [
            (cmd("ls -la /workspace"), None),
            ([adde, "write_file", json.dumps({"container_id": cid, "path": f"t{i}.py", "content": test})], None),
            (cmd(f"cat /workspace/t{i}.py"), None),
            (cmd(f"grep -n assert /workspace/t{i}.py"), None),
            ([adde, "execute_code_block", json.dumps({"container_id": cid, "filename": f"t{i}.py", "code_content": test})], None),
        ]

    def docker_round(i):
        sh = lambda c: ["docker", "exec", plain, "sh", "-c", c]
        return [
            (sh("ls -la /workspace"), None),
            (["docker", "exec", "-i", plain, "sh", "-c", f"cat > /workspace/t{i}.py"], test),
            (sh(f"cat /workspace/t{i}.py"), None),
            (sh(f"grep -n assert /workspace/t{i}.py"), None),
            (sh(f"cd /workspace && python3 t{i}.py"), None),
        ]

    def run(rounds_of):
        start = time.perf_counter()
        for i in range(rounds):
            for argv, stdin in rounds_of(i):
                subprocess.run(argv, input=stdin, text=True, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    try:
        return {"adde, 50 actions": [run(adde_round)], "docker exec, 50 actions": [run(docker_round)]}
    finally:
        adde_call(adde, "cleanup_env", {"container_id": cid})
        subprocess.run(["docker", "rm", "-f", plain], check=True, stdout=subprocess.DEVNULL)


def bench_cells(adde, runs, warmup, notebook_cells=20):
    """A cell `x = x + 1` in a warm code context against `docker exec python3 -c`, and a
    20-cell notebook-style session (load, compute, summarise) end to end."""
    env = adde_call(adde, "create_runtime_env", {"image": PYTHON})
    cid = env["container_id"]
    plain = subprocess.run(
        ["docker", "run", "-d", "--network", "none", PYTHON, "sleep", "3600"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    try:
        adde_call(adde, "run_code", {"container_id": cid, "code": "x = 0"})
        cell = json.dumps({"container_id": cid, "code": "x = x + 1"})
        samples = interleaved(
            {
                "adde run_code, warm context": ([adde, "run_code", cell], None),
                "docker exec python3 -c": (["docker", "exec", plain, "python3", "-c", "x = 0; x = x + 1"], None),
            },
            runs,
            warmup,
        )
        notebook = ["import statistics, json\nrows = [{'n': i, 'sq': i * i} for i in range(1000)]"]
        notebook += [f"total_{i} = sum(r['sq'] for r in rows if r['n'] % {i + 2} == 0)\ntotal_{i}" for i in range(notebook_cells - 2)]
        notebook += ["statistics.mean(r['sq'] for r in rows)"]
        start = time.perf_counter()
        for code in notebook:
            adde_call(adde, "run_code", {"container_id": cid, "context": "notebook", "code": code})
        samples[f"adde, a {notebook_cells}-cell session"] = [time.perf_counter() - start]
        # The same cell from a client of `adde serve`: no process start per call.
        with adde_serve(adde) as path:
            client = ServeClient(path)
            args = {"container_id": cid, "code": "x = x + 1"}
            for _ in range(warmup):
                client.call("run_code", args)
            served = []
            for _ in range(runs):
                begin = time.perf_counter()
                client.call("run_code", args)
                served.append(time.perf_counter() - begin)
            samples["adde run_code through adde serve"] = served
        return samples
    finally:
        adde_call(adde, "cleanup_env", {"container_id": cid})
        subprocess.run(["docker", "rm", "-f", plain], check=True, stdout=subprocess.DEVNULL)


def bench_pool(adde, runs):
    """create_runtime_env served from a warm pool (filled beforehand, so no refill runs
    while it is timed) against `docker run -d`."""
    spec = {"image": BUSYBOX, "memory": "128m"}
    pool = adde_call(adde, "pool_create", {"spec": spec, "size": runs})["pool"]
    samples = {"adde create_runtime_env, warm pool": [], "docker run -d --network none": []}
    claimed = []
    try:
        for _ in range(runs):
            start = time.perf_counter()
            env = adde_call(adde, "create_runtime_env", spec)
            samples["adde create_runtime_env, warm pool"].append(time.perf_counter() - start)
            claimed.append(env["container_id"])
            assert env["pool"]["result"] == "hit", env["pool"]
            start = time.perf_counter()
            cid = subprocess.run(
                ["docker", "run", "-d", "--network", "none", BUSYBOX, "sleep", "3600"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
            samples["docker run -d --network none"].append(time.perf_counter() - start)
            subprocess.run(["docker", "rm", "-f", cid], check=True, stdout=subprocess.DEVNULL)
            # Let the refill the claim started finish before the next sample.
            time.sleep(1.5)
    finally:
        adde_call(adde, "pool_remove", {"pool": pool})
        for cid in claimed:
            adde_call(adde, "cleanup_env", {"container_id": cid})
    return samples


def bench_create(adde, runs, warmup):
    samples = {"adde create_runtime_env": [], "docker run -d --network none": []}
    for i in range(warmup + runs):
        start = time.perf_counter()
        env = adde_call(adde, "create_runtime_env", {"image": BUSYBOX})
        t = time.perf_counter() - start
        adde_call(adde, "cleanup_env", {"container_id": env["container_id"]})
        if i >= warmup:
            samples["adde create_runtime_env"].append(t)
        start = time.perf_counter()
        cid = subprocess.run(
            ["docker", "run", "-d", "--network", "none", BUSYBOX, "sleep", "3600"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        t = time.perf_counter() - start
        subprocess.run(["docker", "rm", "-f", cid], check=True, stdout=subprocess.DEVNULL)
        if i >= warmup:
            samples["docker run -d --network none"].append(t)
    return samples


def bench_build(adde, runs, warmup):
    """A small context, built without cache by adde and by `docker build` with the same labels
    (the classic builder turns each label into a step, so both do the same work)."""
    samples = {"adde build_image_from_path": [], "docker build": []}
    with tempfile.TemporaryDirectory() as context:
        with open(os.path.join(context, "Dockerfile"), "w") as f:
            f.write(f"FROM {BUSYBOX}\nCOPY app.txt /app/\nRUN wc -c /app/app.txt\nUSER 1000\n")
        with open(os.path.join(context, "app.txt"), "w") as f:
            f.write("hello\n" * 1000)
        labels = ["--label", "io.adde.managed=true", "--label", "io.adde.kind=image", "--label", "io.adde.build=bench"]
        for i in range(warmup + runs):
            start = time.perf_counter()
            adde_call(adde, "build_image_from_path", {"path": context, "tag": "adde-bench:adde", "no_cache": True})
            t = time.perf_counter() - start
            if i >= warmup:
                samples["adde build_image_from_path"].append(t)
            t = timed(["docker", "build", "-q", "--no-cache", "--rm", "--force-rm", *labels, "-t", "adde-bench:docker", context],
                      env={**os.environ, "DOCKER_BUILDKIT": "0"})
            if i >= warmup:
                samples["docker build"].append(t)
    for tag in ("adde-bench:adde", "adde-bench:docker"):
        subprocess.run(["docker", "rmi", "-f", tag], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    adde_call(adde, "prune_build_cache", {})
    return samples


def report(title, samples, baseline):
    print(f"\n{title}")
    base = median_ms(samples[baseline])
    for name, values in samples.items():
        m = median_ms(values)
        print(f"  {name:<34} median {m:8.1f} ms   ratio to {baseline!r}: {m / base:5.2f}")


@contextlib.contextmanager
def removing_new_helper_volumes():
    """At the end, removes the helper volumes (adde's binary, shared by environments) that
    appeared meanwhile, as tests/run.sh does: the bench's builds made them."""
    def helpers():
        return set(subprocess.run(
            ["docker", "volume", "ls", "-q", "--filter", "label=io.adde.kind=helper"],
            check=True, capture_output=True, text=True,
        ).stdout.split())
    before = helpers()
    try:
        yield
    finally:
        for volume in helpers() - before:
            subprocess.run(["docker", "volume", "rm", volume], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--adde", default=os.path.join(root, "target/x86_64-unknown-linux-gnu/release/adde"))
    parser.add_argument("--only", choices=["remote", "python"], help="run only this part (remote: over TLS and SSH; python: the print(6*7) rows)")
    args = parser.parse_args()
    if not os.access(args.adde, os.X_OK):
        sys.exit(f"no adde binary at {args.adde}: run `cargo build --release`")
    with tempfile.TemporaryDirectory() as state, removing_new_helper_volumes():
        os.environ["ADDE_STATE_DIR"] = state
        print(f"adde {args.adde}, {args.runs} runs after {args.warmup} warm-up runs, medians", flush=True)
        if args.only != "python":
            remote = bench_remote(args.adde, args.runs, args.warmup)
            if not remote:
                print("\nno TLS or SSH endpoint exported: run eval \"$(bash tests/engines/setup.sh)\" first")
            for transport, samples in remote.items():
                serve = "adde serve, unix socket"
                baseline = serve if serve in samples else f"docker exec, {transport}"
                if "back to back" in transport:
                    baseline = "adde execute_command, unix socket"
                report(f"execute over {transport} (busybox, echo 42)", samples, baseline)
                over = [name for name in samples if name.startswith("adde execute_command, ") and "unix socket" not in name]
                if over and baseline != "adde execute_command, unix socket":
                    ratio = median_ms(samples[over[0]]) / median_ms(samples["adde execute_command, unix socket"])
                    print(f"  {over[0]} / adde execute_command, unix socket: {ratio:5.2f}")
            if args.only == "remote":
                return
            report("execute (busybox, echo 42)", bench_exec(args.adde, args.runs, args.warmup), "docker exec sh -c 'echo 42'")
        report("execute (python, print(6*7))", bench_python(args.adde, args.runs, args.warmup), "docker exec python3 -c")
        if args.only == "python":
            return
        report("a code-interpreter cell (python, x = x + 1)", bench_cells(args.adde, args.runs, args.warmup), "docker exec python3 -c")
        report("a 50-action agent trajectory, end to end", bench_trajectory(args.adde), "docker exec, 50 actions")
        rates = bench_throughput(args.adde)
        print("\nexecutions per second, 8 environments, 16 concurrent callers")
        ceiling = rates["docker exec (Engine-API exec)"]
        for name, rate in rates.items():
            print(f"  {name:<34} {rate:8.1f} /s   ratio to the exec ceiling: {rate / ceiling:5.2f}")
        rate, p50, p99 = bench_serve(args.adde)
        print("\nthrough adde serve (unix socket), 8 environments, 32 concurrent clients")
        print(f"  {'adde serve execute_command':<34} {rate:8.1f} /s   ratio to the exec ceiling: {rate / ceiling:5.2f}")
        print(f"  one execution through serve: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        print(f"\npeak RSS of one adde execute call: {peak_rss_kib(args.adde) / 1024:.1f} MiB")
        report("create an environment", bench_create(args.adde, max(args.runs // 3, 5), 1), "docker run -d --network none")
        report("create from a warm pool", bench_pool(args.adde, max(args.runs // 3, 5)), "docker run -d --network none")
        report("build a small context (no cache)", bench_build(args.adde, max(args.runs // 6, 3), 1), "docker build")


if __name__ == "__main__":
    main()
