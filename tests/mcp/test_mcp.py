"""`adde mcp` driven by the official MCP Python SDK as the client.

Needs the Docker engine and the test images (tests/images/build.sh) for the tests that run
code; the binary is $ADDE_BIN, else the debug build of this checkout. Every test removes
what it made.

    python -m pytest tests/mcp
"""

import atexit
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

ROOT = Path(__file__).resolve().parents[2]
ADDE = os.environ.get("ADDE_BIN") or str(
    ROOT / "target/x86_64-unknown-linux-gnu/debug/adde"
)
BUSYBOX = "adde-test/busybox:1"
PYTHON = "adde-test/python:3"

AGENT_TOOLS = {
    "execute_code_block",
    "execute_command",
    "run_code",
    "context_list",
    "context_reset",
    "write_file",
    "read_file",
    "list_files",
    "get_container_logs",
    "install_dependencies",
    "start_process",
    "read_process_output",
    "signal_process",
    "wait_process",
    "list_processes",
    "create_runtime_env",
    "cleanup_env",
}
OPERATOR_FIELDS = {
    "mounts",
    "network",
    "port_bindings",
    "memory",
    "cpus",
    "pids_limit",
    "nofile",
    "runtime",
    "user",
    "labels",
    "use_image_cmd",
    "install_network",
}

# A 1x1 red PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)

STATE = tempfile.mkdtemp(prefix="adde-mcp-test-")
atexit.register(shutil.rmtree, STATE, ignore_errors=True)


def docker(*args, check=True):
    out = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check:
        assert out.returncode == 0, f"docker {args}: {out.stderr}"
    return out.stdout


def needs_docker():
    ok = subprocess.run(["docker", "image", "inspect", BUSYBOX, PYTHON], capture_output=True)
    if ok.returncode != 0:
        pytest.fail("this test needs Docker and the test images (bash tests/images/build.sh)")


def remove_env(container_id):
    """Removes an environment and its volumes, whatever state it is in."""
    name = docker("inspect", "-f", "{{.Name}}", container_id, check=False).strip().lstrip("/")
    docker("rm", "-f", "-v", container_id, check=False)
    if name:
        for volume in docker("volume", "ls", "-q", "--filter", f"label=io.adde.env={name}", check=False).split():
            docker("volume", "rm", "-f", volume, check=False)


