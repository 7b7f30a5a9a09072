#!/usr/bin/env bash
# Times `cat`, `zodbctl verify` and `zodbctl fsdump > /dev/null` on one
# Data.fs (warm page cache) and prints the ratios to cat and peak RSS.
#
#   go run ./bench/gendata -size 500MB -o /tmp/bench.fs
#   bench/fs.sh /tmp/bench.fs
#
# Runs each command RUNS times (default 3) and keeps the best wall time.
# Where Python's ZODB is importable, fstest.py and fsdump.py are timed too.
set -euo pipefail
file=${1:?usage: bench/fs.sh FILE}
runs=${RUNS:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(mktemp -d)/zodbctl
trap 'rm -rf "$(dirname "$bin")"' EXIT
(cd "$here" && go build -o "$bin" .)
cat "$file" > /dev/null # warm the page cache

have_time=0
[ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1 && have_time=1

# run NAME CMD... : best wall seconds and peak RSS (KiB) over $runs runs
run() {
	local name=$1; shift
	local best="" rss=0 t0 t1 secs out
	for _ in $(seq "$runs"); do
		t0=$(date +%s.%N)
		if [ $have_time = 1 ]; then
			out=$( { /usr/bin/time -v "$@" > /dev/null; } 2>&1 || true)
			r=$(printf '%s\n' "$out" | awk -F': ' '/Maximum resident set size/ {print $2}')
			[ "${r:-0}" -gt "$rss" ] && rss=$r
		else
			"$@" > /dev/null 2>&1 || true
		fi
		t1=$(date +%s.%N)
		secs=$(echo "scale=3; ($t1 - $t0)/1" | bc)
		if [ -z "$best" ] || [ "$(echo "$secs < $best" | bc)" = 1 ]; then best=$secs; fi
	done
	printf '%s %s %s\n' "$name" "$best" "$rss"
}

size=$(stat -c %s "$file")
printf 'file: %s (%d bytes)\n' "$file" "$size"
results=$(
	run cat cat "$file"
	run verify "$bin" verify "$file"
	run fsdump "$bin" fsdump "$file"
	# The Python tools, where ZODB is importable (PYTHON=... to choose).
	py=${PYTHON:-python3}
	if "$py" -c 'import ZODB' 2>/dev/null; then
		run fstest.py "$py" -m ZODB.scripts.fstest "$file"
		run fsdump.py "$py" -m ZODB.FileStorage.fsdump "$file"
	fi
)
cat_s=$(echo "$results" | awk '$1=="cat" {print $2}')
printf '%-10s %10s %10s %12s\n' command seconds "x cat" "peak RSS"
echo "$results" | while read -r name secs rss; do
	ratio=$(echo "scale=2; $secs / $cat_s" | bc 2>/dev/null) || ratio="?"
	if [ "$rss" = 0 ]; then rss_s="n/a"; else rss_s="$((rss / 1024)) MiB"; fi
	printf '%-10s %10s %10s %12s\n' "$name" "$secs" "$ratio" "$rss_s"
done
