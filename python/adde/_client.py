"""A client for a running `adde serve`: the same functions as the module, sent as JSON lines
over its unix socket instead of starting a process per call (one round trip, no start-up).

    with adde.Client() as client:            # $ADDE_SOCKET, else adde's state dir
        env = client.create_runtime_env("python:3.12-slim")
        log = client.execute_code_block(env["container_id"], "main.py", "print(1)")["log"]

`adde.AsyncClient` has the same methods as coroutines. Each call takes a connection from a
small pool (several threads or tasks may call at once) and carries an id, so that a call that
times out or is cancelled can be cancelled on the server (the run is killed there).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import os
from socket import AF_UNIX, SOCK_STREAM
from socket import socket as Socket
from socket import timeout as SocketTimeout
import threading
from pathlib import Path
from typing import Any, Callable, Coroutine, Dict, Generic, List, Optional, ParamSpec, TypeVar, Union, cast, overload

from . import _tools
from ._errors import AddeError, AddeTimeout, error_from_result
from ._run import Call
from ._types import OutputEvent

P = ParamSpec("P")
R = TypeVar("R")

Output = Callable[[str], None]
SocketPath = Union[str, "os.PathLike[str]"]

# The longest answer line the client reads (a read_file of a large file, in base64).
MAX_LINE = 64 * 1024 * 1024


def default_socket() -> Path:
    """Where `adde serve` listens by default: $ADDE_SOCKET, else serve.sock in adde's state
    directory ($ADDE_STATE_DIR, $XDG_STATE_HOME/adde, ~/.local/state/adde)."""
    if os.environ.get("ADDE_SOCKET"):
        return Path(os.environ["ADDE_SOCKET"])
    if os.environ.get("ADDE_STATE_DIR"):
        root = Path(os.environ["ADDE_STATE_DIR"])
    elif os.environ.get("XDG_STATE_HOME"):
        root = Path(os.environ["XDG_STATE_HOME"]) / "adde"
    else:
        root = Path.home() / ".local/state/adde"
    return root / "serve.sock"


def _request(call: Call[Any], id: int) -> bytes:
    return (json.dumps({"tool": call.tool, "args": call.payload, "id": id}) + "\n").encode("utf-8")


def _outcome(call: Call[R], line: bytes) -> Optional[R]:
    """The result when `line` is the last of a call's answer, else None (an event, passed to
    the call's callback)."""
    try:
        answer = json.loads(line)
    except ValueError:
        raise AddeError(f"adde serve answered with something that is not JSON: {line[:200]!r}", "bad_output") from None
    if not isinstance(answer, dict):
        raise AddeError(f"adde serve answered with {answer!r}", "bad_output")
    answer.pop("id", None)
    if answer.get("event") is not None:
        if call.on_output is not None and answer["event"] in ("stdout", "stderr"):
            call.on_output(cast(OutputEvent, answer))
        return None
    if "error_code" in answer:
        raise error_from_result(answer, "")
    return cast(R, answer)


def _any_call(
    tool: str, args: Optional[Dict[str, Any]], on_stdout: Optional[Output], on_stderr: Optional[Output]
) -> Call[Dict[str, Any]]:
    """A call of any tool by name; streamed when a callback wants the output as it comes."""
    return cast(Call[Dict[str, Any]], _tools._run_call(tool, dict(args or {}), None, on_stdout, on_stderr))


def _not_serving(path: Path, e: OSError) -> AddeError:
    return AddeError(
        f"cannot reach adde serve at {path}: {e}; start it with `adde serve` (or pass socket=)",
        "server_unavailable",
    )


class _SyncTool(Generic[P, R]):
    """One tool as a Client method."""

    def __init__(self, spec: Callable[P, Call[R]]) -> None:
        self.spec = spec

    @overload
    def __get__(self, client: None, owner: type) -> "_SyncTool[P, R]": ...
    @overload
    def __get__(self, client: "Client", owner: type) -> Callable[P, R]: ...
    def __get__(self, client: Optional["Client"], owner: type) -> Any:
        if client is None:
            return self
        spec = self.spec

        @functools.wraps(spec)
        def method(*args: P.args, **kwargs: P.kwargs) -> R:
            return client.send(spec(*args, **kwargs))

        return method


class _AsyncTool(Generic[P, R]):
    """One tool as an AsyncClient method."""

    def __init__(self, spec: Callable[P, Call[R]]) -> None:
        self.spec = spec

    @overload
    def __get__(self, client: None, owner: type) -> "_AsyncTool[P, R]": ...
    @overload
    def __get__(self, client: "AsyncClient", owner: type) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(self, client: Optional["AsyncClient"], owner: type) -> Any:
        if client is None:
            return self
        spec = self.spec

        @functools.wraps(spec)
        async def method(*args: P.args, **kwargs: P.kwargs) -> R:
            return await client.send(spec(*args, **kwargs))

        return method


