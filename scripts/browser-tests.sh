#!/usr/bin/env bash
# The browser tests (examples/web/tests/browser.mjs): headless Debian
# Chromium, driven by playwright-core from npm (no browser download),
# against the demo started by scripts/demo.sh (moto, clamd, worker,
# presign-server --demo) on free 127.0.0.1 ports. scripts/test.sh runs it.
#
#   scripts/browser-tests.sh [ARTIFACTS]   # default target/browser-artifacts
#
# Installs Debian's chromium when /usr/bin/chromium is missing (another
# browser: CHROMIUM=/path) (and, through
# scripts/demo.sh, Node.js and npm). Screenshots of the finished pages are
# left in ARTIFACTS (demo-page.png, uppy-page.png, uppy6-page.png). Exits 1 when a test
# fails, printing the demo's logs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

artifacts=${1:-target/browser-artifacts}
dir=target/test-services/demo

export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    if [ "$CHROMIUM" != /usr/bin/chromium ]; then
        echo "CHROMIUM=$CHROMIUM is not an executable" >&2
        exit 1
    fi
    apt_install chromium
fi
"$CHROMIUM" --version 2>/dev/null # (Debian's wrapper script warns on stderr)

cleanup() {
    status=$?
    if [ $status -ne 0 ]; then
        for log in "$dir/server.log" "$dir/worker.log" "$dir/moto/moto.log" "$dir/clamd/clamd.log"; do
            if [ -f "$log" ]; then
                echo "--- $log (last 40 lines) ---" >&2
                tail -n 40 "$log" >&2 || true
            fi
        done
    fi
    scripts/demo.sh stop "$dir" || true
    exit $status
}
trap cleanup EXIT

scripts/demo.sh start "$dir" 0
set -a
# shellcheck disable=SC1091
. "$dir/env"
set +a
rm -rf "$artifacts"
ARTIFACTS=$(realpath -m "$artifacts") node examples/web/tests/browser.mjs
