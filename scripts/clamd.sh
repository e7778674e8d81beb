#!/usr/bin/env bash
# Starts or stops a private clamd for tests and benchmarks, on 127.0.0.1.
#
#   scripts/clamd.sh start DIR [PORT] [STREAM_MAX]   # prints nothing; clamd is up when it returns
#   scripts/clamd.sh stop DIR
#
# DIR gets clamd.conf, the Unix socket (DIR/clamd.sock, or a short path in
# /tmp when that would pass the 107-byte limit of socket paths; the path
# used is written to DIR/socket-path), the log, a temporary
# folder and a signature database of our own: the official databases cannot
# be downloaded here, so the daemon loads only
#   - the EICAR test file as ClamAV's official database has it: a whole-file
#     MD5 signature (.hdb) of the exact 68-byte file, so EICAR inside a
#     larger file is not a match, while an archive member that is the file
#     is (reported as "Win.Test.EICAR_HDB-1.UNOFFICIAL": unsigned local
#     databases get that suffix); built from pieces so no file of the
#     repository is the EICAR string;
#   - a project test signature for the string UPLOAD-SDK-TEST-MALWARE-7f3a
#     anywhere in a file ("UploadSdk.Test.Marker.UNOFFICIAL"), for
#     "infected image" fixtures (upload_scan::test_marker).
# PORT defaults to 3310; STREAM_MAX (clamd StreamMaxLength, K/M/G suffixes
# allowed) defaults to 32M. The archive limits are fixed so that tests can
# build archives past them: MaxFileSize = STREAM_MAX, MaxScanSize =
# 4 x STREAM_MAX, MaxRecursion 17, MaxFiles 10000 (clamd's defaults), and
# AlertExceedsMax / AlertEncrypted are on, so a file clamd could not scan
# fully is reported (Heuristics.Limits.Exceeded.*, Heuristics.Encrypted.*)
# instead of answered OK; ClamdScanner turns those into Unscannable.
# Installs Debian's clamav-daemon (and clamdscan, for the benchmark) when
# missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

cmd=${1:?usage: clamd.sh start|stop DIR [PORT] [STREAM_MAX]}
dir=${2:?usage: clamd.sh start|stop DIR [PORT] [STREAM_MAX]}
port=${3:-3310}
stream_max=${4:-32M}

ping_clamd() {
    python3 - "$port" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(b"zPING\0")
    ok = s.recv(16).startswith(b"PONG")
except OSError:
    ok = False
sys.exit(0 if ok else 1)
PY
}

case "$cmd" in
stop)
    stop_pidfile "$dir/clamd.pid" 50
    exit 0
    ;;
start) ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac

if ! command -v clamd >/dev/null || ! command -v clamdscan >/dev/null; then
    apt_install clamav-daemon clamdscan
fi
clamd_bin=$(command -v clamd || echo /usr/sbin/clamd)

if ping_clamd; then
    echo "port $port already answers PING: another clamd is running there" >&2
    exit 1
fi

mkdir -p "$dir/db" "$dir/tmp"
dir=$(cd "$dir" && pwd)
sock="$dir/clamd.sock"
if [ ${#sock} -gt 100 ]; then
    sock="${TMPDIR:-/tmp}/upload-sdk-clamd-$(printf '%s' "$dir" | cksum | cut -d' ' -f1).sock"
fi
printf '%s\n' "$sock" >"$dir/socket-path"
rm -f "$dir/db/upload-sdk-test.ndb"
python3 - "$dir/db" <<'PY'
import hashlib, sys
# The EICAR test file, from two halves.
eicar = (r"X5O!P%@AP[4\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()
marker = "UPLOAD-SDK-TEST-" + "MALWARE-7f3a"
with open(sys.argv[1] + "/upload-sdk-eicar.hdb", "w") as f:
    # MD5:size:name, as Win.Test.EICAR_HDB-1 in ClamAV's official daily.cvd.
    f.write(f"{hashlib.md5(eicar).hexdigest()}:{len(eicar)}:Win.Test.EICAR_HDB-1\n")
with open(sys.argv[1] + "/upload-sdk-marker.ndb", "w") as f:
    f.write(f"UploadSdk.Test.Marker:0:*:{marker.encode().hex()}\n")
PY
bytes_of() {
    case "$1" in
    *[kK]) echo $((${1%?} * 1024)) ;;
    *[mM]) echo $((${1%?} * 1024 * 1024)) ;;
    *[gG]) echo $((${1%?} * 1024 * 1024 * 1024)) ;;
    *) echo "$1" ;;
    esac
}
max_scan_size=$((4 * $(bytes_of "$stream_max")))
cat > "$dir/clamd.conf" <<CONF
Foreground yes
LogFile $dir/clamd.log
LogTime yes
DatabaseDirectory $dir/db
TemporaryDirectory $dir/tmp
LocalSocket $sock
TCPSocket $port
TCPAddr 127.0.0.1
StreamMaxLength $stream_max
MaxFileSize $stream_max
MaxScanSize $max_scan_size
MaxRecursion 17
MaxFiles 10000
AlertExceedsMax yes
AlertEncrypted yes
MaxThreads 12
ReadTimeout 30
CommandReadTimeout 10
IdleTimeout 60
CONF
rm -f "$sock"
"$clamd_bin" --config-file="$dir/clamd.conf" >"$dir/clamd.stdout" 2>&1 &
echo $! >"$dir/clamd.pid"
# clamd's own exit code says nothing (it exits 0 even when the port is
# taken): wait for PING to answer instead.
for _ in $(seq 300); do
    if ping_clamd && [ -S "$sock" ]; then
        exit 0
    fi
    if ! kill -0 "$(cat "$dir/clamd.pid")" 2>/dev/null; then
        echo "clamd exited; its log:" >&2
        cat "$dir/clamd.stdout" "$dir/clamd.log" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.2
done
echo "clamd did not answer PING on 127.0.0.1:$port within 60 s; its log:" >&2
cat "$dir/clamd.log" >&2 2>/dev/null || true
exit 1
