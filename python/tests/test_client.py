"""Unit tests with a fake binary: arguments, stdin payloads, error mapping, discovery,
timeouts, decoding, and the asyncio and LangChain variants."""

import asyncio
import inspect
import json
import os
import time

import pytest
from conftest import need

import adde
import adde.aio
from adde import _find, _tools


def test_payload_goes_on_stdin_and_only_the_tool_on_argv(fake_adde):
    out = adde.create_runtime_env("python:3.12", dependencies=["requests"], memory="1g")
    assert out["argv"] == ["create_runtime_env"]
    assert out["payload"] == {
        "image": "python:3.12",
        "dependencies": ["requests"],
        "network": False,
        "use_image_cmd": False,
        "memory": "1g",
    }


def test_large_code_is_not_limited_by_argv(fake_adde):
    code = "x = 1\n" * 100_000  # 600 KB: far past one argv argument's 128 KiB
    out = adde.execute_code_block("c1", "big.py", code, timeout_sec=5)
    assert out["payload"]["code_content"] == code
    assert out["payload"]["timeout_sec"] == 5


def test_signatures_match_addes():
    params = inspect.signature(adde.execute_code_block).parameters
    assert list(params)[:4] == ["container_id", "filename", "code_content", "timeout_sec"]
    assert params["timeout_sec"].default == 30
    assert "bin_path" in params
    params = inspect.signature(adde.create_runtime_env).parameters
    assert list(params)[:6] == ["image", "dependencies", "env_vars", "network", "port_bindings", "use_image_cmd"]
    for name in _tools.NAMES:
        assert "bin_path" in inspect.signature(getattr(adde, name)).parameters, name
        assert getattr(adde, name).__doc__, name


@pytest.mark.parametrize(
    "code, cls",
    [
        ("docker_unavailable", adde.DockerUnavailable),
        ("container_not_found", adde.NotFound),
        ("image_not_found", adde.NotFound),
        ("invalid_payload", adde.InvalidInput),
        ("invalid_argument", adde.InvalidInput),
        ("not_managed", adde.NotManaged),
        ("build_failed", adde.BuildFailed),
        ("dockerfile_blocked", adde.BuildFailed),
        ("engine_error", adde.AddeError),
    ],
)
def test_errors_map_to_exceptions(fake_adde, code, cls):
    fake_adde("error", FAKE_ADDE_CODE=code)
    with pytest.raises(cls) as caught:
        adde.pull_image("busybox")
    err = caught.value
    assert type(err) is cls
    assert isinstance(err, RuntimeError), "ADDE users catch RuntimeError"
    assert err.error_code == code
    assert err.result == {"error": f"failed with {code}", "error_code": code, "ok": False}
    assert str(err) == f"failed with {code}"


def test_output_that_is_not_json_is_an_error(fake_adde):
    fake_adde("garbage")
    with pytest.raises(adde.AddeError) as caught:
        adde.list_tools()
    assert caught.value.error_code == "bad_output"


def test_output_is_utf8_whatever_the_locale(fake_adde, monkeypatch):
    fake_adde("utf8")
    monkeypatch.setenv("LC_ALL", "C")
    monkeypatch.setenv("LANG", "C")
    assert adde.get_container_logs("c1")["log"]["stdout"] == "h\u00e9llo \u2713\n"


def test_the_subprocess_timeout_follows_timeout_sec():
    assert _tools.execute_code_block("c", "a.py", "", timeout_sec=12).timeout == 12 + _tools.MARGIN_SEC
    assert _tools.execute_command("c", "ls", timeout_sec=3).timeout == 3 + _tools.MARGIN_SEC
    assert _tools.run_container("busybox", command="ls").timeout == 30 + _tools.MARGIN_SEC
    assert _tools.build_image_from_path("/x", timeout_sec=100).timeout == 100 + _tools.MARGIN_SEC
    assert _tools.cleanup_env("c").timeout is None


def test_a_hung_binary_becomes_an_adde_error(fake_adde, monkeypatch):
    fake_adde("sleep")
    monkeypatch.setattr(_tools, "MARGIN_SEC", 0.5)
    started = time.monotonic()
    with pytest.raises(adde.AddeTimeout) as caught:
        adde.execute_code_block("c1", "a.py", "", timeout_sec=0.5)
    assert caught.value.error_code == "timeout"
    assert isinstance(caught.value, adde.AddeError)
    assert time.monotonic() - started < 10


def test_binary_discovery_order(fake_adde, tmp_path, monkeypatch):
    fake = os.environ["ADDE_BIN"]
    other = tmp_path / "adde"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert adde.find_adde_bin(str(other)) == str(other), "bin_path wins"
    assert adde.find_adde_bin() == fake, "then ADDE_BIN"
    monkeypatch.setenv("ADDE_BIN", str(tmp_path / "missing"))
    with pytest.raises(adde.BinaryNotFound, match="ADDE_BIN"):
        adde.find_adde_bin()

    monkeypatch.delenv("ADDE_BIN")
    monkeypatch.setattr(_find, "_installed_candidates", lambda: [tmp_path / "nowhere" / "adde"])
    monkeypatch.setattr(_find, "_dev_candidates", lambda: [tmp_path / "dev" / "adde"])
    monkeypatch.setenv("PATH", str(tmp_path))
    assert adde.find_adde_bin() == str(other), "then PATH"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(adde.BinaryNotFound) as caught:
        adde.find_adde_bin()
    message = str(caught.value)
    assert "nowhere" in message and "PATH" in message and "dev" in message, message
    assert "ADDE_BIN" in message and "wheel" in message, "it says how to get the binary"
    assert "pip install adde " not in message and "pip install adde," not in message, "no package by that name"


def test_the_asyncio_client_runs_concurrently(fake_adde):
    async def main():
        return await asyncio.gather(*(adde.aio.execute_code_block(f"c{i}", "a.py", f"print({i})") for i in range(3)))

    results = asyncio.run(main())
    assert [r["payload"]["container_id"] for r in results] == ["c0", "c1", "c2"]
    assert all(r["argv"] == ["execute_code_block"] for r in results)


def test_the_asyncio_client_maps_errors(fake_adde):
    fake_adde("error", FAKE_ADDE_CODE="not_managed")
    with pytest.raises(adde.NotManaged):
        asyncio.run(adde.aio.cleanup_env("c1"))


def test_langchain_tools_return_results_and_errors_as_text(fake_adde):
    need("langchain_core")
    from adde.langchain import adde_tools

    fake_adde("tools")
    tools = adde_tools(["create_runtime_env", "execute_code_block", "get_container_logs", "cleanup_env"], full=True)
    assert [t.name for t in tools] == ["create_runtime_env", "execute_code_block", "get_container_logs", "cleanup_env"]
    assert tools[0].args_schema["required"] == ["container_id"], "the schema is adde's own"
    assert tools[1].description == "execute_code_block tool"
    answer = json.loads(tools[1].invoke({"container_id": "x"}))
    assert answer["error_code"] == "container_not_found"
    answer = json.loads(asyncio.run(tools[3].ainvoke({"container_id": "x"})))
    assert answer["error_code"] == "container_not_found"
