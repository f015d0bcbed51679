#!/usr/bin/env bash
# Fuzzes every parser that reads bytes from the network (Sources/ParleyFuzzTargets) with libFuzzer:
# builds fuzz/ with `-sanitize=fuzzer,address`, then runs each target for FUZZ_SECONDS and prints
# its executions; exits non-zero if any target found a crash, a hang or an OOM.
#
#   FUZZ_SECONDS=60     time per target (0: no limit; then set FUZZ_RUNS)
#   FUZZ_RUNS=          stop a target after this many executions instead (e.g. 10000000)
#   FUZZ_TARGETS="a b"  only these targets (default: every directory of fuzz/corpus)
#   FUZZ_MERGE=1        afterwards merge the new inputs that add coverage into fuzz/corpus/<target>
#   FUZZ_NO_BUILD=1     use the binary already built
#
# Seeds come from fuzz/corpus/<target> (read only). New inputs go to a scratch directory,
# fuzz/.build/scratch/<target>, never into the repository unless FUZZ_MERGE=1. A crash, hang
# (-timeout=5 s) or OOM (-rss_limit_mb=2048) is written to fuzz/regressions/<target>/, which
# `make test` replays: fix the bug, keep the file.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_RUNS=${FUZZ_RUNS:-}
FUZZ_MERGE=${FUZZ_MERGE:-0}
# Without allocation stacks in reports the SDP and JSON targets run a fifth faster; to see them,
# replay a finding with ASAN_OPTIONS= PARLEY_FUZZ_TARGET=<target> fuzz/.build/release/parley-fuzz <file>.
export ASAN_OPTIONS=${ASAN_OPTIONS-malloc_context_size=0}
# Swift's own crash handler reads memory ASan guards and crashes in turn; ASan reports well enough.
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE-enable=no}
# libsrtp2 built with OpenSSL (scripts/build-libsrtp2.sh), as the Makefile finds it.
export PKG_CONFIG_PATH="$PWD/.build-deps/libsrtp2/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

build=(swift build -c release --package-path fuzz -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=address)
if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
    "${build[@]}"
fi
bin="$("${build[@]}" --show-bin-path)"
# parley-fuzz-media has the media plane's targets without SwiftNIO and Hummingbird linked in (ten
# times the inputs a second); parley-fuzz has them all.
media_targets=" $(PARLEY_FUZZ_TARGET=? "$bin/parley-fuzz-media" 2>&1 | sed -n 's/.*one of: //p' || true) "

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<< "$FUZZ_TARGETS"
else
    targets=()
    for dir in fuzz/corpus/*/; do targets+=("$(basename "$dir")"); done
fi

logs=fuzz/.build/logs
mkdir -p "$logs"
summary=()
findings=0
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    scratch=fuzz/.build/scratch/$target
    regressions=fuzz/regressions/$target
    [ -d "$corpus" ] || { echo "fuzz: no corpus $corpus" >&2; exit 2; }
    mkdir -p "$scratch" "$regressions"
    limits=(-max_total_time="$FUZZ_SECONDS")
    # SDP-bearing inputs: at most 4 KB (a compacted Chromium offer, scripts/capture-fuzz-corpus.py),
    # as for the other targets; libFuzzer would take the longest seed's 15 KB, and each input
    # would cost milliseconds.
    case $target in sdp|signaling|api) limits+=(-max_len=4096) ;; esac
    [ -n "$FUZZ_RUNS" ] && limits+=(-runs="$FUZZ_RUNS")
    log=$logs/$target.log
    binary=$bin/parley-fuzz
    [[ "$media_targets" == *" $target "* ]] && binary=$bin/parley-fuzz-media
    status=0
    PARLEY_FUZZ_TARGET=$target "$binary" "${limits[@]}" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$regressions/" "$scratch" "$corpus" > "$log" 2>&1 || status=$?
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    # libFuzzer writes crash-*, timeout-*, oom-* or leak-* and exits non-zero on a finding.
    found=$(grep -o "Test unit written to .*" "$log" | sed 's/Test unit written to //' | tr '\n' ' ' || true)
    if [ "$status" -ne 0 ] || [ -n "$found" ]; then
        findings=$((findings + 1))
        result="FINDING ${found:-exit status $status} (log: $log)"
        grep -m1 -E "ERROR: |Fatal error|fuzz invariant broken" "$log" >&2 || true
    else
        result="ok"
    fi
    printf 'fuzz %-14s %12s executions %8s exec/s  %s\n' "$target" "${executions:-?}" "${rate:-?}" "$result"
    summary+=("$(printf '%-14s %12s %8s  %s' "$target" "${executions:-?}" "${rate:-?}" "$result")")
    if [ "$FUZZ_MERGE" = 1 ] && [ "$status" -eq 0 ]; then
        PARLEY_FUZZ_TARGET=$target "$binary" -merge=1 -timeout=5 -rss_limit_mb=2048 "$corpus" "$scratch" >> "$log" 2>&1
    fi
done

echo
printf '%-14s %12s %8s  %s\n' target executions exec/s result
for line in "${summary[@]}"; do echo "$line"; done
if [ "$findings" -ne 0 ]; then
    echo "fuzz: $findings target(s) found something; the inputs are in fuzz/regressions/" >&2
    exit 1
fi
