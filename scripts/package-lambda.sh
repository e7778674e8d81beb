#!/usr/bin/env bash
# Builds the `lambda-worker` example as an AWS Lambda deployment package for
# the OS-only runtime `provided.al2023`: the release binary, renamed
# `bootstrap` (the file that runtime executes), alone at the root of
#
#   target/lambda/lambda-worker/bootstrap.zip
#
# Upload it with `aws lambda create-function --runtime provided.al2023
# --handler bootstrap --architectures x86_64|arm64 --zip-file fileb://...`
# (README "Run the worker on AWS Lambda"). cargo-lambda is not needed.
#
#   scripts/package-lambda.sh                 # for this machine's target
#   TARGET=aarch64-unknown-linux-gnu scripts/package-lambda.sh
#   PROFILE=dev scripts/package-lambda.sh     # a quick unoptimised build, for trying it out
#
# TARGET is a Rust target triple whose binaries run on Amazon Linux 2023:
# x86_64-unknown-linux-gnu (Lambda architecture x86_64) or
# aarch64-unknown-linux-gnu (arm64; cross-compiling needs that target
# installed with rustup and a linker for it, e.g. CARGO_TARGET_AARCH64_
# UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc). The binary links glibc
# dynamically: build on a system whose glibc is not newer than AL2023's
# (2.34), or on AL2023 itself; everything else (TLS: rustls) is static.
# Zipped with `zip` when present, else Python's zipfile.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${TARGET:-}
profile=${PROFILE:-release}
out=target/lambda/lambda-worker
args=(build --profile "$profile" --locked -p upload-examples --bin lambda-worker)
dir=$profile
[ "$profile" = dev ] && dir=debug
if [ -n "$target" ]; then
    args+=(--target "$target")
    bin=target/$target/$dir/lambda-worker
else
    bin=target/$dir/lambda-worker
fi
cargo "${args[@]}"

rm -rf "$out"
mkdir -p "$out"
cp "$bin" "$out/bootstrap"
chmod 755 "$out/bootstrap"
if command -v zip >/dev/null; then
    (cd "$out" && zip -q -X bootstrap.zip bootstrap)
else
    python3 - "$out" <<'PY'
import os, sys, zipfile
out = sys.argv[1]
path = os.path.join(out, "bootstrap")
info = zipfile.ZipInfo("bootstrap")
info.external_attr = (0o100755 << 16)  # a regular file, executable: Lambda runs it
info.compress_type = zipfile.ZIP_DEFLATED
with open(path, "rb") as f, zipfile.ZipFile(os.path.join(out, "bootstrap.zip"), "w") as z:
    z.writestr(info, f.read())
PY
fi
echo "$out/bootstrap.zip ($(du -h "$out/bootstrap.zip" | cut -f1)): runtime provided.al2023, handler bootstrap, target ${target:-$(rustc -vV | sed -n 's/^host: //p')}"
