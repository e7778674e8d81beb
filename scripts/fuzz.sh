#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/fuzz_targets/ for SECONDS each
# (default 60) on the stable toolchain, and prints per target how many
# inputs libFuzzer executed and whether it crashed. Exits non-zero when any
# target crashed (or failed to build).
#
#   scripts/fuzz.sh [SECONDS]
#
# Environment:
#   FUZZ_SANITIZER  address (default) or none; passed to `cargo fuzz --sanitizer`
#   FUZZ_RUNS       stop a target after this many executions if it gets
#                   there before SECONDS (libFuzzer -runs); default: no limit
#
# cargo fuzz passes nightly-only rustc flags (-Zsanitizer=...); on stable
# they are accepted with RUSTC_BOOTSTRAP=1, which this script sets for the
# cargo fuzz commands only. See fuzz/README.md.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS > 0]" >&2
    exit 2
fi
SANITIZER="${FUZZ_SANITIZER:-address}"
if [[ -n "${FUZZ_RUNS:-}" ]] && ! [[ "$FUZZ_RUNS" =~ ^[1-9][0-9]*$ ]]; then
    echo "FUZZ_RUNS must be a positive number of executions" >&2
    exit 2
fi
# 0.13.2 is the newest cargo-fuzz and builds on Rust 1.95 with --locked.
CARGO_FUZZ_VERSION="0.13.2"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/lib.sh

# The image_decode target decodes HEIC and AVIF through libheif
# (upload-pipeline's `heif` feature): Debian's libheif-dev.
if ! [ -e /usr/include/libheif/heif.h ]; then
    apt_install libheif-dev
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

shopt -s nullglob
targets=()
for f in fuzz/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
done
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "no fuzz targets in fuzz/fuzz_targets/" >&2
    exit 1
fi

echo "== building ${targets[*]} (sanitizer: $SANITIZER)"
RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer "$SANITIZER"

LOG_DIR="fuzz/target/fuzz-logs"
mkdir -p "$LOG_DIR"
summary=()
failed=0
for t in "${targets[@]}"; do
    log="$LOG_DIR/$t.log"
    echo "== fuzzing $t for ${SECONDS_PER_TARGET}s (log: $log)"
    mkdir -p "fuzz/corpus/$t"
    started=$(date +%s)
    set +e
    RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "$SANITIZER" "$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(($(date +%s) - started))

    # Executions: libFuzzer's final stats line, else its last "#N ... DONE" /
    # status line (a crash ends the run before DONE).
    execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)"
    if [[ -z "$execs" ]]; then
        execs="$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)"
    fi
    execs="${execs:-0}"
    # Fuzzing time libFuzzer reports, for executions per second (after a
    # crash there is none: the wall time of the run, build check included).
    secs="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)"
    secs="${secs:-$elapsed}"
    [[ "$secs" -gt 0 ]] || secs=1
    rate=$((execs / secs))

    if [[ $rc -eq 0 ]] && ! grep -q -e '^==[0-9]*== *ERROR' -e '^SUMMARY: libFuzzer' "$log"; then
        status="no crash"
    else
        failed=1
        artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
        status="CRASH (exit $rc${artifact:+, input: $artifact})"
        echo "-- $t failed; the panic or sanitizer report from $log:"
        grep -m 3 -A 4 -e 'panicked at' -e '^==[0-9]*== *ERROR' -e '^error' "$log" || true
        grep -A 2 -e '^Failing input' -e '^Output of `std::fmt::Debug`' "$log" || true
    fi
    line="$t: $execs executions in ${secs}s ($rate exec/s), $status"
    echo "$line"
    summary+=("$line")
done

echo "== fuzz summary (${SECONDS_PER_TARGET}s per target, sanitizer $SANITIZER)"
printf '%s\n' "${summary[@]}"
exit "$failed"
