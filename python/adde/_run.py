"""Running the binary: the payload goes on stdin (never argv: argv caps one argument at
128 KiB and shows code and secrets in `ps`), stdout is one JSON object decoded as UTF-8
whatever the locale.

stderr is adde's text for people ("adde: error: ...", progress lines). A library must not
print on its host application's stderr, so it is captured: each line goes to the "adde"
logger at DEBUG level, to stderr as well when ADDE_VERBOSE=1, and onto the exception
(`AddeError.stderr`) when the call fails.

A streamed run (`"stream": true` in the payload) prints one JSON event per line as the
program writes (`{"event": "stdout", "data": ...}`) and its result as the last line: the
callbacks get the events as they come, and `stream_async` yields them."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
import queue
import time
from typing import (
    IO,
    Any,
    AsyncIterator,
    Callable,
    Coroutine,
    Dict,
    Generic,
    List,
    Optional,
    ParamSpec,
    Tuple,
    TypeVar,
    cast,
)

from ._errors import AddeError, AddeTimeout, error_from_result
from ._find import find_adde_bin
from ._types import ExecuteResult, OutputEvent, ResultEvent, RunEvent

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("adde")

# How long an interrupted adde gets to stop the run in the container before it is killed.
INTERRUPT_GRACE_SEC = 15.0


@dataclass
class Call(Generic[R]):
    """One tool call: what to run and how long to wait for adde itself. `R` is the type of
    its result."""

    tool: str
    payload: Dict[str, Any]
    timeout: Optional[float]
    bin_path: Optional[str]
    # For a streamed run: called with each output event as it arrives.
    on_output: Optional[Callable[[OutputEvent], None]] = None


def verbose() -> bool:
    """ADDE_VERBOSE=1 (or true/yes) lets adde's stderr through to this process's stderr."""
    return os.environ.get("ADDE_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on")


class _Stderr:
    """adde's stderr for one call: kept for the exception, logged line by line as it comes."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.lines: List[str] = []
        self.echo = verbose()

    def line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        self.lines.append(text)
        logger.debug("adde %s: %s", self.tool, text)
        if self.echo:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)


def _argv(call: Call[Any]) -> List[str]:
    return [find_adde_bin(call.bin_path), call.tool]


def _parse(call: Call[R], returncode: int, stdout: bytes, stderr: str) -> R:
    text = stdout.decode("utf-8", errors="replace").strip()
    try:
        result = json.loads(text) if text else None
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise AddeError(
            f"adde {call.tool} exited {returncode} without a JSON result: {text[:200]!r}"
            + (f"; stderr: {stderr.strip()[-500:]}" if stderr.strip() else ""),
            "bad_output",
            stderr=stderr,
        )
    if returncode != 0 or "error_code" in result:
        raise error_from_result(result, stderr)
    return cast(R, result)


def _timed_out(call: Call[Any], stderr: str) -> AddeTimeout:
    return AddeTimeout(
        f"adde {call.tool} did not answer within {call.timeout:.0f} s and was stopped", "timeout", stderr=stderr
    )


def _not_runnable(e: OSError) -> AddeError:
    return AddeError(f"cannot run adde: {e}", "binary_not_runnable")


def _drain(stream: IO[bytes], err: _Stderr) -> None:
    with stream:
        for raw in stream:
            err.line(raw)


