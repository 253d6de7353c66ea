"""A typed user of the package: `mypy --strict` must pass on this file (tests/test_typing.py).
It is never run: it only has to type-check."""

from __future__ import annotations

import asyncio
from typing import List, Optional

import adde
import adde.aio
from adde.langchain import adde_tools


def solve(code: str) -> str:
    env: adde.CreatedEnv = adde.create_runtime_env(
        "python:3.12-slim", dependencies=["requests"], memory="1g", cpus=1, pull="never", ttl_sec=600
    )
    cid: str = env["container_id"]
    memory_bytes: int = env["limits"]["memory_bytes"]
    try:
        log: adde.RunLog = adde.execute_code_block(cid, "main.py", code, timeout_sec=5)["log"]
        if log["timed_out"] or log["signal"] is not None:
            return f"stopped after {log['duration_ms']} ms ({memory_bytes} bytes)"
        adde.write_file(cid, "data.txt", "x", mode="0600")
        text: str = adde.read_file(cid, "data.txt", line_count=10)["content"]
        names: List[str] = [e["name"] for e in adde.list_files(cid, recursive=True)["entries"]]
        runs = adde.get_container_logs(cid, all=True).get("runs", [])
        return log["stdout"] + text + ",".join(names) + str(len(runs))
    except adde.AddeError as e:
        return e.stderr + e.error_code
    finally:
        removed: List[str] = adde.cleanup_env(cid)["removed"]
        print(removed)


async def in_parallel(cid: str) -> List[int]:
    tasks = [asyncio.create_task(adde.aio.execute_code_block(cid, f"t{i}.py", f"print({i})")) for i in range(3)]
    command = asyncio.create_task(adde.aio.execute_command(cid, ["echo", "hi"], workdir="/tmp"))
    codes = [(await t)["log"]["exit_code"] for t in tasks]
    codes.append((await command)["log"]["exit_code"])
    return codes


def housekeeping() -> float:
    info: adde.PingResult = adde.ping()
    built: adde.BuildResult = adde.build_image_from_path("ctx/", tag="agent:1", no_cache=True, network="none")
    pulled: adde.PullResult = adde.pull_image("busybox:1", platform="linux/amd64")
    one_shot = adde.run_container("busybox:1", command="echo once", timeout_sec=10)
    codes = [c["error_code"] for c in adde.list_error_codes()["error_codes"]]
    print(info["engine_version"], pulled["id"], one_shot["log"]["stdout"], codes, adde.reap()["removed_folders"])
    return built["size_mb"] + adde.prune_build_cache(older_than_hrs=24)["space_reclaimed_mb"]


def agent_tools() -> int:
    return len(adde_tools(container_id="abc")) + len(adde_tools(create_options={"memory": "1g"}))


def through_serve(cid: str) -> int:
    with adde.Client() as client:
        log: adde.RunLog = client.execute_code_block(cid, "main.py", "print(1)", timeout_sec=5)["log"]
        streamed: List[str] = []
        client.call("execute_command", {"container_id": cid, "command": "ls"}, on_stdout=streamed.append)
        return log["exit_code"]


async def through_serve_async(cid: str) -> int:
    async with adde.AsyncClient("/run/adde.sock") as client:
        task = asyncio.create_task(client.execute_command(cid, ["echo", "hi"]))
        return (await task)["log"]["exit_code"]


def streamed_and_background(cid: str) -> str:
    chunks: List[str] = []
    log = adde.execute_code_block(cid, "a.py", "print(1)", on_stdout=chunks.append, on_stderr=print)["log"]
    started: adde.ProcessInfo = adde.start_process(cid, ["python3", "-m", "http.server"], timeout_sec=600)
    out: adde.ProcessOutput = adde.read_process_output(cid, started["process_id"], stdout_offset=0)
    sent: bool = adde.signal_process(cid, started["process_id"], "SIGINT")["sent"]
    ended: Optional[int] = adde.wait_process(cid, started["process_id"], 5)["exit_code"]
    installed: adde.InstallResult = adde.install_dependencies(cid, ["six"], "pip")
    running = [p["process_id"] for p in adde.list_processes(cid)["processes"] if p["state"] == "running"]
    return log["stdout"] + out["stdout"] + str(sent) + str(ended) + installed["package_manager"] + ",".join(running)


async def streamed(cid: str) -> List[str]:
    data: List[str] = []
    async for event in adde.aio.stream_command(cid, "ls", timeout_sec=5):
        if event["event"] == "result":
            data.append(event["result"]["log"]["stdout"])
        else:
            data.append(event["data"])
    return data