class Client:
    """Calls a running `adde serve` over its unix socket. Thread-safe."""

    def __init__(self, socket: Optional[SocketPath] = None) -> None:
        self.path = Path(socket) if socket is not None else default_socket()
        self._idle: List[Socket] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def _connection(self) -> Socket:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = Socket(AF_UNIX, SOCK_STREAM)
        try:
            conn.connect(os.fspath(self.path))
        except OSError as e:
            conn.close()
            raise _not_serving(self.path, e) from None
        return conn

    def send(self, call: Call[R]) -> R:
        """Makes one call: a spec from adde's tool functions (what the methods do)."""
        id = next(self._ids)
        conn = self._connection()
        conn.settimeout(call.timeout)
        reader = conn.makefile("rb")
        try:
            conn.sendall(_request(call, id))
            while True:
                line = reader.readline(MAX_LINE)
                if not line:
                    raise AddeError("adde serve closed the connection before answering", "server_unavailable")
                result = _outcome(call, line)
                if result is not None:
                    break
        except SocketTimeout:
            self._abandon(conn, id)
            raise AddeTimeout(f"adde serve did not answer {call.tool} within {call.timeout:.0f} s", "timeout") from None
        except BaseException:
            # KeyboardInterrupt, a callback's exception, a broken connection: the call is
            # cancelled on the server (a run is killed there) and the connection dropped.
            self._abandon(conn, id)
            raise
        finally:
            reader.close()
        with self._lock:
            self._idle.append(conn)
        return result

    def call(
        self,
        tool: str,
        args: Optional[Dict[str, Any]] = None,
        *,
        on_stdout: Optional[Output] = None,
        on_stderr: Optional[Output] = None,
    ) -> Dict[str, Any]:
        """Any tool by name, with its JSON arguments; `on_stdout`/`on_stderr` get a run's
        output as it arrives."""
        return self.send(_any_call(tool, args, on_stdout, on_stderr))

    @staticmethod
    def _abandon(conn: Socket, id: int) -> None:
        try:
            conn.settimeout(1)
            conn.sendall((json.dumps({"cancel": id}) + "\n").encode())
        except OSError:
            pass
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    pull_image = _SyncTool(_tools.pull_image)
    create_runtime_env = _SyncTool(_tools.create_runtime_env)
    execute_code_block = _SyncTool(_tools.execute_code_block)
    get_container_logs = _SyncTool(_tools.get_container_logs)
    cleanup_env = _SyncTool(_tools.cleanup_env)
    prepare_build_context = _SyncTool(_tools.prepare_build_context)
    build_image_from_context = _SyncTool(_tools.build_image_from_context)
    build_image_from_path = _SyncTool(_tools.build_image_from_path)
    build_image_from_git = _SyncTool(_tools.build_image_from_git)
    list_agent_images = _SyncTool(_tools.list_agent_images)
    prune_build_cache = _SyncTool(_tools.prune_build_cache)
    delete_image = _SyncTool(_tools.delete_image)
    execute_command = _SyncTool(_tools.execute_command)
    write_file = _SyncTool(_tools.write_file)
    read_file = _SyncTool(_tools.read_file)
    list_files = _SyncTool(_tools.list_files)
    export_files = _SyncTool(_tools.export_files)
    list_runtime_envs = _SyncTool(_tools.list_runtime_envs)
    reap = _SyncTool(_tools.reap)
    run_container = _SyncTool(_tools.run_container)
    ping = _SyncTool(_tools.ping)
    list_tools = _SyncTool(_tools.list_tools)
    list_error_codes = _SyncTool(_tools.list_error_codes)
    show_policy = _SyncTool(_tools.show_policy)
    pool_create = _SyncTool(_tools.pool_create)
    pool_list = _SyncTool(_tools.pool_list)
    pool_remove = _SyncTool(_tools.pool_remove)
    run_code = _SyncTool(_tools.run_code)
    context_create = _SyncTool(_tools.context_create)
    context_list = _SyncTool(_tools.context_list)
    context_reset = _SyncTool(_tools.context_reset)
    context_close = _SyncTool(_tools.context_close)
    install_dependencies = _SyncTool(_tools.install_dependencies)
    start_process = _SyncTool(_tools.start_process)
    read_process_output = _SyncTool(_tools.read_process_output)
    signal_process = _SyncTool(_tools.signal_process)
    wait_process = _SyncTool(_tools.wait_process)
    list_processes = _SyncTool(_tools.list_processes)