def run_sync(call: Call[R]) -> R:
    data = json.dumps(call.payload).encode("utf-8")
    argv = _argv(call)
    err = _Stderr(call.tool)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise _not_runnable(e) from e
    # stderr is read by its own thread, line by line, so that it is logged as it comes and
    # neither pipe can fill up while the other is being read.
    assert proc.stderr is not None
    reader = threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True)
    reader.start()
    proc.stderr = None  # communicate() handles stdin and stdout only
    try:
        if call.on_output is not None:
            stdout = _relay_sync(call, proc, data, call.on_output)
        else:
            stdout, _ = proc.communicate(data, timeout=call.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        raise _timed_out(call, err.text()) from None
    except BaseException:
        # KeyboardInterrupt and the like: adde handles SIGINT by stopping the run in the
        # container before it exits.
        _interrupt(proc)
        raise
    reader.join(5)
    return _parse(call, proc.returncode, stdout, err.text())


def _event(line: bytes) -> Optional[OutputEvent]:
    """A line of a streamed run's stdout as an output event; None for the result line."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if isinstance(value, dict) and value.get("event") in ("stdout", "stderr") and isinstance(value.get("data"), str):
        return cast(OutputEvent, value)
    return None


def _relay_sync(
    call: Call[Any], proc: subprocess.Popen[bytes], data: bytes, on_output: Callable[[OutputEvent], None]
) -> bytes:
    """Feeds stdin, hands each output event to `on_output` as it arrives, and returns the
    last line (the result) once adde has exited; past the call's timeout, TimeoutExpired."""
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def feed() -> None:
        try:
            stdin.write(data)
        except OSError:
            pass  # adde stopped reading (it failed early): its answer says why
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    lines: "queue.Queue[Optional[bytes]]" = queue.Queue()

    def read() -> None:
        with stdout:
            for line in stdout:
                lines.put(line)
        lines.put(None)

    threading.Thread(target=feed, daemon=True).start()
    threading.Thread(target=read, daemon=True).start()
    deadline = None if call.timeout is None else time.monotonic() + call.timeout
    last = b""
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            raise subprocess.TimeoutExpired(proc.args, call.timeout or 0.0) from None
        if line is None:
            break
        event = _event(line)
        if event is None:
            last = line
        else:
            on_output(event)
    proc.wait()
    return last


def _interrupt(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(INTERRUPT_GRACE_SEC)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _spawn_async(
    call: Call[Any], data: bytes, limit: int = 1 << 16
) -> Tuple["asyncio.subprocess.Process", Coroutine[Any, Any, None], Coroutine[Any, Any, None], _Stderr]:
    """Starts adde for `call`; returns it with the coroutines that feed it `data` and log its
    stderr (the caller awaits both), and that stderr."""
    err = _Stderr(call.tool)
    try:
        proc = await asyncio.create_subprocess_exec(
            *_argv(call), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, limit=limit
        )
    except OSError as e:
        raise _not_runnable(e) from e
    assert proc.stdin is not None and proc.stderr is not None
    stdin, stderr = proc.stdin, proc.stderr

    async def send() -> None:
        try:
            stdin.write(data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # adde stopped reading (it failed early): its answer says why
        finally:
            stdin.close()

    async def drain() -> None:
        async for raw in stderr:
            err.line(raw)

    return proc, send(), drain(), err


async def _interrupt_async(proc: "asyncio.subprocess.Process") -> None:
    """adde handles SIGINT by stopping the run in the container before it exits; killed if
    it takes longer than the grace."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), INTERRUPT_GRACE_SEC)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def run_async(call: Call[R]) -> R:
    if call.on_output is not None:
        async for event in stream_async(cast(Call[ExecuteResult], call)):
            if event["event"] == "result":
                return cast(R, event["result"])
            call.on_output(event)
        raise AddeError(f"adde {call.tool} ended without a result", "bad_output")
    proc, send, drain, err = await _spawn_async(call, json.dumps(call.payload).encode("utf-8"))
    assert proc.stdout is not None
    stdout = proc.stdout

    async def exchange() -> bytes:
        _, out, _ = await asyncio.gather(send, stdout.read(), drain)
        await proc.wait()
        return cast(bytes, out)

    try:
        out = await asyncio.wait_for(exchange(), call.timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise _timed_out(call, err.text()) from None
    except asyncio.CancelledError:
        # The cancellation completes once adde has stopped the run in the container.
        await _interrupt_async(proc)
        raise
    return _parse(call, proc.returncode if proc.returncode is not None else 0, out, err.text())


async def stream_async(call: Call[ExecuteResult]) -> AsyncIterator[RunEvent]:
    """A streamed run's events as they arrive, then `{"event": "result", "result": ...}`.
    Leaving the loop early (or cancelling) interrupts adde, which stops the run in the
    container; a failed call raises its AddeError after the output it printed."""
    data = json.dumps({**call.payload, "stream": True}).encode("utf-8")
    # A line is one event: room for a large chunk of output.
    proc, send, drain, err = await _spawn_async(call, data, limit=1 << 26)
    assert proc.stdout is not None
    stdout = proc.stdout
    helpers = [asyncio.ensure_future(send), asyncio.ensure_future(drain)]
    deadline = None if call.timeout is None else time.monotonic() + call.timeout
    last = b""
    finished = False
    try:
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                line = await asyncio.wait_for(stdout.readline(), left)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                raise _timed_out(call, err.text()) from None
            if not line:
                break
            event = _event(line)
            if event is None:
                last = line
            else:
                yield event
        await proc.wait()
        await asyncio.gather(*helpers)
        finished = True
    finally:
        if not finished:
            # The consumer left early or was cancelled: stop the run, as Ctrl-C does.
            await _interrupt_async(proc)
        for helper in helpers:
            helper.cancel()
    result = _parse(call, proc.returncode if proc.returncode is not None else 0, last, err.text())
    yield ResultEvent(event="result", result=result)


def sync_tool(spec: Callable[P, Call[R]]) -> Callable[P, R]:
    @functools.wraps(spec)
    def tool(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_sync(spec(*args, **kwargs))

    return tool


def async_tool(spec: Callable[P, Call[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @functools.wraps(spec)
    async def tool(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run_async(spec(*args, **kwargs))

    return tool


def stream_tool(spec: Callable[P, Call[ExecuteResult]]) -> Callable[P, AsyncIterator[RunEvent]]:
    """The async iterator of a run's events, with the run function's own arguments."""

    @functools.wraps(spec)
    def tool(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[RunEvent]:
        return stream_async(spec(*args, **kwargs))

    return tool
