#!/usr/bin/env bash
# Load test of `zodbctl serve`: 100 concurrent clients for 60 s on loopback
# (bench/load100), mixing loads of small objects and small read-then-write
# commits that conflict on a few hot objects, against a fresh Data.fs with
# fsync per commit. Reports ops, errors (must be 0; ConflictErrors are
# expected and counted apart), p50/p99 of loads and commits, the server's
# peak RSS (VmHWM) and CPU; then stops the server with SIGTERM (exit 0
# expected) and runs `zodbctl verify` on the file. Bounded: the whole run
# is killed after DURATION + 5 min. Exit status 0 only if all of it held.
#
#   bench/load-100.sh
#   CLIENTS=100 DURATION=60s HOT=100 COMMIT_RATIO=0.1 bench/load-100.sh
#   DIR=/path/on/a/real/disk bench/load-100.sh   # where Data.fs goes
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
dir=${DIR:-$work}
spid=
cleanup() {
	if [ -n "$spid" ]; then kill -KILL "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
(cd "$here" && go build -o "$work/zodbctl" . && go build -o "$work/load100" ./bench/load100)
rm -f "$dir/Data.fs" "$dir/Data.fs.index" "$dir/Data.fs.lock"
# Port 0: the server picks a free port and logs it.
"$work/zodbctl" serve -a "127.0.0.1:0" -f "$dir/Data.fs" 2>"$work/serve.log" &
spid=$!
addr=
for _ in $(seq 200); do
	addr=$(grep -o 'listening on [0-9.:]*' "$work/serve.log" 2>/dev/null | head -1 | awk '{print $3}') || true
	[ -n "$addr" ] && break
	sleep 0.05
done
if [ -z "$addr" ]; then
	echo "load-100: the server did not start:" >&2
	cat "$work/serve.log" >&2
	exit 1
fi
echo "zodbctl serve pid $spid on $addr, Data.fs in $dir"
dur=${DURATION:-60s}
status=0
timeout --signal=KILL "$(( ${dur%s} + 300 ))" "$work/load100" -addr "$addr" -pid "$spid" \
	-clients "${CLIENTS:-100}" -duration "$dur" -hot "${HOT:-100}" \
	-commit-ratio "${COMMIT_RATIO:-0.1}" -objects "${OBJECTS:-10000}" -size "${SIZE:-100}" || status=$?
kill -TERM "$spid"
sstatus=0
wait "$spid" || sstatus=$?
spid=
echo "server exited $sstatus ($(stat -c %s "$dir/Data.fs") bytes in Data.fs); errors in its log: $(grep -c 'level=ERROR' "$work/serve.log" || true)"
vstatus=0
"$work/zodbctl" verify "$dir/Data.fs" || vstatus=$?
echo "verify exited $vstatus"
if [ "$status" -ne 0 ] || [ "$sstatus" -ne 0 ] || [ "$vstatus" -ne 0 ]; then
	echo "load-100: FAILED (load $status, server $sstatus, verify $vstatus)"
	exit 1
fi
echo "load-100: held"