@asynccontextmanager
async def adde_mcp(*args):
    params = StdioServerParameters(
        command=ADDE, args=["mcp", *args], env={"ADDE_STATE_DIR": STATE}
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def run(main):
    return anyio.run(main)


async def tools_of(*args):
    async with adde_mcp(*args) as session:
        return {t.name: t for t in (await session.list_tools()).tools}


def all_property_names(tool):
    return set(tool.input_schema.get("properties", {}))


def test_the_default_set_is_the_agent_tool_set_without_operator_fields():
    tools = run(lambda: tools_of())
    assert set(tools) == AGENT_TOOLS
    create = all_property_names(tools["create_runtime_env"])
    assert {"image", "dependencies", "session"} <= create
    assert not create & OPERATOR_FIELDS
    assert "all" not in all_property_names(tools["cleanup_env"])
    assert tools["read_file"].annotations.read_only_hint is True
    assert tools["cleanup_env"].annotations.destructive_hint is True
    assert tools["write_file"].annotations.idempotent_hint is True
    # One source of truth: the descriptions are the table's.
    listed = json.loads(subprocess.run([ADDE, "list_tools"], capture_output=True, text=True).stdout)
    summaries = {t["name"]: t["description"] for t in listed["tools"]}
    assert tools["execute_code_block"].description == summaries["execute_code_block"]


def test_bound_tools_have_no_container_id_and_no_environment_tools():
    tools = run(lambda: tools_of("--env", "adde-mcp-test-unused"))
    assert set(tools) == AGENT_TOOLS - {"create_runtime_env", "cleanup_env"}
    for tool in tools.values():
        assert "container_id" not in all_property_names(tool), tool.name
        assert "container_id" not in tool.input_schema.get("required", []), tool.name


def test_all_tools_is_everything_list_tools_lists():
    tools = run(lambda: tools_of("--all-tools"))
    listed = json.loads(subprocess.run([ADDE, "list_tools"], capture_output=True, text=True).stdout)
    assert set(tools) == {t["name"] for t in listed["tools"]}
    for tool in listed["tools"]:
        assert all_property_names(tools[tool["name"]]) == set(
            tool["input_schema"].get("properties", {})
        ), tool["name"]


def test_operator_fields_are_shown_on_request():
    tools = run(lambda: tools_of("--operator-fields"))
    assert set(tools) == AGENT_TOOLS
    assert OPERATOR_FIELDS <= all_property_names(tools["create_runtime_env"])


def test_a_bad_argument_is_a_tool_error_with_its_error_code():
    async def main():
        async with adde_mcp() as session:
            result = await session.call_tool(
                "execute_code_block",
                {"container_id": "x", "filename": "../escape.py", "code_content": "1"},
            )
            assert result.is_error
            assert result.structured_content["error_code"] == "invalid_argument"
            assert result.structured_content["field"] == "filename"
            assert "invalid_argument" in result.content[0].text
            result = await session.call_tool("read_file", {"container_id": "x", "path": 3})
            assert result.is_error
            assert result.structured_content["error_code"] == "invalid_payload"
            # The server is still there.
            assert len((await session.list_tools()).tools) == len(AGENT_TOOLS)

    run(main)


def test_hidden_fields_are_refused_even_when_sent():
    async def main():
        async with adde_mcp() as session:
            result = await session.call_tool(
                "create_runtime_env",
                {"image": BUSYBOX, "mounts": [{"source": "/", "target": "/host"}]},
            )
            assert result.is_error
            assert result.structured_content["error_code"] == "invalid_payload"
            assert result.structured_content["field"] == "mounts"
        async with adde_mcp("--env", "adde-mcp-test-unused") as session:
            result = await session.call_tool(
                "execute_command", {"container_id": "other", "command": "id"}
            )
            assert result.is_error
            assert result.structured_content["field"] == "container_id"

    run(main)
    # Nothing was created.
    assert docker("ps", "-aq", "--filter", "ancestor=" + BUSYBOX, "--filter", "label=io.adde.env=adde-mcp-test-unused") == ""


def test_code_runs_in_a_bound_environment_and_an_image_comes_back_as_an_image():
    needs_docker()
    made = []

    async def main():
        async with adde_mcp("--image", PYTHON) as session:
            result = await session.call_tool(
                "execute_code_block", {"filename": "main.py", "code_content": "print(1)"}
            )
            assert not result.is_error, result
            log = result.structured_content["log"]
            made.append(log["container_id"])
            assert log["exit_code"] == 0 and log["stdout"] == "1\n"
            assert result.content[0].text.startswith("exit_code 0 (")
            assert "stdout:\n1\n" in result.content[0].text
            # A run makes an image; read_file returns it as image content.
            code = f"import base64\nopen('plot.png', 'wb').write(base64.b64decode({base64.b64encode(PNG).decode()!r}))\n"
            result = await session.call_tool(
                "execute_code_block", {"filename": "plot.py", "code_content": code}
            )
            assert result.structured_content["log"]["exit_code"] == 0, result
            result = await session.call_tool("read_file", {"path": "plot.png"})
            assert not result.is_error, result
            images = [c for c in result.content if c.type == "image"]
            assert len(images) == 1
            assert images[0].mime_type == "image/png"
            assert base64.b64decode(images[0].data) == PNG
            assert result.structured_content["size"] == len(PNG)
            # The same environment serves every call.
            result = await session.call_tool("list_files", {})
            names = {e["name"] for e in result.structured_content["entries"]}
            assert {"main.py", "plot.py", "plot.png"} <= names
            # A code-interpreter cell's image comes back as image content, its bytes once.
            code = f"import base64\npng = base64.b64decode({base64.b64encode(PNG).decode()!r})\n"
            result = await session.call_tool("run_code", {"code": code})
            assert not result.is_error, result
            code = "class P:\n    def _repr_png_(self): return png\nP()"
            result = await session.call_tool("run_code", {"code": code})
            assert not result.is_error, result
            images = [c for c in result.content if c.type == "image"]
            assert len(images) == 1 and base64.b64decode(images[0].data) == PNG
            assert result.content[0].text.startswith("[2] default ")
            data = result.structured_content["results"][0]["data"]
            assert data["image/png"] == "[image 1 of this result's content]"

    try:
        run(main)
        # The environment the server made for itself is removed when it exits.
        assert made
        deadline = time.time() + 10
        while docker("ps", "-aq", "--filter", f"id={made[0]}") and time.time() < deadline:
            time.sleep(0.2)
        assert docker("ps", "-aq", "--filter", f"id={made[0]}") == ""
    finally:
        for container in made:
            remove_env(container)


def test_a_background_process_through_a_bound_server():
    needs_docker()
    made = []

    async def main():
        async with adde_mcp("--image", BUSYBOX) as session:
            tools = {t.name for t in (await session.list_tools()).tools}
            assert {"start_process", "read_process_output", "signal_process", "wait_process"} <= tools
            result = await session.call_tool(
                "start_process", {"command": "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"}
            )
            assert not result.is_error, result
            process = result.structured_content["process_id"]
            made.append(result.structured_content["container_id"])
            assert result.content[0].text == f"process {process} running\n"
            # The call returned; the process goes on, and reads take only what is new.
            offset = 0
            seen = ""
            for _ in range(100):
                result = await session.call_tool(
                    "read_process_output", {"process_id": process, "stdout_offset": offset}
                )
                out = result.structured_content
                assert out["stdout_offset"] >= offset
                seen += out["stdout"]
                offset = out["stdout_offset"]
                if "tick 3\n" in seen:
                    break
                await anyio.sleep(0.1)
            assert seen.startswith("tick 0\ntick 1\ntick 2\ntick 3\n"), seen
            assert f"next: stdout_offset {offset}" in result.content[0].text
            result = await session.call_tool("signal_process", {"process_id": process, "signal": "SIGKILL"})
            assert result.structured_content["sent"] is True
            result = await session.call_tool("wait_process", {"process_id": process, "timeout_sec": 10})
            ended = result.structured_content
            assert (ended["state"], ended["exit_code"], ended["signal"]) == ("exited", 137, "SIGKILL")
            assert "exited, exit_code 137, SIGKILL" in result.content[0].text
            result = await session.call_tool("read_process_output", {"process_id": "r1700000000000-1a2b3c4d"})
            assert result.is_error
            assert result.structured_content["error_code"] == "process_not_found"

    try:
        run(main)
    finally:
        for container in made:
            remove_env(container)


def test_an_install_into_a_bound_environment_reports_progress():
    needs_docker()
    index = Path(os.environ.get("ADDE_TEST_CACHE", Path.home() / ".cache" / "adde-test")) / "index"
    assert (index / "simple" / "adde-demo").is_dir(), "no test index: run tests/images/build.sh"
    server = subprocess.Popen(
        ["python3", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(index)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    made = []

    async def main():
        port = server.stdout.readline().split("port ")[1].split()[0]
        async with adde_mcp("--image", PYTHON, "--operator-fields") as session:
            steps = []

            async def on_progress(progress, total, message):
                steps.append(message)

            result = await session.call_tool(
                "install_dependencies",
                {"packages": ["adde-demo==1.0"], "pip_index_url": f"http://127.0.0.1:{port}/simple/"},
                progress_callback=on_progress,
            )
            assert not result.is_error, result
            made.append(result.structured_content["container_id"])
            assert result.structured_content["package_manager"] == "pip"
            assert steps[0] == "install_dependencies started" and steps[-1] == "install_dependencies done"
            # The installer's lines, at most one a progress interval (the latest of each).
            assert any(s.startswith("install: ") for s in steps), steps
            result = await session.call_tool(
                "execute_code_block", {"filename": "a.py", "code_content": "import adde_demo; print(adde_demo.GREETING)"}
            )
            assert result.structured_content["log"]["stdout"] == "hello from adde_demo\n"

    try:
        run(main)
    finally:
        server.kill()
        server.wait()
        for container in made:
            remove_env(container)


def test_cancelling_a_call_kills_the_run_in_the_container():
    needs_docker()
    made = []

    async def main():
        async with adde_mcp() as session:
            env = await session.call_tool("create_runtime_env", {"image": BUSYBOX})
            assert not env.is_error, env
            container = env.structured_content["container_id"]
            made.append(container)
            started = time.monotonic()
            with anyio.move_on_after(3) as scope:
                await session.call_tool(
                    "execute_command",
                    {"container_id": container, "command": "sleep 300", "timeout_sec": 600},
                )
            assert scope.cancelled_caught
            assert time.monotonic() - started < 10
            # The run is killed inside the container, not just abandoned.
            deadline = time.time() + 15
            while time.time() < deadline:
                procs = docker("top", container, "-eo", "pid,args")
                if "sleep" not in procs:
                    break
                await anyio.sleep(0.2)
            assert "sleep" not in docker("top", container, "-eo", "pid,args")
            # The server goes on serving.
            result = await session.call_tool(
                "execute_command", {"container_id": container, "command": "echo still here"}
            )
            assert result.structured_content["log"]["stdout"] == "still here\n"
            result = await session.call_tool("cleanup_env", {"container_id": container})
            assert result.structured_content["ok"] is True, result

    try:
        run(main)
    finally:
        for container in made:
            remove_env(container)


def test_progress_arrives_for_a_build_and_for_a_run():
    needs_docker()
    tag = f"adde-test-mcp-progress:{uuid.uuid4().hex[:8]}"
    made = []

    async def main():
        async with adde_mcp("--all-tools") as session:
            context = await session.call_tool(
                "prepare_build_context",
                {"files": {"Dockerfile": f"FROM {BUSYBOX}\nRUN echo building\nUSER 1000\n"}},
            )
            assert not context.is_error, context
            steps = []

            async def on_progress(progress, total, message):
                steps.append((progress, message))

            result = await session.call_tool(
                "build_image_from_context",
                {"context_id": context.structured_content["context_id"], "tag": tag, "no_cache": True},
                progress_callback=on_progress,
            )
            assert not result.is_error, result
            messages = [m for _, m in steps]
            assert messages[0] == "build_image_from_context started", messages
            assert messages[-1] == "build_image_from_context done", messages
            assert any(m and m.startswith("Step 2/") and m.endswith(": RUN echo building") for m in messages), messages
            assert [p for p, _ in steps] == sorted(p for p, _ in steps)

            env = await session.call_tool("create_runtime_env", {"image": BUSYBOX})
            container = env.structured_content["container_id"]
            made.append(container)
            steps.clear()
            result = await session.call_tool(
                "execute_command",
                {"container_id": container, "command": "echo first; sleep 1; echo second >&2"},
                progress_callback=on_progress,
            )
            assert result.structured_content["log"]["stdout"] == "first\n"
            messages = [m for _, m in steps]
            assert "first\n" in messages, messages
            assert "[stderr] second\n" in messages, messages
            # The output streamed before the run ended.
            assert messages.index("first\n") < messages.index("execute_command done")

    try:
        run(main)
    finally:
        docker("rmi", "-f", tag, check=False)
        for container in made:
            remove_env(container)


def test_a_bound_session_comes_back_when_its_environment_is_removed_and_outlives_the_server():
    needs_docker()
    session_name = f"adde-mcp-test-{uuid.uuid4().hex[:8]}"
    made = []

    async def main():
        async with adde_mcp("--image", BUSYBOX, "--session", session_name) as session:
            result = await session.call_tool("execute_command", {"command": "echo one"})
            assert result.structured_content["log"]["stdout"] == "one\n", result
            made.append(result.structured_content["log"]["container_id"])
            docker("rm", "-f", made[0])
            result = await session.call_tool("execute_command", {"command": "echo two"})
            assert result.structured_content["log"]["stdout"] == "two\n", result
            made.append(result.structured_content["log"]["container_id"])
            assert made[1] != made[0]

    try:
        run(main)
        # A session's environment is not the server's: it stays.
        assert docker("ps", "-q", "--filter", f"id={made[1]}").strip()
    finally:
        for container in made:
            remove_env(container)


def test_progress_arrives_for_a_pull():
    needs_docker()
    registry = "127.0.0.1:5000"
    image = f"{registry}/adde-test/busybox:latest"
    present = subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0

    async def main():
        async with adde_mcp("--all-tools") as session:
            steps = []

            async def on_progress(progress, total, message):
                steps.append(message)

            result = await session.call_tool("pull_image", {"image": image}, progress_callback=on_progress)
            assert not result.is_error, result
            assert result.structured_content["ok"] is True
            assert steps[0] == "pull_image started", steps
            assert steps[-1] == "pull_image done", steps

    try:
        run(main)
    finally:
        if not present:
            docker("rmi", image, check=False)


def test_cancelling_a_build_stops_it_in_the_engine():
    needs_docker()
    marker = f"{uuid.uuid4().int % 1000 + 100}.5"
    tag = f"adde-test-mcp-cancel:{uuid.uuid4().hex[:8]}"

    def building():
        listed = docker("ps", "--no-trunc", "--format", "{{.Command}}")
        return f"sleep {marker}" in listed

    async def main():
        async with adde_mcp("--all-tools") as session:
            context = await session.call_tool(
                "prepare_build_context",
                {"files": {"Dockerfile": f"FROM {BUSYBOX}\nRUN sleep {marker}\n"}},
            )
            assert not context.is_error, context
            started = time.monotonic()
            with anyio.move_on_after(4) as scope:
                await session.call_tool(
                    "build_image_from_context",
                    {"context_id": context.structured_content["context_id"], "tag": tag, "no_cache": True},
                )
            assert scope.cancelled_caught
            assert time.monotonic() - started < 10
            # The engine stops the build: its RUN step's container goes away long before
            # the sleep would have ended.
            deadline = time.time() + 20
            while building() and time.time() < deadline:
                await anyio.sleep(0.5)
            assert not building(), "the build's RUN step still runs"
            # The server goes on serving.
            assert len((await session.list_tools()).tools) > 0

    try:
        run(main)
    finally:
        docker("rmi", "-f", tag, check=False)
