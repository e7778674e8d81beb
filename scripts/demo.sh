#!/usr/bin/env bash
# The browser demo on 127.0.0.1, everything it needs included: moto (S3 +
# SQS, scripts/moto.sh), clamd (scripts/clamd.sh, 128M stream limit), the
# buckets, queue, notifications and CORS rule for the page's origin
# (upload-setup), the worker, and presign-server --demo serving the pages.
#
#   scripts/demo.sh [PORT]           # foreground, page on http://127.0.0.1:PORT/ (default 8080); Ctrl-C stops all
#   scripts/demo.sh start DIR PORT   # background (PORT 0: any free port); returns once all runs; addresses in DIR/env
#   scripts/demo.sh stop DIR
#
# Installs what is missing: Node.js (18 or later) and npm (Debian) for `npm ci` in
# examples/web, which fetches the pinned Uppy bundle (and playwright-core,
# for scripts/browser-tests.sh). Builds the example binaries in release mode
# (several minutes the first time), unless UPLOAD_SDK_BIN_DIR names a
# directory holding them already (upload-setup, worker, presign-server). Logs: DIR/{moto/moto.log,clamd/clamd.log,
# worker.log,server.log}.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh

stop() {
    local dir=$1
    for p in server worker; do
        stop_pidfile "$dir/$p.pid"
    done
    scripts/clamd.sh stop "$dir/clamd" || true
    scripts/moto.sh stop "$dir/moto" || true
}

npm_packages() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        apt_install nodejs npm
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$major" -lt 18 ]; then
        echo "Node.js $(node --version) is too old: playwright-core 1.61 needs 18 or later" >&2
        exit 1
    fi
    # npm ci only when the lock file changed since the last install.
    if ! cmp -s examples/web/package-lock.json examples/web/node_modules/.installed-lock.json; then
        (cd examples/web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
        cp examples/web/package-lock.json examples/web/node_modules/.installed-lock.json
    fi
    # Uppy 6 (its own package: its peers conflict with Uppy 5's), bundled
    # by esbuild into examples/web/uppy6/dist for /uppy6.html.
    if ! cmp -s examples/web/uppy6/package-lock.json examples/web/uppy6/node_modules/.installed-lock.json; then
        (cd examples/web/uppy6 && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
        cp examples/web/uppy6/package-lock.json examples/web/uppy6/node_modules/.installed-lock.json
        rm -rf examples/web/uppy6/dist
    fi
    if [ ! -f examples/web/uppy6/dist/uppy6.js ]; then
        (cd examples/web/uppy6 && npm run --silent build)
    fi
}

# Waits for the first line of FILE (what a server prints once it listens)
# while PID lives; prints the line.
first_line() {
    local pid=$1 file=$2
    for _ in $(seq 300); do
        if [ -s "$file" ]; then
            head -n 1 "$file"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

start() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    stop "$dir"
    # Whatever fails below, nothing is left running.
    trap 'stop "$dir"' ERR
    npm_packages
    local bin
    if [ -n "${UPLOAD_SDK_BIN_DIR:-}" ]; then
        # Binaries built already (scripts/test.sh builds them once, in debug).
        bin=$UPLOAD_SDK_BIN_DIR
    else
        cargo build --release --locked -p upload-examples --bin upload-setup --bin worker --bin presign-server
        bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
    fi
    for b in upload-setup worker presign-server; do
        [ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing (UPLOAD_SDK_BIN_DIR=${UPLOAD_SDK_BIN_DIR:-})" >&2; return 1; }
    done

    local moto_port clamd_port endpoint
    moto_port=$(free_port)
    scripts/moto.sh start "$dir/moto" "$moto_port"
    clamd_port=$(free_port)
    scripts/clamd.sh start "$dir/clamd" "$clamd_port" 128M
    endpoint=http://127.0.0.1:$moto_port

    # moto takes any credentials; the presigner signs with these.
    export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1
    unset AWS_PROFILE AWS_SESSION_TOKEN
    local aws=(--endpoint-url "$endpoint" --region us-east-1)
    local buckets=(--uploads-bucket demo-uploads --processed-bucket demo-processed)

    # The server first (PORT 0: any free port), so the CORS rule names the
    # origin it really got.
    "$bin/presign-server" "${aws[@]}" "${buckets[@]}" --listen "127.0.0.1:$port" --demo \
        >"$dir/server.out" 2>"$dir/server.log" &
    echo $! >"$dir/server.pid"
    local line origin
    if ! line=$(first_line "$(cat "$dir/server.pid")" "$dir/server.out"); then
        echo "presign-server did not start on 127.0.0.1:$port:" >&2
        tail -n 20 "$dir/server.log" >&2
        false
    fi
    origin=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["listening"])' "$line")

    "$bin/upload-setup" "${aws[@]}" "${buckets[@]}" --queue-name demo-events --cors-origin "$origin" \
        --allow-unscanned-reads >"$dir/setup.json"  # moto evaluates bucket policies without their conditions
    local queue_url
    queue_url=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["queue_url"])' "$dir/setup.json")
    "$bin/worker" "${aws[@]}" "${buckets[@]}" --queue-url "$queue_url" \
        --clamd "127.0.0.1:$clamd_port" --wait-seconds 1 >"$dir/worker.out" 2>"$dir/worker.log" &
    echo $! >"$dir/worker.pid"
    sleep 1
    if ! kill -0 "$(cat "$dir/worker.pid")" 2>/dev/null; then
        echo "the worker exited:" >&2
        tail -n 20 "$dir/worker.log" >&2
        false
    fi
    trap - ERR
    cat >"$dir/env" <<EOF
DEMO_URL=$origin
DEMO_S3_ENDPOINT=$endpoint
DEMO_UPLOADS_BUCKET=demo-uploads
DEMO_PROCESSED_BUCKET=demo-processed
EOF
}

case "${1:-}" in
start)
    start "${2:?usage: demo.sh start DIR PORT}" "${3:?usage: demo.sh start DIR PORT}"
    ;;
stop)
    stop "${2:?usage: demo.sh stop DIR}"
    ;;
"" | [0-9]*)
    port=${1:-8080}
    dir=target/demo
    trap 'stop "$dir"' EXIT
    start "$dir" "$port"
    echo
    url=$(grep DEMO_URL "$dir/env" | cut -d= -f2)
    echo "demo page:  $url/"
    echo "with Uppy:  $url/uppy.html"
    echo "(storage at $(grep DEMO_S3_ENDPOINT "$dir/env" | cut -d= -f2); logs in $dir; Ctrl-C stops everything)"
    wait
    ;;
*)
    echo "usage: demo.sh [PORT] | start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
