#!/usr/bin/env bash
# Starts or stops a private moto server (S3 + SQS on one endpoint) on 127.0.0.1.
#
#   scripts/moto.sh start DIR PORT   # returns once the server answers; pid in DIR/moto.pid
#   scripts/moto.sh stop DIR
#
# Installs moto[server]==5.1.22 from PyPI into a virtualenv under
# ${UPLOAD_SDK_CACHE:-~/.cache/upload-sdk}/moto-5.1.22 when missing (under a
# minute). Not 5.2.x: its ListParts and CompleteMultipartUpload XML breaks
# aws-sdk-s3. moto does not verify signatures (any credentials work, account
# 123456789012, region us-east-1); it delivers S3 event notifications to SQS.
# The log is DIR/moto.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:?usage: moto.sh start|stop DIR [PORT]}
dir=${2:?usage: moto.sh start|stop DIR [PORT]}
version=5.1.22
cache=${UPLOAD_SDK_CACHE:-$HOME/.cache/upload-sdk}
venv=$cache/moto-$version

case "$cmd" in
stop)
    stop_pidfile "$dir/moto.pid"
    exit 0
    ;;
start) ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac

port=${3:?usage: moto.sh start DIR PORT}
if ! "$venv/bin/python" -c "import moto, flask_cors" 2>/dev/null; then
    echo "installing moto[server]==$version into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$version"
fi
mkdir -p "$dir"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$dir/moto.log" 2>&1 &
echo $! > "$dir/moto.pid"
moto_answers() {
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null
}
wait_ready "moto on 127.0.0.1:$port" "$dir/moto.pid" "$dir/moto.log" 300 moto_answers
