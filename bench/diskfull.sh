#!/usr/bin/env bash
# Disk full under `zodbctl serve`: the Data.fs lives on an 8 MiB tmpfs
# (needs root for the mount). bench/diskfull commits 64 KiB objects until
# the server refuses, checks the server still answers, the script frees
# space, commits must work again, and every acknowledged revision must load
# back. Then the server stops (SIGTERM) and the file must verify --deep.
#
#   sudo bench/diskfull.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
work=$(mktemp -d)
mnt="$work/fs"
mkdir -p "$mnt"
mount -t tmpfs -o size=8m tmpfs "$mnt"
cleanup() {
	[ -n "${srv:-}" ] && kill "$srv" 2>/dev/null || true
	wait 2>/dev/null || true
	umount "$mnt" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
go build -o "$work/zodbctl" .
go build -o "$work/diskfull" ./bench/diskfull
head -c 2M /dev/zero > "$mnt/filler"

"$work/zodbctl" serve -a 127.0.0.1:0 -f "$mnt/Data.fs" 2> "$work/serve.log" &
srv=$!
for _ in $(seq 100); do
	addr=$(sed -nE 's/.*listening on ([0-9.]+:[0-9]+).*/\1/p' "$work/serve.log" | head -1)
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { cat "$work/serve.log"; exit 1; }

coproc client { "$work/diskfull" -addr "$addr"; }
cpid=$client_PID
status=0
while IFS= read -r line <&"${client[0]}"; do
	echo "$line"
	if [ "$line" = FULL ]; then
		df -h "$mnt" | tail -1
		rm "$mnt/filler"
		echo >&"${client[1]}"
	fi
done
wait "$cpid" || status=$?
kill -TERM "$srv"
wait "$srv" || true
srv=
echo "server log (errors):"
grep -iE 'error|space|fail' "$work/serve.log" | head -5 || true
"$work/zodbctl" verify --deep "$mnt/Data.fs"
echo "Data.fs verifies; its index: $("$work/zodbctl" verify --index "$mnt/Data.fs" | tail -1)"
exit $status
