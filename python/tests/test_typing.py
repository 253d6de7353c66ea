"""The package's types: `mypy --strict` is clean on the installed package and on a typed
example, and catches the typos people make (`dependancies=`, `timeout_secs=`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import need

import adde

need("mypy")

HERE = Path(__file__).resolve().parent / "typecheck"


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Run from an empty folder so that `adde` is the package this test imported: the
    # installed one, or a source tree on PYTHONPATH (which mypy does not read).
    env = {**os.environ, "MYPY_CACHE_DIR": str(cwd / ".mypy_cache")}
    home = Path(adde.__file__).resolve().parent.parent
    if home.name not in ("site-packages", "dist-packages"):
        env["MYPYPATH"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--hide-error-context", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


def test_the_package_and_a_typed_example_pass_mypy_strict(tmp_path: Path) -> None:
    done = mypy("-p", "adde", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    done = mypy(str(HERE / "typed_example.py"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_typos_fail_mypy(tmp_path: Path) -> None:
    done = mypy(str(HERE / "typos.py"), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    lines = (HERE / "typos.py").read_text().splitlines()
    expected = {n + 1 for n, line in enumerate(lines) if "# E:" in line}
    reported = {int(line.split(":")[1]) for line in errors}
    assert reported == expected, done.stdout
    text = done.stdout
    for word in ('"dependancies"', '"timeout_secs"', '"timout_sec"', '"stdot"', '"verbose"'):
        assert word in text, (word, text)
