"""The package against the binary it ships: every tool the binary has is a function here,
and every error code the package maps to a class is one the binary really returns."""

import os
import shutil
import sys
from pathlib import Path

import pytest

import adde
import adde.aio
from adde import _errors, _tools


def test_every_tool_of_the_binary_is_a_function_in_every_api():
    binary = {tool["name"] for tool in adde.list_tools()["tools"]}
    assert set(_tools.NAMES) == binary
    client, aclient = adde.Client("/nonexistent"), adde.AsyncClient("/nonexistent")
    for name in binary:
        assert callable(getattr(adde, name)), name
        assert callable(getattr(adde.aio, name)), name
        assert callable(getattr(client, name)), name
        assert callable(getattr(aclient, name)), name


def test_error_classes_map_only_codes_the_binary_returns():
    codes = {entry["error_code"] for entry in adde.list_error_codes()["error_codes"]}
    assert "internal_error" in codes
    stale = set(_errors._BY_CODE) - codes
    assert not stale, f"the package maps codes the binary never returns: {stale}"


@pytest.mark.skipif(os.environ.get("ADDE_TEST_INSTALLED") != "1", reason="run by python/scripts/test-wheel.sh")
def test_the_tests_run_the_installed_wheel_and_its_binary():
    """What test-wheel.sh promises: the package comes from the wheel in a venv with no Rust,
    and the binary the tests run is the one the wheel put there."""
    assert Path(adde.__file__).resolve().parent.parent.name == "site-packages", adde.__file__
    assert Path(adde.find_adde_bin()) == Path(sys.prefix) / "bin" / "adde"
    assert shutil.which("cargo") is None and shutil.which("rustc") is None
