"""adde's tools for LangChain and LangGraph agents (needs the `langchain` extra:
`pip install "adde[langchain]"`).

    from adde.langchain import adde_tools
    from langchain.agents import create_agent

    agent = create_agent(model, adde_tools())             # the agent makes its environments
    agent = create_agent(model, adde_tools(container_id=cid))   # or works in yours

By default the tools are a curated agent set: create an environment, run code, run a
command, run cells in a persistent code context (and list and reset contexts), write, read
and list files, read the logs, install packages, run background processes (start, read their
output, signal, wait, list), clean up. Their schemas are the binary's
own JSON Schemas less the operator's fields (mounts, network, ports, limits, runtime, user,
labels, ...): the model cannot set those, and a call that sends one anyway is refused. The
operator sets them for every environment the agent creates with `create_options`. An agent
acts only on the environments its tool set created (or the one it is bound to). `full=True`
gives every adde tool with every field.

Bound to one environment (`container_id=` or `session=`), the tools have no `container_id`
field: it is filled in, and the create and cleanup tools are left out.

Each tool returns adde's JSON result as text the model can read; a failure comes back as
`{"error": ..., "error_code": ...}` rather than an exception, so the agent can react to it.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set

try:
    from langchain_core.tools import BaseTool, StructuredTool
except ImportError as e:  # pragma: no cover - depends on the extra
    raise ImportError('adde.langchain needs langchain-core: pip install "adde[langchain]"') from e

from . import _tools
from ._errors import AddeError
from ._run import run_async, run_sync
from ._tools import BinPath
from ._types import ToolInfo

__all__ = ["AGENT_FIELDS", "AGENT_TOOLS", "BOUND_TOOLS", "adde_tools"]

# The curated agent set, and for each tool the fields the model may set. Everything else is
# the operator's: resources, network, ports, mounts, runtime, user, labels, package indexes,
# and cleanup_env's `all`.
AGENT_FIELDS: Dict[str, List[str]] = {
    "create_runtime_env": ["image", "dependencies", "env_vars"],
    "execute_code_block": ["container_id", "filename", "code_content", "timeout_sec", "command"],
    "execute_command": ["container_id", "command", "timeout_sec", "workdir", "env", "stdin"],
    "run_code": ["container_id", "code", "language", "context", "timeout_sec"],
    "context_list": ["container_id"],
    "context_reset": ["container_id", "context"],
    "write_file": ["container_id", "path", "content", "encoding", "mode"],
    "read_file": ["container_id", "path", "offset", "line_count", "max_bytes", "encoding"],
    "list_files": ["container_id", "path", "recursive"],
    "get_container_logs": ["container_id", "tail_lines", "run_id", "all"],
    "install_dependencies": ["container_id", "packages", "manager"],
    "start_process": ["container_id", "command", "workdir", "env", "timeout_sec"],
    "read_process_output": ["container_id", "process_id", "stdout_offset", "stderr_offset", "max_bytes"],
    "signal_process": ["container_id", "process_id", "signal"],
    "wait_process": ["container_id", "process_id", "timeout_sec"],
    "list_processes": ["container_id"],
    "cleanup_env": ["container_id"],
}
AGENT_TOOLS: List[str] = list(AGENT_FIELDS)
# Bound to one environment, the agent neither creates nor removes environments.
BOUND_TOOLS: List[str] = [n for n in AGENT_TOOLS if n not in ("create_runtime_env", "cleanup_env")]

# Fields the agent set needs although the binary's schema makes them optional.
_REQUIRED = {"cleanup_env": ["container_id"]}


def _inline_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    """The schema with its `$ref`s to `#/$defs/...` replaced by their definitions."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[len("#/$defs/") :] in defs:
            merged = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline_refs(defs[ref[len("#/$defs/") :]], defs), **_inline_refs(merged, defs)}
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def tool_schema(info: ToolInfo, fields: Optional[Sequence[str]], bound: bool) -> Dict[str, Any]:
    """A tool's input schema for a model: the binary's own, self-contained (no `$ref`),
    restricted to `fields` when given, without `container_id` when bound."""
    source = copy.deepcopy(info["input_schema"])
    schema: Dict[str, Any] = _inline_refs(source, source.get("$defs", {}))
    properties: Dict[str, Any] = schema.get("properties", {})
    keep = [f for f in properties if (fields is None or f in fields) and not (bound and f == "container_id")]
    schema["properties"] = {f: properties[f] for f in keep}
    required = [f for f in schema.get("required", []) if f in keep]
    required += [f for f in _REQUIRED.get(info["name"], []) if f in keep and f not in required and fields is not None]
    schema["required"] = required
    schema["type"] = "object"
    schema.pop("$schema", None)
    schema["title"] = info["name"]
    return schema


