#!/usr/bin/env bash
# Fuzzes adde's parsers of untrusted input with cargo-fuzz (libFuzzer), each target for a
# bounded time, one after another. NOT part of .ci/run (too slow for CI's budget): run it by
# hand, e.g. before a release or after touching a parser.
#
#   bash tests/fuzz.sh                      # every target, 30 s each
#   FUZZ_SECONDS=300 bash tests/fuzz.sh     # longer
#   bash tests/fuzz.sh dockerfile refs      # only these targets
#
# Targets (fuzz/fuzz_targets/): tool_payload (every tool's payload parsing), dockerfile (parser,
# both readings, and gate), dockerignore (the matcher), frames (the helper's frame stream,
# status and capture), agent_frames (the agent channel's decoder, against a reference), refs
# (container ids, image references, sessions, run ids), paths (relative and environment paths,
# env vars, ranges, sizes). A panic, an `internal_error`, a broken invariant, a timeout
# (FUZZ_TIMEOUT seconds for one input, default 10) or memory past FUZZ_RSS_MB (default 2048) is
# a crash: the input is saved under fuzz/artifacts/TARGET/ and the script exits 1 at the end.
# Reproduce one with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`.
#
# Needs the nightly toolchain (cargo-fuzz is installed from crates.io when missing). The fuzz
# crate is its own workspace; sanitizers cannot link statically, and cargo-fuzz's RUSTFLAGS
# replace the main crate's static target flags, so nothing else needs overriding.
# The working corpus (fuzz/corpus/, kept out of git) grows across runs, seeded from
# fuzz/seeds/; fuzz/dicts/ holds libFuzzer dictionaries.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-30}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"
RSS_MB="${FUZZ_RSS_MB:-2048}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$TOOLCHAIN" fuzz list)
fi

# One build for every target (debug assertions on, so arithmetic overflow is a crash too).
cargo "+$TOOLCHAIN" fuzz build --debug-assertions

logs="fuzz/target/logs"
mkdir -p "$logs"
failed=()
summary=()
total=0
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    seeds=()
    [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
    dict=()
    [ -f "fuzz/dicts/$target.dict" ] && dict=("-dict=fuzz/dicts/$target.dict")
    echo "== $target: ${SECONDS_EACH}s"
    status=0
    cargo "+$TOOLCHAIN" fuzz run --debug-assertions "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" \
        -rss_limit_mb="$RSS_MB" -malloc_limit_mb="$RSS_MB" \
        -print_final_stats=1 "${dict[@]}" >"$logs/$target.log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$target.log" | grep -o '[0-9]*$' | tail -1)
    if [ -z "$runs" ]; then
        runs=$(grep -Eo '^#[0-9]+' "$logs/$target.log" | tail -1 | tr -d '#')
    fi
    runs="${runs:-0}"
    total=$((total + runs))
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        summary+=("$(printf '%-14s %12s executions  CRASH (exit %s, log %s)' "$target" "$runs" "$status" "$logs/$target.log")")
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY:|Test unit written to|^Output of' "$logs/$target.log" | head -8 || true
    else
        summary+=("$(printf '%-14s %12s executions  ok' "$target" "$runs")")
    fi
done

echo
echo "== fuzz summary (${SECONDS_EACH}s per target)"
printf '%s\n' "${summary[@]}"
echo "total: $total executions, ${#failed[@]} target(s) crashed"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]}; inputs in fuzz/artifacts/" >&2
    exit 1
fi
