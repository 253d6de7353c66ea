"""`adde serve` driven by real clients: the official MCP Python SDK over streamable HTTP, and
plain sockets speaking its JSON lines. Needs the Docker engine and the test images; every test
removes what it made and stops the server it started.

    python -m pytest tests/mcp/test_serve.py
"""

import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from test_mcp import ADDE, AGENT_TOOLS, BUSYBOX, STATE, docker, needs_docker, remove_env, run

TOKEN = "serve-test-token-0123456789"


@contextmanager
def adde_serve(*args, env=None):
    """Starts `adde serve` on a private socket and a free loopback port; yields (url, socket,
    process). Stops it with SIGTERM at the end and checks it exited cleanly."""
    folder = tempfile.mkdtemp(prefix="adde-serve-test-")
    sock = os.path.join(folder, "serve.sock")
    process = subprocess.Popen(
        [ADDE, "serve", "--socket", sock, "--http", "127.0.0.1:0", *args],
        env={**os.environ, "ADDE_STATE_DIR": STATE, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = None
    deadline = time.time() + 20
    while url is None and time.time() < deadline:
        line = process.stderr.readline()
        assert line, f"adde serve exited: {process.wait()}"
        if "MCP on " in line:
            url = line.split("MCP on ", 1)[1].strip()
    assert url, "adde serve did not say where it listens"
    # The rest of stderr is drained so the server never blocks on it.
    rest = []
    threading.Thread(target=lambda: rest.extend(process.stderr), daemon=True).start()
    try:
        yield url, sock, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=40)
        assert process.stdout.read() == "", "adde serve writes nothing on stdout"
        assert code == 0, "".join(rest)
        assert not os.path.exists(sock), "the socket is removed at exit"


@asynccontextmanager
async def mcp_session(url, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as client:
        async with streamable_http_client(url, http_client=client) as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


class Lines:
    """A client of the unix socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")

    def send(self, tool, args=None, id=None, raw=None):
        request = {"tool": tool, "args": args or {}}
        if id is not None:
            request["id"] = id
        self.file.write(raw if raw is not None else (json.dumps(request) + "\n").encode())
        self.file.flush()

    def read(self):
        line = self.file.readline()
        assert line, "the server closed the connection"
        return json.loads(line)

    def call(self, tool, args=None):
        self.send(tool, args)
        return self.read()

    def close(self):
        self.file.close()
        self.sock.close()


def test_mcp_over_http_runs_code_streams_progress_and_cancellation_kills_the_run():
    needs_docker()
    made = []

    async def main(url):
        async with mcp_session(url) as session:
            tools = {t.name for t in (await session.list_tools()).tools}
            assert tools == AGENT_TOOLS
            env = await session.call_tool("create_runtime_env", {"image": BUSYBOX})
            assert not env.is_error, env
            container = env.structured_content["container_id"]
            made.append(container)
            steps = []

            async def on_progress(progress, total, message):
                steps.append(message)

            result = await session.call_tool(
                "execute_command",
                {"container_id": container, "command": "echo first; sleep 1; echo second"},
                progress_callback=on_progress,
            )
            assert result.structured_content["log"]["stdout"] == "first\nsecond\n"
            assert "first\n" in steps, steps
            assert steps.index("first\n") < steps.index("execute_command done")
            bad = await session.call_tool("read_file", {"container_id": container, "path": 3})
            assert bad.is_error and bad.structured_content["error_code"] == "invalid_payload"

            with anyio.move_on_after(3) as scope:
                await session.call_tool(
                    "execute_command",
                    {"container_id": container, "command": "sleep 300", "timeout_sec": 600},
                )
            assert scope.cancelled_caught
            deadline = time.time() + 15
            while "sleep" in docker("top", container, "-eo", "pid,args") and time.time() < deadline:
                await anyio.sleep(0.2)
            assert "sleep" not in docker("top", container, "-eo", "pid,args")
            result = await session.call_tool("cleanup_env", {"container_id": container})
            assert result.structured_content["ok"] is True

    try:
        with adde_serve() as (url, _, _):
            run(lambda: main(url))
    finally:
        for container in made:
            remove_env(container)


def test_a_token_guards_the_http_endpoint_and_is_required_beyond_loopback():
    refused = subprocess.run(
        [ADDE, "serve", "--no-socket", "--http", "0.0.0.0:0"],
        env={**os.environ, "ADDE_STATE_DIR": STATE, "ADDE_SERVE_TOKEN": ""},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert refused.returncode == 2
    assert "ADDE_SERVE_TOKEN" in refused.stderr and "TLS" in refused.stderr

    async def main(url):
        async with httpx2.AsyncClient(timeout=10) as client:
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
                response = await client.post(
                    url,
                    headers={**headers, "Accept": "application/json, text/event-stream"},
                    json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                )
                assert response.status_code == 401
        async with mcp_session(url, TOKEN) as session:
            assert {t.name for t in (await session.list_tools()).tools} == AGENT_TOOLS

    with adde_serve(env={"ADDE_SERVE_TOKEN": TOKEN}) as (url, _, _):
        run(lambda: main(url))


def test_32_concurrent_socket_clients_each_get_exactly_their_own_answers():
    needs_docker()
    with adde_serve() as (_, sock, _):
        setup = Lines(sock)
        envs = []
        try:
            for _ in range(2):
                env = setup.call("create_runtime_env", {"image": BUSYBOX})
                assert "container_id" in env, env
                envs.append(env["container_id"])
            # A client that sends half a line and one that never reads its answers must
            # not hold up the others.
            stalled = Lines(sock)
            stalled.send("ping", raw=b'{"tool": "pi')
            deaf = Lines(sock)
            for n in range(20):
                deaf.send("execute_command", {"container_id": envs[0], "command": "seq 1 2000"}, id=n)
            failures = []

            def client(n):
                try:
                    lines = Lines(sock)
                    container = envs[n % 2]
                    for round in range(3):
                        token = f"client-{n}-round-{round}"
                        lines.send("execute_command", {"container_id": container, "command": f"echo {token}"}, id=token)
                        answer = lines.read()
                        assert answer["id"] == token, answer
                        assert answer["log"]["stdout"] == token + "\n", answer
                        assert answer["log"]["container_id"] == container
                    # Two requests in flight on one connection: told apart by id.
                    lines.send("execute_command", {"container_id": container, "command": "sleep 0.5; echo slow"}, id="slow")
                    lines.send("execute_command", {"container_id": container, "command": "echo fast"}, id=7)
                    answers = {a["id"]: a for a in (lines.read(), lines.read())}
                    assert answers["slow"]["log"]["stdout"] == "slow\n"
                    assert answers[7]["log"]["stdout"] == "fast\n"
                    lines.close()
                except Exception as e:  # noqa: BLE001 - reported below, with the client's number
                    failures.append((n, repr(e)))

            threads = [threading.Thread(target=client, args=(n,)) for n in range(32)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert not failures, failures
            # Bad requests are answered, and the connection goes on.
            setup.send("ping", raw=b"{not json\n")
            assert setup.read()["error_code"] == "invalid_json"
            assert setup.call("no_such_tool")["error_code"] == "unknown_tool"
            answer = setup.call("execute_command", {"container_id": envs[0], "command": 5})
            assert answer["error_code"] == "invalid_payload" and answer["field"] == "command"
            stalled.close()
            deaf.close()
        finally:
            for container in envs:
                setup.call("cleanup_env", {"container_id": container})
            setup.close()


def test_beyond_its_limits_the_server_answers_busy_at_once():
    needs_docker()
    with adde_serve("--max-concurrent", "1", "--max-queued", "0") as (_, sock, _):
        first = Lines(sock)
        env = first.call("create_runtime_env", {"image": BUSYBOX})
        container = env["container_id"]
        try:
            first.send("execute_command", {"container_id": container, "command": "sleep 2; echo done"})
            time.sleep(0.5)
            second = Lines(sock)
            started = time.monotonic()
            answer = second.call("ping")
            assert answer["error_code"] == "busy", answer
            assert time.monotonic() - started < 1
            assert first.read()["log"]["stdout"] == "done\n"
            # Once the slot is free, calls go through again.
            assert second.call("ping")["ok"] is True
            second.close()
        finally:
            first.call("cleanup_env", {"container_id": container})
            first.close()


def test_sigterm_kills_the_runs_in_flight_records_them_and_exits():
    needs_docker()
    made = []
    try:
        with adde_serve() as (_, sock, process):
            lines = Lines(sock)
            env = lines.call("create_runtime_env", {"image": BUSYBOX})
            container = env["container_id"]
            made.append(container)
            lines.send("execute_command", {"container_id": container, "command": "echo begun; sleep 300", "timeout_sec": 600, "stream": True})
            assert lines.read() == {"event": "stdout", "data": "begun\n"}
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            answer = lines.read()
            assert answer["error_code"] == "interrupted", answer
            assert process.wait(timeout=30) == 0
            assert time.monotonic() - started < 25
            assert "sleep" not in docker("top", container, "-eo", "pid,args")
        logs = subprocess.run(
            [ADDE, "get_container_logs", json.dumps({"container_id": container})],
            env={**os.environ, "ADDE_STATE_DIR": STATE},
            capture_output=True,
            text=True,
        )
        log = json.loads(logs.stdout)["log"]
        assert log["stdout"] == "begun\n", log
        assert log["error"]["error_code"] == "interrupted", log
    finally:
        for container in made:
            remove_env(container)


def test_flags_that_cannot_work_stop_the_server_before_it_listens():
    for args, says in (
        (["--no-socket", "--no-http"], "nothing to serve"),
        (["--max-concurrent", "0"], "at least 1"),
        (["--spec", "[]"], "JSON object"),
    ):
        out = subprocess.run([ADDE, "serve", *args], env={**os.environ, "ADDE_STATE_DIR": STATE},
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 2, (args, out.stderr)
        assert says in out.stderr, (args, out.stderr)
        assert out.stdout == ""
    policy = Path(STATE) / "serve-policy.toml"
    policy.write_text("[limits]\nmax_concurrent_calls = 4\n")
    out = subprocess.run([ADDE, "serve", "--max-concurrent", "8", "--no-http"],
                         env={**os.environ, "ADDE_STATE_DIR": STATE, "ADDE_POLICY": str(policy)},
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "over the policy's limit of 4" in out.stderr, out.stderr


def test_a_kept_agent_attachment_is_replaced_when_its_environment_restarts():
    needs_docker()
    with adde_serve() as (_, sock, _):
        lines = Lines(sock)
        env = lines.call("create_runtime_env", {"image": BUSYBOX})
        container = env["container_id"]
        try:
            assert lines.call("execute_command", {"container_id": container, "command": "echo one"})["log"]["transport"] == "agent"
            # The server keeps its attachment to the agent; a restart ends it.
            docker("restart", "-t", "1", container)
            log = lines.call("execute_command", {"container_id": container, "command": "echo two"})["log"]
            assert (log["stdout"], log["transport"]) == ("two\n", "agent"), log
        finally:
            lines.call("cleanup_env", {"container_id": container})
            lines.close()


def test_in_the_background_the_server_removes_environments_past_their_ttl():
    needs_docker()
    with adde_serve("--maintain-every", "1") as (_, sock, _):
        lines = Lines(sock)
        env = lines.call("create_runtime_env", {"image": BUSYBOX, "ttl_sec": 2})
        container = env["container_id"]
        kept = lines.call("create_runtime_env", {"image": BUSYBOX})["container_id"]
        try:
            # Nobody calls reap: the server's own reaper removes it soon after its TTL.
            deadline = time.time() + 20
            while docker("ps", "-aq", "--filter", f"id={container}") and time.time() < deadline:
                time.sleep(0.5)
            assert docker("ps", "-aq", "--filter", f"id={container}") == "", "still there"
            assert docker("ps", "-aq", "--filter", f"id={kept}") != "", "an environment without a TTL stays"
        finally:
            remove_env(container)
            lines.call("cleanup_env", {"container_id": kept})
            lines.close()


def test_in_the_background_the_server_removes_volumes_nothing_uses_but_spares_a_create_in_progress():
    needs_docker()
    owner = f"serve-sweep-{os.getpid()}"
    now = int(time.time())

    def volume(kind, until):
        # As create_runtime_env makes them before their container: one of a create that died
        # long ago, one of a create still within its time.
        name = f"adde-{kind}-{os.getpid()}"
        docker("volume", "create", "--label", "io.adde.managed=true", "--label", "io.adde.kind=volume",
               "--label", f"io.adde.owner={owner}", "--label", f"io.adde.env=adde-{kind}",
               "--label", f"io.adde.pending_until={until}", name)
        return name

    crashed, coming = volume("crashed", now - 1), volume("coming", now + 600)
    try:
        with adde_serve("--maintain-every", "1", env={"ADDE_OWNER": owner}):
            deadline = time.time() + 20
            while docker("volume", "ls", "-q", "--filter", f"name=^{crashed}$") and time.time() < deadline:
                time.sleep(0.5)
            assert docker("volume", "ls", "-q", "--filter", f"name=^{crashed}$") == "", "still there"
            assert docker("volume", "ls", "-q", "--filter", f"name=^{coming}$").strip() == coming
    finally:
        subprocess.run(["docker", "volume", "rm", "-f", crashed, coming], capture_output=True)


def test_what_the_server_knows_of_an_environment_goes_with_any_change_the_engine_reports():
    # The server remembers that an environment is adde's and running instead of asking the
    # engine before every call, and must forget it as soon as the engine says otherwise: a
    # paused environment is refused at once, not found out at the run's 60 s deadline.
    needs_docker()
    with adde_serve() as (_, sock, _):
        lines = Lines(sock)
        container = lines.call("create_runtime_env", {"image": BUSYBOX})["container_id"]
        call = {"container_id": container, "command": "echo ok", "timeout_sec": 60}
        try:
            for _ in range(3):
                assert lines.call("execute_command", call)["log"]["stdout"] == "ok\n"
            docker("pause", container)
            started = time.time()
            answer = lines.call("execute_command", call)
            assert answer.get("error_code") == "container_not_running", answer
            assert "paused" in answer["error"], answer
            assert time.time() - started < 10
            docker("unpause", container)
            assert lines.call("execute_command", call)["log"]["stdout"] == "ok\n"
            remove_env(container)  # by hand, with its volumes
            answer = lines.call("execute_command", call)
            assert answer.get("error_code") == "container_not_found", answer
        finally:
            remove_env(container)
            lines.close()