class AsyncClient:
    """Calls a running `adde serve` over its unix socket, for asyncio. Cancelling a call
    cancels it on the server (a run is killed there)."""

    def __init__(self, socket: Optional[SocketPath] = None) -> None:
        self.path = Path(socket) if socket is not None else default_socket()
        self._idle: List[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._ids = itertools.count(1)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._idle:
            return self._idle.pop()
        try:
            return await asyncio.open_unix_connection(os.fspath(self.path), limit=MAX_LINE)
        except OSError as e:
            raise _not_serving(self.path, e) from None

    async def send(self, call: Call[R]) -> R:
        """Makes one call: a spec from adde's tool functions (what the methods do)."""
        id = next(self._ids)
        reader, writer = await self._connection()

        async def exchange() -> R:
            writer.write(_request(call, id))
            await writer.drain()
            while True:
                line = await reader.readline()
                if not line:
                    raise AddeError("adde serve closed the connection before answering", "server_unavailable")
                result = _outcome(call, line)
                if result is not None:
                    return result

        try:
            result = await asyncio.wait_for(exchange(), call.timeout)
        except asyncio.TimeoutError:
            await self._abandon(writer, id)
            raise AddeTimeout(f"adde serve did not answer {call.tool} within {call.timeout:.0f} s", "timeout") from None
        except BaseException:
            await self._abandon(writer, id)
            raise
        self._idle.append((reader, writer))
        return result

    async def call(
        self,
        tool: str,
        args: Optional[Dict[str, Any]] = None,
        *,
        on_stdout: Optional[Output] = None,
        on_stderr: Optional[Output] = None,
    ) -> Dict[str, Any]:
        """Any tool by name, with its JSON arguments; `on_stdout`/`on_stderr` get a run's
        output as it arrives."""
        return await self.send(_any_call(tool, args, on_stdout, on_stderr))

    @staticmethod
    async def _abandon(writer: asyncio.StreamWriter, id: int) -> None:
        try:
            writer.write((json.dumps({"cancel": id}) + "\n").encode())
            await asyncio.wait_for(writer.drain(), 1)
        except (OSError, asyncio.TimeoutError):
            pass
        writer.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    pull_image = _AsyncTool(_tools.pull_image)
    create_runtime_env = _AsyncTool(_tools.create_runtime_env)
    execute_code_block = _AsyncTool(_tools.execute_code_block)
    get_container_logs = _AsyncTool(_tools.get_container_logs)
    cleanup_env = _AsyncTool(_tools.cleanup_env)
    prepare_build_context = _AsyncTool(_tools.prepare_build_context)
    build_image_from_context = _AsyncTool(_tools.build_image_from_context)
    build_image_from_path = _AsyncTool(_tools.build_image_from_path)
    build_image_from_git = _AsyncTool(_tools.build_image_from_git)
    list_agent_images = _AsyncTool(_tools.list_agent_images)
    prune_build_cache = _AsyncTool(_tools.prune_build_cache)
    delete_image = _AsyncTool(_tools.delete_image)
    execute_command = _AsyncTool(_tools.execute_command)
    write_file = _AsyncTool(_tools.write_file)
    read_file = _AsyncTool(_tools.read_file)
    list_files = _AsyncTool(_tools.list_files)
    export_files = _AsyncTool(_tools.export_files)
    list_runtime_envs = _AsyncTool(_tools.list_runtime_envs)
    reap = _AsyncTool(_tools.reap)
    run_container = _AsyncTool(_tools.run_container)
    ping = _AsyncTool(_tools.ping)
    list_tools = _AsyncTool(_tools.list_tools)
    list_error_codes = _AsyncTool(_tools.list_error_codes)
    show_policy = _AsyncTool(_tools.show_policy)
    pool_create = _AsyncTool(_tools.pool_create)
    pool_list = _AsyncTool(_tools.pool_list)
    pool_remove = _AsyncTool(_tools.pool_remove)
    run_code = _AsyncTool(_tools.run_code)
    context_create = _AsyncTool(_tools.context_create)
    context_list = _AsyncTool(_tools.context_list)
    context_reset = _AsyncTool(_tools.context_reset)
    context_close = _AsyncTool(_tools.context_close)
    install_dependencies = _AsyncTool(_tools.install_dependencies)
    start_process = _AsyncTool(_tools.start_process)
    read_process_output = _AsyncTool(_tools.read_process_output)
    signal_process = _AsyncTool(_tools.signal_process)
    wait_process = _AsyncTool(_tools.wait_process)
    list_processes = _AsyncTool(_tools.list_processes)
