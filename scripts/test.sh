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
# No external service is needed yet: every backend is in-memory and the
# upload endpoint is started in-process on 127.0.0.1. Later stages (local
# S3/SQS server, clamd) are installed and started here when they land.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo test (all features)"
cargo test --workspace --all-features --locked

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

step "benchmarks build"
cargo bench -p upload-benches --no-run --locked

step "fuzz targets build (stable toolchain, no sanitizer; see fuzz/README.md)"
cargo check --manifest-path fuzz/Cargo.toml --locked --bins

step "quickstart on the bundled photos"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
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

step "all checks passed"
