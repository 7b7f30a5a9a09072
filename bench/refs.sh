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
. "$(dirname "$0")/lib.sh"
bench_setup "$file"

size=$(stat -c %s "$file")
# fsstats' summary line: "Summary: N txns, M objects, R revisions".
objects=$("$bin" fsstats "$file" 2>/dev/null | awk '/^Summary:/ {print $4}')
printf 'file: %s (%d bytes, %s objects)\n' "$file" "$size" "${objects:-?}"
results=$(
	bench_run cat cat "$file"
	bench_run fsrefs "$bin" fsrefs "$file"
	bench_run analyze "$bin" analyze "$file"
	bench_run fsstats "$bin" fsstats "$file"
	py=${PYTHON:-python3}
	if "$py" -c 'import ZODB' 2>/dev/null; then
		bench_run fsrefs.py "$py" -m ZODB.scripts.fsrefs "$file"
		bench_run analyze.py "$py" -m ZODB.scripts.analyze "$file"
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
