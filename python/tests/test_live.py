"""The real binary against the real engine: a run's output streamed as it comes, background
processes, and an install into a running environment, each result checked against its
TypedDict."""

import asyncio
import http.server
import threading
from pathlib import Path
from typing import Iterator, List

import pytest
from test_integration import BUSYBOX, PYTHON, assert_shape

import adde
import adde.aio


@pytest.fixture
def busybox(engine: None) -> Iterator[str]:
    created = adde.create_runtime_env(BUSYBOX)
    yield created["container_id"]
    adde.cleanup_env(created["container_id"])


def test_output_streams_through_callbacks_and_the_event_iterator(busybox: str) -> None:
    code = "echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three"
    seen: List[str] = []
    out = adde.execute_command(busybox, code, on_stdout=lambda s: seen.append("out " + s), on_stderr=lambda s: seen.append("err " + s))
    assert seen == ["out one\n", "err two\n", "out three\n"]
    assert_shape(out, adde.ExecuteResult)
    assert out["log"]["stdout"] == "one\nthree\n"

    async def events() -> List[str]:
        kinds = []
        async for event in adde.aio.stream_code_block(busybox, "a.sh", code, timeout_sec=10):
            kinds.append(event["event"])
            if event["event"] == "result":
                assert_shape(event["result"], adde.ExecuteResult)
        return kinds

    assert asyncio.run(events()) == ["stdout", "stderr", "stdout", "result"]


def test_a_background_process_from_python(busybox: str) -> None:
    started = adde.start_process(busybox, "echo ready; sleep 300")
    assert_shape(started, adde.ProcessInfo)
    pid = started["process_id"]
    for _ in range(100):
        out = adde.read_process_output(busybox, pid)
        if out["stdout"] == "ready\n":
            break
    assert_shape(out, adde.ProcessOutput)
    again = adde.read_process_output(busybox, pid, out["stdout_offset"], out["stderr_offset"])
    assert again["stdout"] == ""
    listed = adde.list_processes(busybox)
    assert_shape(listed, adde.ProcessList)
    assert [p["process_id"] for p in listed["processes"]] == [pid]
    sent = adde.signal_process(busybox, pid, "SIGTERM")
    assert_shape(sent, adde.SignalResult)
    assert sent["sent"] is True
    ended = asyncio.run(adde.aio.wait_process(busybox, pid, 10))
    assert_shape(ended, adde.ProcessInfo)
    assert (ended["state"], ended["exit_code"], ended.get("signal")) == ("exited", 143, "SIGTERM")
    with pytest.raises(adde.NotFound):
        adde.wait_process(busybox, "r1700000000000-1a2b3c4d", 1)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_install_into_a_running_environment(engine: None) -> None:
    index = Path.home() / ".cache" / "adde-test" / "index"
    if not (index / "simple" / "adde-demo").is_dir():
        pytest.skip("no test index: run tests/images/build.sh")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(index)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = adde.create_runtime_env(PYTHON)["container_id"]
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
        done = adde.install_dependencies(env, ["adde-demo==1.0"], pip_index_url=url)
        assert_shape(done, adde.InstallResult)
        assert done["package_manager"] == "pip"
        log = adde.execute_code_block(env, "a.py", "import adde_demo; print(adde_demo.GREETING)")["log"]
        assert log["stdout"] == "hello from adde_demo\n"
        with pytest.raises(adde.AddeError) as failed:
            adde.install_dependencies(env, ["no-such-package-adde"], pip_index_url=url)
        assert failed.value.error_code == "dependency_install_failed"
        assert "no-such-package-adde" in failed.value.result["installer_output"]
    finally:
        server.shutdown()
        adde.cleanup_env(env)
