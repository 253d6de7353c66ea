"""The real binary against the real engine (test images from tests/images/build.sh)."""

import asyncio
import subprocess

import pytest

import adde
import adde.aio

PYTHON = "adde-test/python:3"
BUSYBOX = "adde-test/busybox:1"


@pytest.fixture
def env(engine):
    created = adde.create_runtime_env(PYTHON)
    yield created["container_id"]
    try:
        adde.cleanup_env(created["container_id"])
    except adde.NotFound:
        pass


def test_the_agent_loop(env):
    log = adde.execute_code_block(env, "main.py", "import sys\nprint('six times seven', 6 * 7)\nsys.exit(2)\n")["log"]
    assert log["stdout"] == "six times seven 42\n"
    assert log["exit_code"] == 2, "a failing program is a result, not an exception"

    log = adde.execute_code_block(env, "spin.py", "print('going')\nwhile True: pass\n", timeout_sec=1)["log"]
    assert log["timed_out"] is True
    assert log["stdout"] == "going\n"

    tail = adde.get_container_logs(env, tail_lines=1)["log"]
    assert tail["run_id"] == log["run_id"]
    assert tail["stdout"] == "going\n"

    assert adde.cleanup_env(env)["ok"] is True
    with pytest.raises(adde.NotFound):
        adde.execute_code_block(env, "a.py", "print(1)")


def test_bad_input_raises_invalid_input(engine):
    with pytest.raises(adde.InvalidInput) as caught:
        adde.execute_code_block("x", "../escape.py", "print(1)")
    assert caught.value.result["field"] == "filename"


def test_asyncio_runs_in_parallel(env):
    async def main():
        calls = [adde.aio.execute_code_block(env, f"p{i}.py", f"import time\ntime.sleep(1)\nprint({i})\n") for i in range(3)]
        return await asyncio.gather(*calls)

    logs = [r["log"] for r in asyncio.run(main())]
    assert [log["stdout"] for log in logs] == ["0\n", "1\n", "2\n"]


def test_a_build_from_a_context(engine):
    tag = "adde-pytest:ctx"
    context = adde.prepare_build_context(
        {"Dockerfile": f"FROM {BUSYBOX}\nCOPY hello.txt /\nUSER 1000\nCMD [\"cat\", \"/hello.txt\"]\n", "hello.txt": "hi\n"}
    )["context_id"]
    try:
        built = adde.build_image_from_context(context, tag=tag)
        assert built["status"] == "success"
        run = subprocess.run(["docker", "run", "--rm", tag], capture_output=True, text=True, check=True)
        assert run.stdout == "hi\n"
        listed = adde.list_agent_images(filter_tag="adde-pytest")["images"]
        assert any(tag in image["tags"] for image in listed)
        assert adde.delete_image(tag)["ok"] is True
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)

    broken = adde.prepare_build_context({"Dockerfile": f"FROM {BUSYBOX}\nRUN exit 4\nUSER 1\n"})["context_id"]
    with pytest.raises(adde.BuildFailed) as caught:
        adde.build_image_from_context(broken, tag="adde-pytest:broken")
    assert caught.value.result["failed_layer"].endswith("RUN exit 4")
    adde.prune_build_cache()


def test_session_tools(engine, tmp_path):
    env = adde.create_runtime_env(BUSYBOX, session="pytest-session")
    try:
        assert env["session_action"] == "created"
        assert adde.create_runtime_env(BUSYBOX, session="pytest-session")["session_action"] == "reused"
        cid = env["container_id"]
        adde.write_file(cid, "out/result.txt", "42\n")
        assert adde.execute_command(cid, ["cat", "out/result.txt"])["log"]["stdout"] == "42\n"
        assert adde.read_file(cid, "out/result.txt")["content"] == "42\n"
        names = [e["name"] for e in adde.list_files(cid, recursive=True)["entries"]]
        assert names == ["out", "out/result.txt"]
        adde.export_files(cid, ["out"], str(tmp_path))
        assert (tmp_path / "out" / "result.txt").read_text() == "42\n"
        assert [e["container_id"] for e in adde.list_runtime_envs(session="pytest-session")["environments"]] == [cid]
        with pytest.raises(adde.NotFound):
            adde.read_file(cid, "missing.txt")
    finally:
        adde.cleanup_env(env["container_id"])
    log = adde.run_container(BUSYBOX, command="echo once")["log"]
    assert log["stdout"] == "once\n"
    assert adde.ping()["ok"] is True


def test_cancelling_an_async_run_stops_it_in_the_container(env):
    async def main():
        task = asyncio.ensure_future(adde.aio.execute_code_block(env, "long.py", "import time\ntime.sleep(300)\n", timeout_sec=600))
        for _ in range(100):
            top = subprocess.run(["docker", "top", env, "-eo", "args"], capture_output=True, text=True).stdout
            if "long.py" in top:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    # The cancellation completed after adde had killed the run.
    top = subprocess.run(["docker", "top", env, "-eo", "args"], capture_output=True, text=True).stdout
    assert "long.py" not in top, top
