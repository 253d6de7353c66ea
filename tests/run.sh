#!/usr/bin/env bash
# The whole test suite: lint, Rust unit and integration tests against the real engine, the
# Python package's tests, and a final check that the tests left none of adde's containers,
# volumes or images behind.
#
#   bash tests/run.sh
#
# Builds the offline test images first (cached; see tests/images/build.sh). Needs Docker.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/images/build.sh >/dev/null

# What adde resources exist before the tests (a developer's own environments, say): the leak
# check at the end looks only at what appeared during the run, and touches nothing else.
managed_now() {
  docker ps -aq --no-trunc --filter label=io.adde.managed=true
  docker volume ls -q --filter label=io.adde.managed=true
  docker images -q --no-trunc --filter label=io.adde.managed=true
}
before="$(managed_now | sort)"

# Second engines for the `engines` tests (gVisor, TLS, SSH, rootful and rootless Podman);
# stopped at the end.
eval "$(bash tests/engines/setup.sh)"
trap 'bash tests/engines/setup.sh stop' EXIT

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
# The integration tests that need the engine are #[ignore]d so that a plain `cargo test`
# without Docker says they did not run; here they run.
cargo test --no-fail-fast -- --include-ignored

# The Python package: maturin builds the platform wheel once (the static binary inside), and
# that file is installed as users install it, into a fresh venv with no Rust on PATH, and
# tested with its unit, LangGraph, typing and integration tests.
wheel="$(bash python/scripts/build-wheel.sh)"
bash python/scripts/test-wheel.sh "$wheel"

# `adde mcp` driven by the official MCP Python SDK as the client, in the same venv.
target/python-venv/bin/python -m pip install -q -r tests/mcp/requirements.txt
ADDE_BIN=target/x86_64-unknown-linux-gnu/debug/adde \
  target/python-venv/bin/python -m pytest -p no:cacheprovider tests/mcp

# The binaries under test filled helper volumes (a cache environments share); the run made
# them, so the run removes them. One still in use would mean a leaked environment.
for volume in $(comm -13 <(echo "$before") <(managed_now | sort) | grep '^adde-helper-' || true); do
  docker volume rm "$volume" >/dev/null 2>&1 || true
done

# Everything adde creates carries io.adde.managed; the tests must have removed all they made.
leaked="$(comm -13 <(echo "$before") <(managed_now | sort) | grep . || true)"
if [ -n "$leaked" ]; then
  echo "tests left adde resources behind:" >&2
  echo "$leaked" >&2
  for item in $leaked; do
    docker rm -f -v "$item" >/dev/null 2>&1 || docker volume rm -f "$item" >/dev/null 2>&1 || docker rmi -f "$item" >/dev/null 2>&1 || true
  done
  exit 1
fi
echo "no adde containers, volumes or images left behind"
