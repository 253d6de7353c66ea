"""The LangChain tools without an engine: the curated schemas (from the real binary's JSON
Schemas), binding to one environment, refusing the operator's fields, the scope of an
unbound tool set, and a LangGraph ToolNode running them (the functools.partial crash)."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
from conftest import need

need("langchain_core")

from langchain_core.messages import AIMessage, ToolMessage  # noqa: E402

import adde  # noqa: E402
from adde.langchain import AGENT_TOOLS, BOUND_TOOLS, adde_tools  # noqa: E402

OPERATOR_FIELDS = [
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
    "read_only_rootfs",
    "pip_index_url",
    "install_network",
    "ttl_sec",
    "use_image_cmd",
    "all",
]


@pytest.fixture
def agent_adde(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., None]:
    """The fake binary answering list_tools with the real binary's schemas, echoing every
    other call's payload."""
    monkeypatch.delenv("ADDE_BIN", raising=False)
    schemas = tmp_path / "tools.json"
    schemas.write_text(json.dumps(adde.list_tools()))
    monkeypatch.setenv("ADDE_BIN", str(Path(__file__).resolve().parent / "fake_adde.py"))
    monkeypatch.setenv("FAKE_ADDE_TOOLS", str(schemas))
    monkeypatch.setenv("FAKE_ADDE_MODE", "agent")

    def mode(name: str) -> None:
        monkeypatch.setenv("FAKE_ADDE_MODE", name)

    return mode


def by_name(tools: list[Any]) -> Dict[str, Any]:
    return {t.name: t for t in tools}


def test_the_default_set_is_curated_and_hides_the_operators_fields(agent_adde: Callable[..., None]) -> None:
    tools = by_name(adde_tools())
    assert list(tools) == AGENT_TOOLS
    create = tools["create_runtime_env"].args_schema
    assert set(create["properties"]) == {"image", "dependencies", "env_vars"}
    assert create["required"] == ["image"]
    assert tools["cleanup_env"].args_schema["properties"].keys() == {"container_id"}
    assert tools["cleanup_env"].args_schema["required"] == ["container_id"]
    for name, tool in tools.items():
        schema = tool.args_schema
        assert "$ref" not in json.dumps(schema), name
        assert tool.description, name
        if name not in ("create_runtime_env",):
            assert "container_id" in schema["required"], name
        for field in OPERATOR_FIELDS:
            if name == "get_container_logs" and field == "all":
                continue  # every run of the agent's own environment
            assert field not in schema["properties"], (name, field)


def test_full_gives_every_tool_and_field(agent_adde: Callable[..., None]) -> None:
    tools = by_name(adde_tools(full=True))
    assert set(tools) == {
        t["name"] for t in json.loads(Path(__import__("os").environ["FAKE_ADDE_TOOLS"]).read_text())["tools"]
    }
    assert {"mounts", "memory", "runtime", "user"} <= set(tools["create_runtime_env"].args_schema["properties"])
    assert "all" in tools["cleanup_env"].args_schema["properties"]


def test_a_field_the_model_may_not_set_is_refused(agent_adde: Callable[..., None]) -> None:
    create = by_name(adde_tools())["create_runtime_env"]
    answer = json.loads(create.invoke({"image": "python:3.12-slim", "mounts": [{"source": "/", "target": "/host"}]}))
    assert answer["error_code"] == "invalid_payload"
    assert answer["field"] == "mounts"
    assert "image" in answer["error"], "the error lists the fields it takes"


def test_the_operator_sets_create_options(agent_adde: Callable[..., None]) -> None:
    create = by_name(adde_tools(create_options={"memory": "2g", "network": False}))["create_runtime_env"]
    answer = json.loads(create.invoke({"image": "python:3.12-slim", "dependencies": ["numpy"]}))
    assert answer["payload"] == {
        "image": "python:3.12-slim",
        "dependencies": ["numpy"],
        "memory": "2g",
        "network": False,
    }
    # An image the operator fixes is no longer the model's to choose.
    create = by_name(adde_tools(image="adde-test/python:3"))["create_runtime_env"]
    assert "image" not in create.args_schema["properties"]
    assert json.loads(create.invoke({}))["payload"]["image"] == "adde-test/python:3"


def test_bound_tools_have_no_container_id_and_fill_it_in(agent_adde: Callable[..., None]) -> None:
    tools = by_name(adde_tools(container_id="env-1"))
    assert list(tools) == BOUND_TOOLS
    for name, tool in tools.items():
        assert "container_id" not in tool.args_schema["properties"], name
        assert "container_id" not in tool.args_schema.get("required", []), name
    answer = json.loads(tools["execute_code_block"].invoke({"filename": "main.py", "code_content": "print(1)"}))
    assert answer["payload"]["container_id"] == "env-1"
    answer = json.loads(tools["read_file"].invoke({"path": "main.py", "container_id": "another"}))
    assert answer["error_code"] == "invalid_payload" and answer["field"] == "container_id"


def test_an_unbound_set_acts_only_on_the_environments_it_created(agent_adde: Callable[..., None]) -> None:
    tools = by_name(adde_tools())
    run = tools["execute_command"]
    refused = json.loads(run.invoke({"container_id": "someone-elses", "command": "ls"}))
    assert refused["error_code"] == "not_managed"
    created = json.loads(tools["create_runtime_env"].invoke({"image": "python:3.12-slim"}))
    for ref in (created["container_id"], created["container_id"][:12], created["name"]):
        assert json.loads(run.invoke({"container_id": ref, "command": "ls"}))["payload"]["container_id"] == ref
    # full=True is for trusted callers: no such scope.
    anything = by_name(adde_tools(full=True))["execute_command"]
    assert json.loads(anything.invoke({"container_id": "someone-elses", "command": "ls"}))["payload"]["command"] == "ls"


def test_tools_are_plain_functions_with_real_signatures(agent_adde: Callable[..., None]) -> None:
    for tool in adde_tools():
        for fn in (tool.func, tool.coroutine):
            assert inspect.isfunction(fn) or inspect.iscoroutinefunction(fn), fn
            typing.get_type_hints(fn)  # what LangGraph's ToolNode does (functools.partial failed here)
            assert fn.__name__ == tool.name


def test_a_langgraph_tool_node_runs_them(agent_adde: Callable[..., None]) -> None:
    need("langgraph")
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode(adde_tools(container_id="env-1")))
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    call = {"name": "execute_command", "args": {"command": ["echo", "hi"]}, "id": "call-1", "type": "tool_call"}
    out = graph.compile().invoke({"messages": [AIMessage(content="", tool_calls=[call])]})
    message = out["messages"][-1]
    assert isinstance(message, ToolMessage)
    assert json.loads(str(message.content))["payload"] == {"container_id": "env-1", "command": ["echo", "hi"]}


def test_a_session_binding_needs_an_environment_or_an_image(agent_adde: Callable[..., None]) -> None:
    # The fake answers list_runtime_envs with its echo (no environments key): use the error path.
    agent_adde("tools")
    with pytest.raises(adde.AddeError):
        adde_tools(session="nobody")
    with pytest.raises(ValueError):
        adde_tools(session="s", container_id="c")
