#!/usr/bin/env bash
# The project's test command (README "Test"), and what CI runs via .ci/run.
#
# Runs from a clean clone with only Rust, gcc and git: formatting, clippy
# with warnings denied, every test of the workspace (including the
# conformance suites behind the `testkit` features and the end-to-end
# quickstart test over real HTTP on 127.0.0.1), the docs with warnings
# denied, a build of the benchmarks, and the quickstart binary itself on the
# bundled photos.
#
# Services: a private clamd on 127.0.0.1 (scripts/clamd.sh installs
# Debian's clamav-daemon when missing and starts it with a signature
# database of our own), stopped at exit; its log is printed if a step
# fails. The upload endpoint runs in-process on 127.0.0.1. The tests that
# need clamd are #[ignore]d in plain `cargo test` and run here with
# --include-ignored: without the daemon they fail, they never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

services=target/test-services
clamd_dir=$services/clamd
cleanup() {
    status=$?
    if [ $status -ne 0 ] && [ -f "$clamd_dir/clamd.log" ]; then
        echo "--- clamd log ($clamd_dir/clamd.log) ---" >&2
        tail -n 50 "$clamd_dir/clamd.log" >&2 || true
    fi
    scripts/clamd.sh stop "$clamd_dir" || true
    exit $status
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "start clamd (scripts/clamd.sh)"
mkdir -p "$services"
rm -rf "$clamd_dir"
clamd_port=$(free_port)
scripts/clamd.sh start "$clamd_dir" "$clamd_port" 32M
export UPLOAD_SDK_CLAMD_TCP="127.0.0.1:$clamd_port"
export UPLOAD_SDK_CLAMD_SOCKET="$(cat "$clamd_dir/socket-path")"
export UPLOAD_SDK_CLAMD_STREAM_MAX=$((32 * 1024 * 1024))
echo "clamd answers PING on $UPLOAD_SDK_CLAMD_TCP and $UPLOAD_SDK_CLAMD_SOCKET"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo test (all features, including the tests that need clamd)"
cargo test --workspace --all-features --locked -- --include-ignored 2>&1 | tee "$services/cargo-test.log"
counts=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i - 1); if ($i == "failed;") f += $(i - 1) } } END { printf "%d passed, %d failed", p, f }' "$services/cargo-test.log")

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

step "benchmarks build"
cargo bench -p upload-benches --no-run --locked

step "fuzz targets build (stable toolchain, no sanitizer; see fuzz/README.md)"
cargo check --manifest-path fuzz/Cargo.toml --locked --bins

step "quickstart on the bundled photos"
out=$(mktemp -d)
cargo run --release --locked -p upload-examples --bin quickstart -- --out "$out" > "$out/report.jsonl"
cat "$out/report.jsonl"
python3 - "$out/report.jsonl" <<'PY'
import json, os, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 5, f"expected 5 JSON lines, got {len(lines)}"
for r in lines:
    assert r["verdict"] == "clean", r
    for v in r["variants"]:
        assert os.path.getsize(v["path"]) == v["bytes"] > 0, v
        assert v["width"] <= 1024 and v["height"] <= 1024, v
big = [r for r in lines if "3840x2160" in r["file"]][0]
assert big["upload"] == "multipart" and big["parts"] == 2, big
assert [(v["width"], v["height"]) for v in big["variants"]] == [(256, 144), (1024, 576)], big
print(f"quickstart: {len(lines)} files, {sum(len(r['variants']) for r in lines)} variants checked")
PY
rm -rf "$out"

step "all checks passed"
echo "tests: $counts"
