#!/usr/bin/env bash
# The browser tests (examples/web/tests/browser.mjs): headless Debian
# Chromium, driven by playwright-core from npm (no browser download),
# against the demo started by scripts/demo.sh (moto, clamd, worker,
# presign-server --demo) on free 127.0.0.1 ports. scripts/test.sh runs it.
#
#   scripts/browser-tests.sh [ARTIFACTS]   # default target/browser-artifacts
#
# Installs Debian's chromium when /usr/bin/chromium is missing (and, through
# scripts/demo.sh, Node.js and npm). Screenshots of the finished pages are
# left in ARTIFACTS (demo-page.png, uppy-page.png). Exits 1 when a test
# fails, printing the demo's logs.
set -euo pipefail
cd "$(dirname "$0")/.."

artifacts=${1:-target/browser-artifacts}
dir=target/test-services/demo
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [ ! -x /usr/bin/chromium ]; then
    echo "installing chromium from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null  # (its wrapper script warns on stderr)

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

scripts/demo.sh start "$dir" "$(free_port)"
set -a
# shellcheck disable=SC1091
. "$dir/env"
set +a
rm -rf "$artifacts"
ARTIFACTS=$(realpath -m "$artifacts") node examples/web/tests/browser.mjs
