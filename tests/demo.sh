#!/usr/bin/env bash
# adde's main job, end to end: create a hardened Python environment, run code in it (once
# fine, once past its timeout), read the history, clean up. Uses the offline test images.
#
#   bash tests/demo.sh [path/to/adde]
set -euo pipefail
cd "$(dirname "$0")/.."
adde="${1:-target/x86_64-unknown-linux-gnu/release/adde}"
show() { echo "\$ adde $1 '$2'" >&2; "$adde" "$1" "$2"; }

env_json="$(show create_runtime_env '{"image": "adde-test/python:3"}')"
echo "$env_json"
id="$(echo "$env_json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["container_id"])')"
trap 'show cleanup_env "{\"container_id\": \"$id\"}"' EXIT

show execute_code_block "{\"container_id\": \"$id\", \"filename\": \"hello.py\", \"code_content\": \"import sys\\nprint('hello from', sys.version.split()[0])\\nprint('warning', file=sys.stderr)\\n\"}"
show execute_code_block "{\"container_id\": \"$id\", \"filename\": \"spin.py\", \"code_content\": \"print('spinning')\\nwhile True: pass\\n\", \"timeout_sec\": 2}"
show get_container_logs "{\"container_id\": \"$id\", \"tail_lines\": 1}"
