#!/usr/bin/env bash
# Installs an adde wheel the way users do, then runs the Python tests against it: a fresh
# venv, no Rust on PATH, the .whl file itself (nothing built, nothing fetched for adde).
#
#   bash python/scripts/test-wheel.sh target/wheels/adde-*.whl
#
# The integration tests need Docker and the test images (tests/images/build.sh); with
# CI=true they fail, rather than skip, when the engine cannot be reached.
set -euo pipefail
wheel="$(realpath "$1")"
cd "$(dirname "$0")/../.."

venv="$(pwd)/${ADDE_TEST_VENV:-target/python-venv}"
rm -rf "$venv"
python3 -m venv "$venv"

# PATH less every folder that holds cargo, rustc or rustup.
norust=""
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  [ -n "$dir" ] || continue
  [ -e "$dir/cargo" ] || [ -e "$dir/rustc" ] || [ -e "$dir/rustup" ] && continue
  norust="${norust:+$norust:}$dir"
done
user() { env -u ADDE_BIN -u CARGO_HOME -u RUSTUP_HOME PATH="$venv/bin:$norust" "$@"; }
if user sh -c 'command -v cargo || command -v rustc'; then
  echo "test-wheel: Rust is still on PATH" >&2
  exit 1
fi

# The install a user does: the wheel alone (the core package has no dependencies), timed.
start=$(date +%s%N)
user "$venv/bin/python" -m pip install -q --no-index "$wheel"
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
echo "test-wheel: installed $(basename "$wheel") into a fresh venv in $((ms / 1000)).$(printf %03d $((ms % 1000))) s, no Rust on PATH"
user adde list_tools >/dev/null

# The extras the tests need (LangChain, LangGraph, mypy, pytest) come from the index.
user "$venv/bin/python" -m pip install -q "$wheel[langchain,test]"
# pytest's own script, not `python -m pytest`, so that python/ is not on sys.path: the tests
# import the installed package and run the binary the wheel put in the venv.
(cd python && user ADDE_TEST_INSTALLED=1 "$venv/bin/pytest" -p no:cacheprovider)
