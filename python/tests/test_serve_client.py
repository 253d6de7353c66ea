"""adde.Client and adde.AsyncClient against a real `adde serve` (the installed binary) and the
real engine."""

import asyncio
import os
import subprocess
import threading
import time

import pytest

import adde

BUSYBOX = "adde-test/busybox:1"


@pytest.fixture
def server(engine, tmp_path):
    """`adde serve` on a private socket; stopped (SIGTERM) at the end."""
    sock = tmp_path / "serve.sock"
    process = subprocess.Popen(
        [adde.find_adde_bin(), "serve", "--no-http", "--socket", str(sock)],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "JSON lines on unix:" in line, line
    threading.Thread(target=process.stderr.read, daemon=True).start()
    yield sock
    process.terminate()
    assert process.wait(timeout=40) == 0


@pytest.fixture
def env(server):
    with adde.Client(server) as client:
        created = client.create_runtime_env(BUSYBOX)
        yield created["container_id"]
        try:
            client.cleanup_env(created["container_id"])
        except adde.NotFound:
            pass


def test_the_client_makes_the_same_calls_as_the_functions(server, env):
    with adde.Client(server) as client:
        log = client.execute_command(env, "echo 42; exit 3")["log"]
        assert (log["stdout"], log["exit_code"]) == ("42\n", 3)
        log = client.execute_command(env, "sleep 5", timeout_sec=1)["log"]
        assert log["timed_out"] is True
        client.write_file(env, "a.txt", "hello")
        assert client.read_file(env, "a.txt")["content"] == "hello"
        # Errors are the same typed exceptions, with adde's code.
        with pytest.raises(adde.NotFound) as caught:
            client.read_file(env, "missing.txt")
        assert caught.value.error_code == "file_not_found"
        with pytest.raises(adde.InvalidInput):
            client.execute_code_block(env, "../x.py", "1")
        # The same history the binary keeps.
        assert client.get_container_logs(env)["log"]["timed_out"] is True


def test_output_streams_to_callbacks_while_the_run_goes_on(server, env):
    seen = []
    with adde.Client(server) as client:
        result = client.call(
            "execute_command",
            {"container_id": env, "command": "echo one; sleep 1; echo two >&2"},
            on_stdout=lambda text: seen.append(("out", text, time.monotonic())),
            on_stderr=lambda text: seen.append(("err", text, time.monotonic())),
        )
        finished = time.monotonic()
        assert [(kind, text) for kind, text, _ in seen] == [("out", "one\n"), ("err", "two\n")]
        assert finished - seen[0][2] >= 0.5, "the first line arrived before the run ended"
        assert result["log"]["stdout"] == "one\n"
        # The typed methods take the same callbacks as the module's functions.
        chunks = []
        log = client.execute_command(env, "echo a; echo b", on_stdout=chunks.append)["log"]
        assert "".join(chunks) == log["stdout"] == "a\nb\n"


def test_threads_share_one_client(server, env):
    failures = []
    with adde.Client(server) as client:

        def work(n):
            try:
                for round in range(3):
                    out = client.execute_command(env, f"echo {n}-{round}")["log"]["stdout"]
                    assert out == f"{n}-{round}\n", out
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(repr(e))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not failures, failures


def test_cancelling_an_async_call_kills_the_run_on_the_server(server, env):
    async def main():
        async with adde.AsyncClient(server) as client:
            task = asyncio.create_task(client.execute_command(env, "sleep 300", timeout_sec=600))
            await asyncio.sleep(1.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            deadline = time.time() + 15
            while time.time() < deadline:
                top = subprocess.run(["docker", "top", env, "-eo", "pid,args"], capture_output=True, text=True).stdout
                if "sleep 300" not in top:
                    break
                await asyncio.sleep(0.2)
            assert "sleep 300" not in top
            # The run is recorded as interrupted, and the client goes on.
            logs = await client.get_container_logs(env)
            assert logs["log"]["error"]["error_code"] == "interrupted"
            assert (await client.execute_command(env, "echo after"))["log"]["stdout"] == "after\n"

    asyncio.run(main())


def test_a_missing_server_is_a_clear_error(tmp_path):
    with pytest.raises(adde.AddeError) as caught:
        adde.Client(tmp_path / "nothing.sock").ping()
    assert caught.value.error_code == "server_unavailable"
    assert "adde serve" in str(caught.value)
