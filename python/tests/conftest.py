import importlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CI = os.environ.get("CI") == "true"


def need(module):
    """Import an optional dependency of the tests (the `test` extra): skipped without it,
    except under CI=true, where a missing one fails instead of hiding tests."""
    if CI:
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture
def fake_adde(monkeypatch):
    """ADDE_BIN pointing at the fake binary; returns a function that sets its mode."""
    monkeypatch.setenv("ADDE_BIN", str(HERE / "fake_adde.py"))

    def mode(name, **env):
        monkeypatch.setenv("FAKE_ADDE_MODE", name)
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    mode("echo")
    return mode


def _docker_ready():
    if shutil.which("docker") is None:
        return "no docker CLI"
    probe = subprocess.run(["docker", "version"], capture_output=True)
    if probe.returncode != 0:
        return "the Docker engine is not reachable"
    return None


@pytest.fixture
def engine(monkeypatch, tmp_path):
    """The real engine and the real binary, with a private state dir. Fails under CI=true
    when the engine is missing, skips elsewhere."""
    problem = _docker_ready()
    if problem:
        if CI:
            pytest.fail(f"{problem} (CI=true)")
        pytest.skip(problem)
    monkeypatch.delenv("ADDE_BIN", raising=False)
    monkeypatch.setenv("ADDE_STATE_DIR", str(tmp_path / "state"))
