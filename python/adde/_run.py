"""Running the binary: the payload goes on stdin (never argv: argv caps one argument at
128 KiB and shows code and secrets in `ps`), stdout is one JSON object decoded as UTF-8
whatever the locale, stderr passes through for progress."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Optional, ParamSpec, TypeVar

from ._errors import AddeError, AddeTimeout, error_from_result
from ._find import find_adde_bin

P = ParamSpec("P")
R = TypeVar("R")
Result = Dict[str, Any]


@dataclass
class Call:
    """One tool call: what to run and how long to wait for adde itself."""

    tool: str
    payload: Dict[str, Any]
    timeout: Optional[float]
    bin_path: Optional[str]


def _argv(call: Call) -> list[str]:
    return [find_adde_bin(call.bin_path), call.tool]


def _parse(call: Call, returncode: int, stdout: bytes) -> Result:
    text = stdout.decode("utf-8", errors="replace").strip()
    try:
        result = json.loads(text) if text else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise AddeError(
            f"adde {call.tool} exited {returncode} without a JSON result: {text[:200]!r}",
            "bad_output",
        )
    if returncode != 0 or "error_code" in result:
        raise error_from_result(result)
    return result


def _timed_out(call: Call) -> AddeTimeout:
    return AddeTimeout(f"adde {call.tool} did not answer within {call.timeout:.0f} s and was stopped", "timeout")


def run_sync(call: Call) -> Result:
    data = json.dumps(call.payload).encode("utf-8")
    try:
        proc = subprocess.run(_argv(call), input=data, stdout=subprocess.PIPE, timeout=call.timeout, check=False)
    except subprocess.TimeoutExpired:
        raise _timed_out(call) from None
    except OSError as e:
        raise AddeError(f"cannot run adde: {e}", "binary_not_runnable") from e
    return _parse(call, proc.returncode, proc.stdout)


async def run_async(call: Call) -> Result:
    data = json.dumps(call.payload).encode("utf-8")
    try:
        proc = await asyncio.create_subprocess_exec(*_argv(call), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except OSError as e:
        raise AddeError(f"cannot run adde: {e}", "binary_not_runnable") from e
    try:
        stdout, _ = await asyncio.wait_for(proc.communicate(data), call.timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise _timed_out(call) from None
    except asyncio.CancelledError:
        # adde handles SIGINT by stopping the run in the container before it exits; the
        # cancellation completes once it has.
        proc.send_signal(2)
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
        raise
    return _parse(call, proc.returncode or 0, stdout)


def sync_tool(spec: Callable[P, Call]) -> Callable[P, Result]:
    @functools.wraps(spec)
    def tool(*args: P.args, **kwargs: P.kwargs) -> Result:
        return run_sync(spec(*args, **kwargs))

    return tool


def async_tool(spec: Callable[P, Call]) -> Callable[P, Awaitable[Result]]:
    @functools.wraps(spec)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> Result:
        return await run_async(spec(*args, **kwargs))

    return tool