class _Scope:
    """The environments a tool set may act on: the one it is bound to, or those it created
    (by id and name). None means any (full=True)."""

    def __init__(self, bound: Optional[str], restricted: bool) -> None:
        self.bound = bound
        self.restricted = restricted
        self.created: Set[str] = set()

    def check(self, payload: Dict[str, Any]) -> None:
        cid = payload.get("container_id")
        if not self.restricted or cid is None or self.bound is not None:
            return
        if not any(cid == known or (len(cid) >= 12 and known.startswith(cid)) for known in self.created):
            raise AddeError(
                f"container {cid} was not created by this agent's create_runtime_env; "
                "create an environment first and use the container_id it returns",
                "not_managed",
                {"error": "not created by this agent", "error_code": "not_managed", "field": "container_id"},
            )

    def record(self, tool: str, result: Mapping[str, Any]) -> None:
        if tool == "create_runtime_env":
            for key in ("container_id", "name"):
                if isinstance(result.get(key), str):
                    self.created.add(result[key])


def _make_tool(
    info: ToolInfo,
    fields: Optional[Sequence[str]],
    fixed: Mapping[str, Any],
    scope: _Scope,
    bin_path: BinPath,
) -> BaseTool:
    name = info["name"]
    schema = tool_schema(info, fields, scope.bound is not None)
    allowed = set(schema["properties"])

    def prepare(args: Dict[str, Any]) -> Dict[str, Any]:
        # The schema is advice to the model; this is the rule. A field the model may not set
        # is refused, not dropped, so that it learns why.
        for key in args:
            if key not in allowed:
                message = f"{name} takes no field {key!r} here; its fields are: {', '.join(sorted(allowed))}"
                raise AddeError(
                    message, "invalid_payload", {"error": message, "error_code": "invalid_payload", "field": key}
                )
        payload = {k: v for k, v in args.items() if v is not None}
        payload.update(fixed)
        scope.check(payload)
        return payload

    def answer(result: Mapping[str, Any]) -> str:
        scope.record(name, result)
        return json.dumps(result)

    def run(**args: Any) -> str:
        try:
            return answer(run_sync(_tools.call(name, prepare(args), bin_path)))
        except AddeError as e:
            return json.dumps(e.result)

    async def arun(**args: Any) -> str:
        try:
            return answer(await run_async(_tools.call(name, prepare(args), bin_path)))
        except AddeError as e:
            return json.dumps(e.result)

    run.__name__ = arun.__name__ = name
    run.__doc__ = arun.__doc__ = info["description"]
    return StructuredTool.from_function(
        func=run, coroutine=arun, name=name, description=info["description"], args_schema=schema
    )


def adde_tools(
    names: Optional[Sequence[str]] = None,
    bin_path: BinPath = None,
    *,
    container_id: Optional[str] = None,
    session: Optional[str] = None,
    image: Optional[str] = None,
    create_options: Optional[Mapping[str, Any]] = None,
    full: bool = False,
) -> List[BaseTool]:
    """LangChain tools (sync and async) for adde, with adde's own input schemas.

    - `names`: which tools (default: the curated AGENT_TOOLS, or BOUND_TOOLS when bound).
    - `container_id`: bind every tool to this environment; `session` (with `image` to create
      it when it does not exist yet, through create_runtime_env's get-or-create) binds to
      the session's environment.
    - `create_options`: create_runtime_env fields the operator sets for every environment the
      agent creates (memory, cpus, network, mounts, ...); they win over the model's.
    - `full`: every field of every tool, and no restriction to the tool set's own
      environments. Meant for trusted callers, not for a model.
    """
    options = dict(create_options or {})
    if session is not None:
        if container_id is not None:
            raise ValueError("give container_id or session, not both")
        container_id = _resolve_session(session, image, options, bin_path)
    elif image is not None:
        options.setdefault("image", image)
    infos: Dict[str, ToolInfo] = {t["name"]: t for t in run_sync(_tools.list_tools(bin_path=bin_path))["tools"]}
    bound = container_id is not None
    if names is None:
        names = list(infos) if full else (BOUND_TOOLS if bound else AGENT_TOOLS)
    scope = _Scope(container_id, restricted=not full)
    tools: List[BaseTool] = []
    for name in names:
        if name not in infos:
            raise AddeError(f"adde has no tool {name}", "unknown_tool")
        fields: Optional[Sequence[str]] = None if full else AGENT_FIELDS.get(name)
        if fields is None and not full:
            raise ValueError(f"{name} is not in the agent set ({', '.join(AGENT_TOOLS)}); pass full=True for it")
        fixed: Dict[str, Any] = {}
        properties = infos[name]["input_schema"].get("properties", {})
        if bound and "container_id" in properties:
            fixed["container_id"] = container_id
        if name == "create_runtime_env":
            fixed.update(options)
            if fields is not None:
                fields = [f for f in fields if f not in fixed]
        tools.append(_make_tool(infos[name], fields, fixed, scope, bin_path))
    return tools


def _resolve_session(session: str, image: Optional[str], options: Dict[str, Any], bin_path: BinPath) -> str:
    if image is not None or "image" in options:
        payload = {**options, "session": session}
        payload.setdefault("image", image)
        created = run_sync(_tools.call("create_runtime_env", payload, bin_path))
        return str(created["container_id"])
    envs = run_sync(_tools.list_runtime_envs(session=session, bin_path=bin_path))["environments"]
    if not envs:
        raise AddeError(f"no environment for session {session!r}; pass image= to create it", "container_not_found")
    return envs[0]["container_id"]
