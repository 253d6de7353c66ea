"""adde's tools for LangChain/LangGraph agents (needs the `langchain` extra:
`pip install "adde[langchain]"`).

    from adde.langchain import adde_tools
    tools = adde_tools()            # create_runtime_env, execute_code_block, ...
    agent = create_react_agent(model, tools)

Each tool returns adde's JSON result as a string the model can read; errors come back as
`{"error": ..., "error_code": ...}` rather than exceptions, so the agent can react to them.
"""

from __future__ import annotations

import functools
import json
from typing import Any, List, Optional

try:
    from langchain_core.tools import StructuredTool
except ImportError as e:  # pragma: no cover - depends on the extra
    raise ImportError('adde.langchain needs langchain-core: pip install "adde[langchain]"') from e

from . import _tools
from ._errors import AddeError
from ._run import run_async, run_sync

# The tools an agent loop needs; builds and housekeeping are left to the application.
AGENT_TOOLS = [
    "create_runtime_env",
    "execute_code_block",
    "execute_command",
    "write_file",
    "read_file",
    "list_files",
    "get_container_logs",
    "cleanup_env",
]


# The model's arguments go to adde as they are: adde validates them and answers with a JSON
# error the model can read, where a Python signature would raise a TypeError.
def _call(tool: str, bin_path: Optional[str], **fields: Any) -> str:
    try:
        return json.dumps(run_sync(_tools.call(tool, fields, bin_path)))
    except AddeError as e:
        return json.dumps(e.result)


async def _acall(tool: str, bin_path: Optional[str], **fields: Any) -> str:
    try:
        return json.dumps(await run_async(_tools.call(tool, fields, bin_path)))
    except AddeError as e:
        return json.dumps(e.result)


def adde_tools(names: Optional[List[str]] = None, bin_path: Optional[str] = None) -> List[StructuredTool]:
    """LangChain tools for the named adde tools (default: AGENT_TOOLS), sync and async, each
    with the input JSON Schema adde itself publishes."""
    schemas = {t["name"]: t for t in run_sync(_tools.list_tools(bin_path=bin_path))["tools"]}
    tools = []
    for name in names or AGENT_TOOLS:
        if name not in schemas:
            raise AddeError(f"adde has no tool {name}", "unknown_tool")
        tools.append(
            StructuredTool.from_function(
                func=functools.partial(_call, name, bin_path),
                coroutine=functools.partial(_acall, name, bin_path),
                name=name,
                description=schemas[name]["description"],
                args_schema=schemas[name]["input_schema"],
            )
        )
    return tools
