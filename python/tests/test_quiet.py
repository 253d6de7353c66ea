"""adde's stderr (its text for people) stays out of the host application's stderr unless
asked for: it goes to the "adde" logger at DEBUG level, to stderr with ADDE_VERBOSE=1, and
onto the exception as AddeError.stderr."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable

import pytest
from conftest import need

import adde
import adde.aio


def test_a_handled_error_prints_nothing(fake_adde: Callable[..., None], capfd: pytest.CaptureFixture[str]) -> None:
    fake_adde("noisy")
    with pytest.raises(adde.AddeError) as caught:
        adde.pull_image("busybox")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert caught.value.stderr == "adde: progress 1/2\nadde: error: pull_image went wrong\n"
    assert caught.value.error_code == "engine_error"


def test_an_async_error_prints_nothing(fake_adde: Callable[..., None], capfd: pytest.CaptureFixture[str]) -> None:
    fake_adde("noisy")
    with pytest.raises(adde.AddeError) as caught:
        asyncio.run(adde.aio.cleanup_env("c1"))
    assert capfd.readouterr() == ("", "")
    assert "adde: error: cleanup_env went wrong" in caught.value.stderr


def test_stderr_goes_to_the_adde_logger_at_debug(
    fake_adde: Callable[..., None], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    fake_adde("noisy-ok")
    with caplog.at_level(logging.DEBUG, logger="adde"):
        assert adde.pull_image("busybox") == {"ok": True}
        asyncio.run(adde.aio.pull_image("busybox"))
    lines = [r.getMessage() for r in caplog.records if r.name == "adde"]
    assert lines == ["adde pull_image: adde: pulling 3 layers"] * 2
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "adde")
    assert capfd.readouterr().err == ""


def test_adde_verbose_lets_it_through(
    fake_adde: Callable[..., None], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_adde("noisy")
    monkeypatch.setenv("ADDE_VERBOSE", "1")
    with pytest.raises(adde.AddeError):
        adde.pull_image("busybox")
    with pytest.raises(adde.AddeError):
        asyncio.run(adde.aio.pull_image("busybox"))
    assert capfd.readouterr().err == "adde: progress 1/2\nadde: error: pull_image went wrong\n" * 2


def test_a_langchain_tool_error_prints_nothing(
    fake_adde: Callable[..., None], capfd: pytest.CaptureFixture[str]
) -> None:
    need("langchain_core")
    from adde.langchain import adde_tools

    fake_adde("tools")
    tools = adde_tools(["execute_code_block"], full=True)
    fake_adde("noisy")
    answer = json.loads(tools[0].invoke({"container_id": "x"}))
    assert answer == {"error": "went wrong", "error_code": "engine_error"}
    answer = json.loads(asyncio.run(tools[0].ainvoke({"container_id": "x"})))
    assert answer["error_code"] == "engine_error"
    assert capfd.readouterr().err == ""


def test_a_real_binary_error_prints_nothing(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The binary shipped in the wheel: its `adde: error: ...` line is captured too."""
    monkeypatch.delenv("ADDE_BIN", raising=False)
    with pytest.raises(adde.InvalidInput) as caught:
        adde.execute_code_block("x", "../escape.py", "print(1)")
    assert capfd.readouterr() == ("", "")
    assert caught.value.stderr.startswith("adde: error: ")
