#!/usr/bin/env bash
# The project's test command (README "Test"), and what CI runs via .ci/run.
#
# Runs from a clean clone with only Rust, gcc and git (it installs cmake
# and nasm from Debian for the `turbojpeg` feature): formatting, clippy
# with warnings denied, every test of the workspace (including the
# conformance suites behind the `testkit` features and the end-to-end
# quickstart test over real HTTP on 127.0.0.1), the docs with warnings
# denied, one debug build of every binary and benchmark (sharing the test
# build), and the quickstart binary itself on the
# bundled photos.
#
# Services, each on a free 127.0.0.1 port, installed when missing, stopped
# at exit, their logs printed if a step fails:
#   - clamd (scripts/clamd.sh: Debian's clamav-daemon, a signature database
#     of our own);
#   - moto (scripts/moto.sh: moto[server]==5.1.22 from PyPI in a virtualenv
#     under ~/.cache/upload-sdk): S3 + SQS with event notifications, for the
#     conformance suites of S3Storage and SqsQueue and the end-to-end test
#     of the example binaries;
#   - s3s-fs (scripts/s3s-fs.sh: `cargo install s3s-fs@0.14.1`, about 3.5
#     minutes the first time): an S3 server that verifies signatures, for
#     every presigned-URL test;
#   - Azurite (scripts/azurite.sh: azurite@3.35.0 from npm under
#     ~/.cache/upload-sdk, blob service only): Azure Blob Storage for the
#     conformance suites of upload-object-store's Azure backend;
#   - nats-server (scripts/nats.sh: Debian's package) with JetStream, for
#     the suites of NatsQueue and the MinIO-events end-to-end test.
# The tests that need them are #[ignore]d in plain `cargo test` and run here
# with --include-ignored: without the servers they fail, they never skip.
#
# Last, the browser tests (scripts/browser-tests.sh): Debian's chromium
# (installed when missing) driven by playwright-core from npm, against the
# demo of scripts/demo.sh (its own moto, clamd, worker and presign-server
# --demo); screenshots in target/browser-artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh
step() { printf '\n==> %s\n' "$*"; }

services=target/test-services
clamd_dir=$services/clamd
moto_dir=$services/moto
s3s_dir=$services/s3s-fs
azurite_dir=$services/azurite
nats_dir=$services/nats
cleanup() {
    status=$?
    if [ $status -ne 0 ]; then
        for log in "$clamd_dir/clamd.log" "$moto_dir/moto.log" "$s3s_dir/s3s-fs.log" "$azurite_dir/azurite.log" "$nats_dir/nats.log"; do
            if [ -f "$log" ]; then
                echo "--- $log (last 50 lines) ---" >&2
                tail -n 50 "$log" >&2 || true
            fi
        done
    fi
    scripts/clamd.sh stop "$clamd_dir" || true
    scripts/moto.sh stop "$moto_dir" || true
    scripts/s3s-fs.sh stop "$s3s_dir" || true
    scripts/azurite.sh stop "$azurite_dir" || true
    scripts/nats.sh stop "$nats_dir" || true
    exit $status
}
trap cleanup EXIT

step "build tools: cmake and nasm (libjpeg-turbo of upload-pipeline's turbojpeg feature), libheif (its heif feature), poppler-utils and ffmpeg (its pdf and video features)"
if ! command -v cmake >/dev/null || ! command -v nasm >/dev/null || ! command -v pkg-config >/dev/null \
    || ! pkg-config --exists 'libheif >= 1.14' \
    || ! command -v pdfinfo >/dev/null || ! command -v pdftoppm >/dev/null \
    || ! command -v ffprobe >/dev/null || ! command -v ffmpeg >/dev/null; then
    apt_install cmake nasm pkg-config libheif-dev poppler-utils ffmpeg
fi
echo "$(cmake --version | head -n 1), $(nasm -v), libheif $(pkg-config --modversion libheif)"
echo "$(pdftoppm -v 2>&1 | head -n 1), $(ffmpeg -version | head -n 1)"


step "start clamd (scripts/clamd.sh)"
mkdir -p "$services"
rm -rf "$clamd_dir"
clamd_port=$(free_port)
scripts/clamd.sh start "$clamd_dir" "$clamd_port" 32M
export UPLOAD_SDK_CLAMD_TCP="127.0.0.1:$clamd_port"
export UPLOAD_SDK_CLAMD_SOCKET="$(cat "$clamd_dir/socket-path")"
export UPLOAD_SDK_CLAMD_STREAM_MAX=$((32 * 1024 * 1024))
echo "clamd answers PING on $UPLOAD_SDK_CLAMD_TCP and $UPLOAD_SDK_CLAMD_SOCKET"

step "start moto (scripts/moto.sh): S3 + SQS"
rm -rf "$moto_dir"
moto_port=$(free_port)
scripts/moto.sh start "$moto_dir" "$moto_port"
export UPLOAD_SDK_MOTO_ENDPOINT="http://127.0.0.1:$moto_port"
echo "moto answers on $UPLOAD_SDK_MOTO_ENDPOINT"

step "start s3s-fs (scripts/s3s-fs.sh): S3 that verifies signatures"
rm -rf "$s3s_dir"
s3s_port=$(free_port)
export UPLOAD_SDK_S3S_ACCESS_KEY="UPLOADSDKTEST$(python3 -c 'import secrets; print(secrets.token_hex(4).upper())')"
export UPLOAD_SDK_S3S_SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(20))')"
scripts/s3s-fs.sh start "$s3s_dir" "$s3s_port" "$UPLOAD_SDK_S3S_ACCESS_KEY" "$UPLOAD_SDK_S3S_SECRET_KEY"
export UPLOAD_SDK_S3S_ENDPOINT="http://127.0.0.1:$s3s_port"
echo "s3s-fs answers on $UPLOAD_SDK_S3S_ENDPOINT"

