"""LangChain/LangGraph: the tools in a real agent graph, on the versions pip resolves, with a
scripted chat model that emits tool calls and reads the tools' answers.

The model's loop is the one adde is for: create an environment, run code that fails, read
the error, run the fixed code, clean up."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any, Callable, List, Optional, Sequence

import pytest
from conftest import need

need("langchain_core")
need("langgraph")

from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402

import adde  # noqa: E402
from adde.langchain import AGENT_TOOLS, BOUND_TOOLS, adde_tools  # noqa: E402

PYTHON = "adde-test/python:3"
BUGGY = "total = sum(range(7))\nprint(total * sixx)\n"
FIXED = "total = sum(range(7))\nprint(total * 2)\n"


class ScriptedModel(BaseChatModel):
    """A chat model whose next message is a function of the conversation so far: enough to
    drive an agent graph through tool calls, and to read what the tools answered."""

    step: Callable[[List[BaseMessage]], AIMessage]
    bound_tools: List[str] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self, messages: List[BaseMessage], stop: Optional[List[str]] = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.step(list(messages)))])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> "ScriptedModel":
        self.bound_tools = [getattr(t, "name", None) or t["name"] for t in tools]
        return self


def call(name: str, args: dict[str, Any], n: int) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call-{n}", "type": "tool_call"}])


def coder(bound: bool) -> Callable[[List[BaseMessage]], AIMessage]:
    """The agent's policy. Unbound it creates and removes its environment; it always reads
    the last tool answer to choose the next step."""

    def step(messages: List[BaseMessage]) -> AIMessage:
        answers = [m for m in messages if isinstance(m, ToolMessage)]
        n = len(answers)
        if not answers:
            if bound:
                return call("execute_code_block", {"filename": "main.py", "code_content": BUGGY}, n)
            return call("create_runtime_env", {"image": PYTHON}, n)
        last = json.loads(str(answers[-1].content))
        if answers[-1].name == "create_runtime_env":
            cid = last["container_id"]
            return call("execute_code_block", {"container_id": cid, "filename": "main.py", "code_content": BUGGY}, n)
        if answers[-1].name == "execute_code_block":
            log = last["log"]
            target = {} if bound else {"container_id": log["container_id"]}
            if log["exit_code"] != 0:
                # Reading the error: the traceback names the undefined variable.
                assert "NameError" in log["stderr"] and "sixx" in log["stderr"], log
                return call("execute_code_block", {**target, "filename": "main.py", "code_content": FIXED}, n)
            if bound:
                return AIMessage(content=f"The answer is {log['stdout'].strip()}")
            return call("cleanup_env", {"container_id": log["container_id"]}, n)
        if answers[-1].name == "cleanup_env":
            assert last["ok"] is True, last
            return AIMessage(content="Done: the answer was 42, and the environment is removed.")
        raise AssertionError(f"unexpected tool answer {answers[-1]}")

    return step


def create_agent_current(model: BaseChatModel, tools: Sequence[Any]) -> Any:
    """What langgraph 1.x recommends: langchain.agents.create_agent."""
    agents = need("langchain.agents")
    return agents.create_agent(model, list(tools))


def create_react_agent_deprecated(model: BaseChatModel, tools: Sequence[Any]) -> Any:
    """langgraph.prebuilt.create_react_agent: deprecated but still what many people call."""
    from langgraph.prebuilt import create_react_agent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(model, list(tools))


BUILDERS = [create_agent_current, create_react_agent_deprecated]


def tool_calls(messages: List[BaseMessage]) -> List[str]:
    return [c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda b: b.__name__)
def test_an_agent_graph_fixes_its_code_on_the_real_engine(engine: None, build: Callable[..., Any]) -> None:
    model = ScriptedModel(step=coder(bound=False))
    agent = build(model, adde_tools())
    out = agent.invoke({"messages": [HumanMessage("Print 21 times 2 using Python.")]})
    assert model.bound_tools == AGENT_TOOLS
    messages = out["messages"]
    assert tool_calls(messages) == ["create_runtime_env", "execute_code_block", "execute_code_block", "cleanup_env"]
    runs = [
        json.loads(str(m.content))["log"]
        for m in messages
        if isinstance(m, ToolMessage) and m.name == "execute_code_block"
    ]
    assert runs[0]["exit_code"] == 1 and "NameError" in runs[0]["stderr"]
    assert runs[1]["exit_code"] == 0 and runs[1]["stdout"] == "42\n"
    assert messages[-1].content.startswith("Done")
    cid = runs[0]["container_id"]
    with pytest.raises(adde.NotFound):
        adde.execute_code_block(cid, "a.py", "print(1)")


def test_an_async_agent_bound_to_one_environment(engine: None) -> None:
    env = adde.create_runtime_env(PYTHON)
    try:
        model = ScriptedModel(step=coder(bound=True))
        tools = adde_tools(container_id=env["container_id"])
        agent = create_agent_current(model, tools)
        out = asyncio.run(agent.ainvoke({"messages": [HumanMessage("Print 21 times 2.")]}))
        assert model.bound_tools == BOUND_TOOLS
        assert tool_calls(out["messages"]) == ["execute_code_block", "execute_code_block"]
        assert out["messages"][-1].content == "The answer is 42"
        history = adde.get_container_logs(env["container_id"], all=True)["runs"]
        assert [r["exit_code"] for r in history] == [1, 0]
    finally:
        adde.cleanup_env(env["container_id"])


def test_a_session_bound_tool_set_gets_or_creates_its_environment(engine: None) -> None:
    tools = adde_tools(session="pytest-lc-session", image=PYTHON)
    try:
        run = {t.name: t for t in tools}["execute_command"]
        assert json.loads(run.invoke({"command": "echo hi"}))["log"]["stdout"] == "hi\n"
        again = adde_tools(session="pytest-lc-session")
        assert (
            json.loads({t.name: t for t in again}["read_file"].invoke({"path": "missing"}))["error_code"]
            == "file_not_found"
        )
    finally:
        for env in adde.list_runtime_envs(session="pytest-lc-session", all=True)["environments"]:
            adde.cleanup_env(env["container_id"])
