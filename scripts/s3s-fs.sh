#!/usr/bin/env bash
# Starts or stops a private s3s-fs server (filesystem-backed S3 that verifies
# SigV4 headers, presigned URLs and POST policies) on 127.0.0.1.
#
#   scripts/s3s-fs.sh start DIR PORT ACCESS_KEY SECRET_KEY   # returns once it answers
#   scripts/s3s-fs.sh stop DIR
#
# Installs s3s-fs 0.14.1 with `cargo install --locked` into
# ${UPLOAD_SDK_CACHE:-~/.cache/upload-sdk}/s3s-fs-0.14.1 when missing (about
# 3.5 minutes on 2 cores; 0.15+ needs a newer rustc than 1.95). Data lives
# in DIR/data; the log is DIR/s3s-fs.log. s3s-fs has no notifications, no
# tagging and no ListMultipartUploads.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:?usage: s3s-fs.sh start|stop DIR [PORT ACCESS_KEY SECRET_KEY]}
dir=${2:?usage: s3s-fs.sh start|stop DIR [PORT ACCESS_KEY SECRET_KEY]}
version=0.14.1
cache=${UPLOAD_SDK_CACHE:-$HOME/.cache/upload-sdk}
root=$cache/s3s-fs-$version

case "$cmd" in
stop)
    stop_pidfile "$dir/s3s-fs.pid"
    exit 0
    ;;
start) ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac

port=${3:?port}
access_key=${4:?access key}
secret_key=${5:?secret key}
if [ ! -x "$root/bin/s3s-fs" ]; then
    echo "installing s3s-fs $version into $root (cargo install, a few minutes)" >&2
    cargo install "s3s-fs@$version" --features binary --locked --root "$root" --quiet
fi
mkdir -p "$dir/data"
"$root/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
    --access-key "$access_key" --secret-key "$secret_key" "$dir/data" > "$dir/s3s-fs.log" 2>&1 &
echo $! > "$dir/s3s-fs.pid"
wait_ready "s3s-fs on 127.0.0.1:$port" "$dir/s3s-fs.pid" "$dir/s3s-fs.log" 150 port_open "$port"
