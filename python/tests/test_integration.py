"""The real binary against the real engine (test images from tests/images/build.sh)."""

import asyncio
import subprocess
import typing
from typing import Any

import pytest

import adde
import adde.aio

PYTHON = "adde-test/python:3"
BUSYBOX = "adde-test/busybox:1"


def assert_shape(value: Any, td: Any, where: str = "result") -> None:
    """`value` has exactly the keys the TypedDict `td` declares (every required one, no
    unknown one), recursively through nested TypedDicts and lists of them."""
    assert isinstance(value, dict), (where, value)
    hints = typing.get_type_hints(td)
    missing = td.__required_keys__ - value.keys()
    unknown = value.keys() - hints.keys()
    assert not missing and not unknown, f"{where} ({td.__name__}): missing {missing}, unknown {unknown}"
    for key, item in value.items():
        kind = hints[key]
        options = (
            [a for a in typing.get_args(kind) if a is not type(None)]
            if typing.get_origin(kind) is typing.Union
            else [kind]
        )
        for option in options:
            if typing.is_typeddict(option) and isinstance(item, dict):
                assert_shape(item, option, f"{where}.{key}")
            elif typing.get_origin(option) is list and typing.is_typeddict(typing.get_args(option)[0]):
                for n, element in enumerate(item):
                    assert_shape(element, typing.get_args(option)[0], f"{where}.{key}[{n}]")


@pytest.fixture
def env(engine):
    created = adde.create_runtime_env(PYTHON)
    yield created["container_id"]
    try:
        adde.cleanup_env(created["container_id"])
    except adde.NotFound:
        pass


def test_the_agent_loop(env):
    result = adde.execute_code_block(env, "main.py", "import sys\nprint('six times seven', 6 * 7)\nsys.exit(2)\n")
    assert_shape(result, adde.ExecuteResult)
    log = result["log"]
    assert log["stdout"] == "six times seven 42\n"
    assert log["exit_code"] == 2, "a failing program is a result, not an exception"

    log = adde.execute_code_block(env, "spin.py", "print('going')\nwhile True: pass\n", timeout_sec=1)["log"]
    assert log["timed_out"] is True
    assert log["stdout"] == "going\n"

    assert_shape(adde.get_container_logs(env, all=True, container_output=True), adde.LogsResult)
    tail = adde.get_container_logs(env, tail_lines=1)["log"]
    assert tail["run_id"] == log["run_id"]
    assert tail["stdout"] == "going\n"

    cleaned = adde.cleanup_env(env)
    assert_shape(cleaned, adde.CleanupResult)
    assert cleaned["ok"] is True
    with pytest.raises(adde.NotFound):
        adde.execute_code_block(env, "a.py", "print(1)")


def test_bad_input_raises_invalid_input(engine):
    with pytest.raises(adde.InvalidInput) as caught:
        adde.execute_code_block("x", "../escape.py", "print(1)")
    assert caught.value.result["field"] == "filename"


def test_asyncio_runs_in_parallel(env):
    async def main():
        calls = [
            adde.aio.execute_code_block(env, f"p{i}.py", f"import time\ntime.sleep(1)\nprint({i})\n") for i in range(3)
        ]
        return await asyncio.gather(*calls)

    logs = [r["log"] for r in asyncio.run(main())]
    assert [log["stdout"] for log in logs] == ["0\n", "1\n", "2\n"]


def test_a_build_from_a_context(engine):
    tag = "adde-pytest:ctx"
    context = adde.prepare_build_context(
        {"Dockerfile": f'FROM {BUSYBOX}\nCOPY hello.txt /\nUSER 1000\nCMD ["cat", "/hello.txt"]\n', "hello.txt": "hi\n"}
    )["context_id"]
    try:
        built = adde.build_image_from_context(context, tag=tag)
        assert_shape(built, adde.BuildResult)
        assert built["status"] == "success"
        run = subprocess.run(["docker", "run", "--rm", tag], capture_output=True, text=True, check=True)
        assert run.stdout == "hi\n"
        images = adde.list_agent_images(filter_tag="adde-pytest")
        assert_shape(images, adde.ImageList)
        assert any(tag in image["tags"] for image in images["images"])
        deleted = adde.delete_image(tag)
        assert_shape(deleted, adde.DeleteImageResult)
        assert deleted["ok"] is True
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)

    broken = adde.prepare_build_context({"Dockerfile": f"FROM {BUSYBOX}\nRUN exit 4\nUSER 1\n"})["context_id"]
    with pytest.raises(adde.BuildFailed) as caught:
        adde.build_image_from_context(broken, tag="adde-pytest:broken")
    assert caught.value.result["failed_layer"].endswith("RUN exit 4")
    assert_shape(adde.prune_build_cache(), adde.PruneResult)


