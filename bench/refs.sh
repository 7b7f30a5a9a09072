#!/usr/bin/env bash
# Times `cat`, `zodbctl fsrefs`, `zodbctl analyze` and `zodbctl fsstats` (all
# > /dev/null) on one Data.fs in the same run (warm page cache), and prints
# each one's ratio to cat, peak RSS, and that RSS divided by the number of
# objects (fsstats' count; the whole RSS, so the ~10 MiB any Go process
# has is in it: compare files of different sizes for the marginal cost).
#
#   go run ./bench/gendata -size 500MB -o /tmp/bench500.fs   # if not there yet
#   bench/refs.sh /tmp/bench500.fs
#
# Runs each command RUNS times (default 3) and keeps the best wall time (the
# peak RSS is the largest seen). Where Python's ZODB is importable, fsrefs.py
# and analyze.py are timed too (PYTHON=... to choose the interpreter).
# Issue 3's targets: fsrefs within 4x of cat, analyze at least 10x faster
# than analyze.py (5.2 s on a 488 MB file), memory bounded by the objects.
set -euo pipefail
file=${1:?usage: bench/refs.sh FILE}
runs=${RUNS:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$(mktemp -d)/zodbctl
trap 'rm -rf "$(dirname "$bin")"' EXIT
(cd "$here" && go build -o "$bin" .)
cat "$file" > /dev/null # warm the page cache

# Peak RSS from /usr/bin/time -v (n/a without it: a wrapper in Python or
# bash would be counted in, Linux carries the parent's high-water mark
# across exec).
have_time=0
[ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1 && have_time=1

# run NAME CMD... : best wall seconds and peak RSS (KiB) over $runs runs.
# fsrefs exits 1 when something dangles; the exit status is not the point.
run() {
	local name=$1; shift
	local best="" rss=0 t0 t1 secs r tv=$(dirname "$bin")/time.out
	for _ in $(seq "$runs"); do
		t0=$(date +%s.%N)
		if [ $have_time = 1 ]; then
			/usr/bin/time -v -o "$tv" "$@" > /dev/null 2>&1 || true
			r=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tv")
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
# fsstats' summary line: "Summary: N txns, M objects, R revisions".
objects=$("$bin" fsstats "$file" 2>/dev/null | awk '/^Summary:/ {print $4}')
printf 'file: %s (%d bytes, %s objects)\n' "$file" "$size" "${objects:-?}"
results=$(
	run cat cat "$file"
	run fsrefs "$bin" fsrefs "$file"
	run analyze "$bin" analyze "$file"
	run fsstats "$bin" fsstats "$file"
	py=${PYTHON:-python3}
	if "$py" -c 'import ZODB' 2>/dev/null; then
		run fsrefs.py "$py" -m ZODB.scripts.fsrefs "$file"
		run analyze.py "$py" -m ZODB.scripts.analyze "$file"
	fi
)
cat_s=$(echo "$results" | awk '$1=="cat" {print $2}')
printf '%-10s %10s %10s %12s %12s\n' command seconds "x cat" "peak RSS" "B/object"
echo "$results" | while read -r name secs rss; do
	ratio=$(echo "scale=2; $secs / $cat_s" | bc 2>/dev/null) || ratio="?"
	if [ "$rss" = 0 ]; then rss_s="n/a"; else rss_s="$((rss / 1024)) MiB"; fi
	per="n/a"
	if [ "$rss" != 0 ] && [ -n "${objects:-}" ] && [ "$objects" -gt 0 ]; then per=$((rss * 1024 / objects)); fi
	printf '%-10s %10s %10s %12s %12s\n' "$name" "$secs" "$ratio" "$rss_s" "$per"
done
