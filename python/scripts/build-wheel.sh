#!/usr/bin/env bash
# Builds adde's platform wheel, with the static binary inside, into target/wheels, and prints
# its path. maturin comes from PyPI into its own venv (target/python-build); this is the one
# step that needs Rust. The wheel must carry a tag that package indexes accept.
#
#   wheel="$(bash python/scripts/build-wheel.sh)"
set -euo pipefail
cd "$(dirname "$0")/../.."

tools=target/python-build
if [ ! -x "$tools/bin/maturin" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q "maturin>=1.5,<2"
fi
rm -rf target/wheels
# pyproject.toml sets the tag (manylinux2014 = manylinux_2_17) and has maturin check that the
# binary links no shared library beyond what that tag allows (it links none: it is static).
(cd python && "../$tools/bin/maturin" build --release --locked -o ../target/wheels) >&2

wheels=(target/wheels/adde-*.whl)
if [ "${#wheels[@]}" -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
  echo "build-wheel: expected one wheel in target/wheels, found: ${wheels[*]}" >&2
  exit 1
fi
case "${wheels[0]}" in
  *-py3-none-manylinux*_x86_64.whl) ;;
  *) echo "build-wheel: ${wheels[0]} has no manylinux tag: a package index would refuse it" >&2; exit 1 ;;
esac
echo "${wheels[0]}"
