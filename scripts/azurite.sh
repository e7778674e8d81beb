#!/usr/bin/env bash
# Starts or stops a private Azurite (Azure Blob Storage emulator, blob
# service only) on 127.0.0.1.
#
#   scripts/azurite.sh start DIR PORT   # returns once it answers; pid in DIR/azurite.pid
#   scripts/azurite.sh stop DIR
#
# Installs the npm package azurite@3.35.0 under
# ${UPLOAD_SDK_CACHE:-~/.cache/upload-sdk}/azurite-3.35.0 when missing, and
# Node.js with npm from Debian when they are missing (3.36+ need Node 21+;
# Debian 12 ships Node 18, which runs 3.35). The account is
# Azurite's well-known development account (devstoreaccount1, path-style URLs
# http://127.0.0.1:PORT/devstoreaccount1/CONTAINER/BLOB). Data lives in
# DIR/data, the log is DIR/azurite.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:?usage: azurite.sh start|stop DIR [PORT]}
dir=${2:?usage: azurite.sh start|stop DIR [PORT]}
version=3.35.0
cache=${UPLOAD_SDK_CACHE:-$HOME/.cache/upload-sdk}
prefix=$cache/azurite-$version

case "$cmd" in
stop)
    stop_pidfile "$dir/azurite.pid"
    exit 0
    ;;
start) ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac

port=${3:?usage: azurite.sh start DIR PORT}
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    # A fresh machine: Debian's Node.js (18 in Debian 12) runs azurite 3.35.
    apt_install nodejs npm
fi
if [ ! -x "$prefix/node_modules/.bin/azurite-blob" ]; then
    echo "installing azurite@$version into $prefix" >&2
    rm -rf "$prefix"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "azurite@$version" >&2
fi
mkdir -p "$dir/data"
"$prefix/node_modules/.bin/azurite-blob" \
    --blobHost 127.0.0.1 --blobPort "$port" \
    --location "$dir/data" --disableTelemetry \
    --loose --skipApiVersionCheck --disableProductStyleUrl \
    > "$dir/azurite.log" 2>&1 &
echo $! > "$dir/azurite.pid"
wait_ready "azurite on 127.0.0.1:$port" "$dir/azurite.pid" "$dir/azurite.log" 300 port_open "$port"