def test_session_tools(engine, tmp_path):
    env = adde.create_runtime_env(BUSYBOX, session="pytest-session")
    try:
        assert_shape(env, adde.CreatedEnv)
        assert env["session_action"] == "created"
        assert adde.create_runtime_env(BUSYBOX, session="pytest-session")["session_action"] == "reused"
        cid = env["container_id"]
        assert_shape(adde.write_file(cid, "out/result.txt", "42\n"), adde.WriteFileResult)
        assert adde.execute_command(cid, ["cat", "out/result.txt"])["log"]["stdout"] == "42\n"
        read = adde.read_file(cid, "out/result.txt")
        assert_shape(read, adde.ReadFileResult)
        assert read["content"] == "42\n"
        listed = adde.list_files(cid, recursive=True)
        assert_shape(listed, adde.ListFilesResult)
        assert [e["name"] for e in listed["entries"]] == ["out", "out/result.txt"]
        exported = adde.export_files(cid, ["out"], tmp_path)
        assert_shape(exported, adde.ExportResult)
        assert (tmp_path / "out" / "result.txt").read_text() == "42\n"
        envs = adde.list_runtime_envs(session="pytest-session")
        assert_shape(envs, adde.EnvList)
        assert [e["container_id"] for e in envs["environments"]] == [cid]
        with pytest.raises(adde.NotFound):
            adde.read_file(cid, "missing.txt")
    finally:
        adde.cleanup_env(env["container_id"])
    once = adde.run_container(BUSYBOX, command="echo once")
    assert_shape(once, adde.RunContainerResult)
    assert once["log"]["stdout"] == "once\n"
    ping = adde.ping()
    assert_shape(ping, adde.PingResult)
    assert ping["ok"] is True
    assert_shape(adde.list_tools(), adde.ToolList)
    assert_shape(adde.list_error_codes(), adde.ErrorCodeList)


def test_cancelling_an_async_run_stops_it_in_the_container(env):
    # The program says its PID (a warm run's command line does not name the file).
    code = "import os, time\nopen('/workspace/long.pid', 'w').write(str(os.getpid()))\ntime.sleep(300)\n"

    def in_container(*argv):
        return subprocess.run(["docker", "exec", env, *argv], capture_output=True, text=True)

    pid = None

    async def main():
        nonlocal pid
        task = asyncio.ensure_future(adde.aio.execute_code_block(env, "long.py", code, timeout_sec=600))
        for _ in range(100):
            pid = in_container("cat", "/workspace/long.pid").stdout.strip() or None
            if pid:
                break
            await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert pid, "the run never started"
    # The cancellation completed after adde had killed the run.
    assert in_container("test", "-e", f"/proc/{pid}").returncode != 0, "the run still runs"


def test_a_code_context_keeps_its_state_sync_and_async(env):
    first = adde.run_code(env, "x = 41\nprint('hi')\nx + 1")
    assert_shape(first, adde.CodeResult)
    assert first["stdout"] == "hi\n"
    assert first["results"][0]["data"]["text/plain"] == "42"
    with adde.Context(env, "nb") as ctx:
        ctx.run("import math\nr = math.sqrt(16)")
        result = ctx.run("r")
        assert result["results"][0]["data"]["text/plain"] == "4.0"
        assert result["execution_count"] == 2
        failed = ctx.run("1 / 0")
        assert failed["error"] is not None and failed["error"]["name"] == "ZeroDivisionError"
    names = [c["name"] for c in adde.context_list(env)["contexts"]]
    assert names == ["default"], "leaving the with block closed the context"

    async def main() -> None:
        async with adde.aio.Context(env, "sh", "bash") as shell:
            await shell.run("cd /tmp; N=3")
            out = await shell.run("echo $N $(pwd)")
            assert out["stdout"] == "3 /tmp\n" and out["exit_code"] == 0

    asyncio.run(main())
    assert adde.run_code(env, "x")["results"][0]["data"]["text/plain"] == "41"
    with pytest.raises(adde.NotFound):
        adde.context_reset(env, "nb")
