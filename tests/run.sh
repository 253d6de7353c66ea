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

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --no-fail-fast

# The Python package, installed the way users install it (maturin builds and bundles the
# binary into the wheel), tested with its unit and integration tests.
venv=target/python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "./python[langchain,test]"
(cd python && env -u ADDE_BIN "../$venv/bin/python" -m pytest -p no:cacheprovider)

# Everything adde creates carries io.adde.managed; the tests must have removed all of it but
# the helper's volume, a cache that environments share.
leaked="$(docker ps -aq --filter label=io.adde.managed=true
  docker volume ls -q --filter label=io.adde.managed=true | grep -v '^adde-helper-' || true
  docker images -q --filter label=io.adde.managed=true)"
if [ -n "$leaked" ]; then
  echo "tests left adde resources behind:" >&2
  echo "$leaked" >&2
  docker rm -f -v $(docker ps -aq --filter label=io.adde.managed=true) >/dev/null 2>&1 || true
  docker volume rm -f $(docker volume ls -q --filter label=io.adde.managed=true | grep -v '^adde-helper-') >/dev/null 2>&1 || true
  docker rmi -f $(docker images -q --filter label=io.adde.managed=true) >/dev/null 2>&1 || true
  exit 1
fi
echo "no adde containers, volumes or images left behind"