step "start Azurite (scripts/azurite.sh): Azure Blob Storage"
rm -rf "$azurite_dir"
azurite_port=$(free_port)
scripts/azurite.sh start "$azurite_dir" "$azurite_port"
export UPLOAD_SDK_AZURITE_BLOB_ENDPOINT="http://127.0.0.1:$azurite_port/devstoreaccount1"
echo "Azurite answers on $UPLOAD_SDK_AZURITE_BLOB_ENDPOINT"

step "start nats-server with JetStream (scripts/nats.sh)"
rm -rf "$nats_dir"
nats_port=$(free_port)
scripts/nats.sh start "$nats_dir" "$nats_port"
export UPLOAD_SDK_NATS_URL="nats://127.0.0.1:$nats_port"
echo "nats-server answers on $UPLOAD_SDK_NATS_URL"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo test (all features, including the tests that need clamd, moto, s3s-fs, Azurite and nats-server)"
cargo test --workspace --all-features --locked -- --include-ignored 2>&1 | tee "$services/cargo-test.log"
counts=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i - 1); if ($i == "failed;") f += $(i - 1) } } END { printf "%d passed, %d failed", p, f }' "$services/cargo-test.log")

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

step "binaries and benchmarks build (debug, the test step's dependencies: nothing is compiled twice)"
# One build of every binary (examples, bench-*) and criterion bench with the
# test step's features, so the quickstart and the browser demo below reuse it
# instead of a release build of their own (dependencies are optimised in the
# dev profile, see Cargo.toml). Benchmarks are run with --release by hand.
cargo build --workspace --all-features --locked --bins --benches
bin_dir=$(cargo metadata --format-version 1 --no-deps --locked | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug

step "fuzz smoke: every target builds and runs 5 s without a crash (scripts/fuzz.sh; see fuzz/README.md)"
FUZZ_SANITIZER=none scripts/fuzz.sh 5

step "quickstart on the bundled samples (photos, HEIC, AVIF, JPEG XL, MP4, WebM, PDF; built with every feature)"
out=$(mktemp -d)
"$bin_dir/quickstart" --out "$out" > "$out/report.jsonl"
cat "$out/report.jsonl"
python3 - "$out/report.jsonl" <<'PY'
import json, os, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 14, f"expected 14 JSON lines (the bundled samples), got {len(lines)}"
by = {os.path.basename(r["file"]): r for r in lines}
for r in lines:
    if r["file"].endswith("_encrypted_aes256.pdf"):
        assert r["verdict"] == "rejected" and "encrypted" in r["reason"] and r["variants"] == [], r
        continue
    assert r["verdict"] == "clean", r
    assert len(r["variants"]) == 2, r
    for v in r["variants"]:
        assert os.path.getsize(v["path"]) == v["bytes"] > 0, v
        assert v["width"] <= 1024 and v["height"] <= 1024, v
    m = json.load(open(r["manifest"]))
    assert m["source"]["key"] == r["key"] and m.get("image") == r.get("image") and m.get("media") == r.get("media"), r
    if r["sniffed"].startswith("image/"):
        assert r["image"]["placeholder"]["dominant_color"].startswith("#"), r
    elif r["sniffed"].startswith("video/"):
        assert r["media"]["kind"] == "video" and r["media"]["duration_ms"] in (2000, 2008), r
    else:
        assert r["sniffed"] == "application/pdf" and r["media"]["kind"] == "document", r
assert by["generated_letter_3pages.pdf"]["media"]["page_count"] == 3
assert by["generated_testsrc_320x240_2s_h264_aac.mp4"]["media"]["video_codec"] == "h264"
for name, dims in [
    ("photo_elephants_3840x2160_progressive.jpg", [(256, 144), (1024, 576)]),
    ("photo_example_1280x854.heic", [(256, 171), (1024, 683)]),
    ("photo_example_800x533.avif", [(256, 171), (800, 533)]),
    ("derived_hopper_lossy_d1.jxl", [(128, 128), (128, 128)]),
    ("generated_testsrc_320x240_2s_h264_aac.mp4", [(256, 192), (320, 240)]),
    ("generated_letter_3pages.pdf", [(198, 256), (792, 1024)]),
]:
    got = [(v["width"], v["height"]) for v in by[name]["variants"]]
    assert got == dims, (name, got)
big = by["photo_elephants_3840x2160_progressive.jpg"]
assert big["upload"] == "multipart" and big["parts"] == 2, big
print(f"quickstart: {len(lines)} files, {sum(len(r['variants']) for r in lines)} variants checked")
PY
rm -rf "$out"

step "browser tests (scripts/browser-tests.sh): the demo pages and Uppy in headless Chromium"
UPLOAD_SDK_BIN_DIR="$bin_dir" scripts/browser-tests.sh target/browser-artifacts 2>&1 | tee "$services/browser-tests.log"
browser=$(awk '/^browser tests:/ { p = $3; f = $5 } END { printf "%d %d", p, f }' "$services/browser-tests.log")
counts=$(python3 -c 'import sys; p, f = map(int, sys.argv[1].replace(" passed,", "").replace(" failed", "").split()); bp, bf = map(int, sys.argv[2].split()); print(f"{p + bp} passed, {f + bf} failed")' "$counts" "$browser")
echo "screenshots: target/browser-artifacts/*.png"

step "all checks passed"
echo "tests: $counts"
