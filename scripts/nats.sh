#!/usr/bin/env bash
# Starts or stops a private nats-server with JetStream on 127.0.0.1.
#
#   scripts/nats.sh start DIR PORT   # returns once JetStream answers; pid in DIR/nats.pid
#   scripts/nats.sh stop DIR
#
# Installs Debian's nats-server (2.9.x on bookworm) with apt when missing.
# JetStream stores its streams under DIR/jetstream (file storage); no
# authentication, no cluster, no HTTP monitoring port. The log is
# DIR/nats.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:?usage: nats.sh start|stop DIR [PORT]}
dir=${2:?usage: nats.sh start|stop DIR [PORT]}

case "$cmd" in
stop)
    stop_pidfile "$dir/nats.pid"
    exit 0
    ;;
start) ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac

port=${3:?usage: nats.sh start DIR PORT}
server=$(command -v nats-server || true)
if [ -z "$server" ] && [ -x /usr/sbin/nats-server ]; then
    server=/usr/sbin/nats-server
fi
if [ -z "$server" ]; then
    apt_install nats-server
    server=$(command -v nats-server || echo /usr/sbin/nats-server)
fi
mkdir -p "$dir/jetstream"
"$server" -a 127.0.0.1 -p "$port" --jetstream --store_dir "$dir/jetstream" \
    --log "$dir/nats.log" &
echo $! > "$dir/nats.pid"
# Ready when the log says the server is ready and its INFO line lists
# JetStream.
jetstream_ready() {
    grep -q "Server is ready" "$dir/nats.log" 2>/dev/null &&
        python3 - "$port" <<'PY' 2>/dev/null
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
line = s.makefile("rb").readline().decode()
assert line.startswith("INFO ") and json.loads(line[5:]).get("jetstream"), line
PY
}
wait_ready "nats-server on 127.0.0.1:$port" "$dir/nats.pid" "$dir/nats.log" 50 jetstream_ready
