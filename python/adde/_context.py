"""`adde.Context` and `adde.aio.Context`: a persistent code context of an environment as an
object, whose `.run()` cells keep their state (Python globals and imports, or a shell's
directory, variables and functions)."""

from __future__ import annotations

from types import TracebackType
from typing import Optional, Type

from . import _tools
from ._run import Call, run_async, run_sync
from ._tools import BinPath
from ._types import CodeResult, ContextClosed, ContextInfo, Language


class _Base:
    def __init__(
        self,
        container_id: str,
        name: str = "default",
        language: Language = "python",
        *,
        bin_path: BinPath = None,
    ) -> None:
        self.container_id = container_id
        self.name = name
        self.language: Language = language
        self.bin_path = bin_path

    def _run_call(
        self,
        code: str,
        timeout_sec: float,
        svg: Optional[bool],
        output_dir: Optional[str],
        max_output_bytes: Optional[int],
    ) -> Call[CodeResult]:
        return _tools.run_code(
            self.container_id,
            code,
            self.language,
            self.name,
            timeout_sec,
            svg=svg,
            output_dir=output_dir,
            max_output_bytes=max_output_bytes,
            bin_path=self.bin_path,
        )


class Context(_Base):
    """A code context of an environment (made by the first cell):

        with adde.Context(env["container_id"]) as ctx:
            ctx.run("import pandas as pd\\ndf = pd.read_csv('data.csv')")
            print(ctx.run("df.describe()")["results"][0]["data"]["text/plain"])

    Leaving the `with` block closes the context (the environment stays)."""

    def run(
        self,
        code: str,
        timeout_sec: float = 30,
        *,
        svg: Optional[bool] = None,
        output_dir: Optional[str] = None,
        max_output_bytes: Optional[int] = None,
    ) -> CodeResult:
        """Runs a cell; see `adde.run_code`."""
        return run_sync(self._run_call(code, timeout_sec, svg, output_dir, max_output_bytes))

    def reset(self) -> ContextInfo:
        """Restarts the context's interpreter: a fresh state, the same name."""
        return run_sync(_tools.context_reset(self.container_id, self.name, bin_path=self.bin_path))

    def close(self) -> ContextClosed:
        """Ends the context and everything it runs."""
        return run_sync(_tools.context_close(self.container_id, self.name, bin_path=self.bin_path))

    def __enter__(self) -> "Context":
        return self

    def __exit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        try:
            self.close()
        except Exception:
            # Never made (no cell ran), or the environment is gone: nothing to close.
            pass


class AsyncContext(_Base):
    """`Context` for asyncio (`adde.aio.Context`): `await ctx.run(...)`, `async with`."""

    async def run(
        self,
        code: str,
        timeout_sec: float = 30,
        *,
        svg: Optional[bool] = None,
        output_dir: Optional[str] = None,
        max_output_bytes: Optional[int] = None,
    ) -> CodeResult:
        """Runs a cell; see `adde.run_code`."""
        return await run_async(self._run_call(code, timeout_sec, svg, output_dir, max_output_bytes))

    async def reset(self) -> ContextInfo:
        return await run_async(_tools.context_reset(self.container_id, self.name, bin_path=self.bin_path))

    async def close(self) -> ContextClosed:
        return await run_async(_tools.context_close(self.container_id, self.name, bin_path=self.bin_path))

    async def __aenter__(self) -> "AsyncContext":
        return self

    async def __aexit__(
        self,
        kind: Optional[Type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        try:
            await self.close()
        except Exception:
            pass
