#!/usr/bin/env bash
# Runs bench/serve-load against `zodbctl serve` on a fresh Data.fs and
# reports loads/s (1 and 8 clients), commits/s (1 and 4 clients), p50/p99
# latency and the server's CPU time per operation (user+system from
# /proc/PID/stat divided by the server's own loads/commits counters).
#
#   bench/serve.sh                    # 5 s per phase
#   DURATION=10s OBJECTS=10000 bench/serve.sh
#   DIR=/path/on/a/real/disk bench/serve.sh   # where Data.fs goes (fsync cost!)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
dir=${DIR:-$work}
trap 'kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$here" && go build -o "$work/zodbctl" . && go build -o "$work/serve-load" ./bench/serve-load)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18100)
rm -f "$dir/Data.fs" "$dir/Data.fs.index"
# PROFILE=FILE writes the server's Go CPU profile (go tool pprof FILE).
"$work/zodbctl" serve -a "127.0.0.1:$port" -f "$dir/Data.fs" ${PROFILE:+--cpu-profile "$PROFILE"} 2>"$work/serve.log" &
spid=$!
for _ in $(seq 100); do
	grep -q "listening on" "$work/serve.log" 2>/dev/null && break
	sleep 0.05
done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
"$work/serve-load" -addr "127.0.0.1:$port" -pid "$spid" \
	-objects "${OBJECTS:-10000}" -size "${SIZE:-100}" -duration "${DURATION:-5s}" \
	-load-clients "${LOAD_CLIENTS:-1,8}" -commit-clients "${COMMIT_CLIENTS:-1,4}"
kill -TERM "$spid"
wait "$spid"
echo "server exited $? ($(ls -l "$dir/Data.fs" | awk '{print $5}') bytes in Data.fs)"
