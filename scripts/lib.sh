# Shell functions shared by the service scripts (moto.sh, s3s-fs.sh,
# azurite.sh, nats.sh, clamd.sh), test.sh and demo.sh. Source it:
#   . "$(dirname "$0")/lib.sh"

# A free TCP port on 127.0.0.1 (the OS picks it; racy only against other
# processes binding in the same instant).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# apt_install PACKAGE... : installs Debian packages quietly (CI starts on
# a bare Debian 12 as root).
apt_install() {
    echo "installing $* from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# stop_pidfile FILE [WAIT_TENTHS] : kills the process FILE names, waits up
# to WAIT_TENTHS tenths of a second (default 0) for it to exit, removes FILE.
stop_pidfile() {
    local file=$1 wait=${2:-0} pid
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq "$wait"); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$file"
}

# port_open PORT : true when something accepts TCP connections on
# 127.0.0.1:PORT.
port_open() {
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), timeout=1)" 2>/dev/null
}

# wait_ready NAME PIDFILE LOG TRIES COMMAND... : runs COMMAND every 0.2 s
# until it succeeds (returns 0), the process of PIDFILE exits, or TRIES
# attempts fail; then prints the last 30 lines of LOG and returns 1.
wait_ready() {
    local name=$1 pidfile=$2 log=$3 tries=$4
    shift 4
    for _ in $(seq "$tries"); do
        if "$@"; then
            return 0
        fi
        kill -0 "$(cat "$pidfile")" 2>/dev/null || break
        sleep 0.2
    done
    echo "$name did not start; log ($log):" >&2
    tail -n 30 "$log" >&2 || true
    return 1
}
