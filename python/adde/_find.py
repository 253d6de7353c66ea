"""Finding the adde binary: ADDE_BIN, the one installed with this package, PATH, then a
development build in the repository this package sits in."""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from ._errors import BinaryNotFound

_EXE = "adde" + (sysconfig.get_config_var("EXE") or "")


def _installed_candidates() -> list[Path]:
    """Where pip puts the executable a wheel ships (the scripts folders, as uv's finder)."""
    places = [sysconfig.get_path("scripts")]
    base = sysconfig.get_path("scripts", vars={"base": sys.base_prefix})
    places.append(base)
    # pip install --prefix/--target: site-packages/adde -> ../../../bin
    here = Path(__file__).resolve().parent
    places.append(str(here.parent.parent.parent.parent / "bin"))
    places.append(str(here.parent / "bin"))
    try:
        places.append(sysconfig.get_path("scripts", scheme=sysconfig.get_preferred_scheme("user")))
    except (AttributeError, KeyError):
        pass
    return [Path(p) / _EXE for p in places if p]


def _dev_candidates() -> list[Path]:
    repo = Path(__file__).resolve().parent.parent.parent
    target = repo / "target"
    return [target / triple / profile / _EXE for profile in ("release", "debug") for triple in ("x86_64-unknown-linux-gnu", "")]


def find_adde_bin(bin_path: str | os.PathLike[str] | None = None) -> str:
    """The adde executable to run. `bin_path` wins when given; then ADDE_BIN, the binary
    installed with this package, PATH, and a development build in the repository."""
    tried: list[str] = []
    explicit = bin_path or os.environ.get("ADDE_BIN")
    if explicit:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        source = "bin_path" if bin_path else "ADDE_BIN"
        raise BinaryNotFound(f"{source}={explicit} is not an executable file")
    for candidate in _installed_candidates():
        tried.append(str(candidate))
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("adde")
    tried.append("adde on PATH")
    if on_path:
        return on_path
    for candidate in _dev_candidates():
        tried.append(str(candidate))
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise BinaryNotFound(
        "cannot find the adde binary. It comes with adde's platform wheel for x86_64 Linux "
        "(pip install adde-<version>-py3-none-manylinux_2_17_x86_64.whl; build it with "
        "`maturin build --release` in the repository's python/ folder), or point ADDE_BIN "
        "(or bin_path=) at an adde executable, or put one on PATH (cargo install --path . in "
        "the repository). Tried: " + ", ".join(tried)
    )
