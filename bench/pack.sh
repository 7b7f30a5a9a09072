#!/usr/bin/env bash
# Times `zodbctl pack` (GC, pack time = now) of a copy of FILE against `cat`
# of it, with peak RSS, and prints the packed size.
#
#   bench/pack.sh FILE            # FILE: any Data.fs (it is copied, never modified)
#   bench/pack.sh --gen 500000000 /tmp/graph500.fs
#
# --gen SIZE OUT first writes a graph Data.fs of about SIZE bytes (objects in a
# tree under the root, ~75% of the records superseded or garbage) with the
# generator in fsformat/pack (bench/gendata's files have an undone root, on
# which a GC pack, Python's included, cannot run).
#
# Each command runs RUNS times (default 3); the best wall time is kept.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = "--gen" ]; then
	size=${2:?usage: bench/pack.sh --gen SIZE OUT}
	out=${3:?usage: bench/pack.sh --gen SIZE OUT}
	(cd "$here" && ZODBCTL_PACK_BENCH_OUT=$out ZODBCTL_PACK_BENCH_SIZE=$size \
		go test -count=1 -run '^TestWriteBenchFile$' -v ./fsformat/pack/ | grep -E 'records|^ok|FAIL')
	set -- "$out"
fi
file=${1:?usage: bench/pack.sh FILE}
runs=${RUNS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=$work/zodbctl
(cd "$here" && go build -o "$bin" .)
cat "$file" > /dev/null # warm the page cache

have_time=0
[ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1 && have_time=1

best_cat=""
for _ in $(seq "$runs"); do
	t0=$(date +%s.%N); cat "$file" > /dev/null; t1=$(date +%s.%N)
	s=$(echo "scale=3; ($t1 - $t0)/1" | bc)
	if [ -z "$best_cat" ] || [ "$(echo "$s < $best_cat" | bc)" = 1 ]; then best_cat=$s; fi
done

best="" rss=0 summary=""
for _ in $(seq "$runs"); do
	rm -f "$work"/Data.fs*
	cp "$file" "$work/Data.fs"
	sync "$work/Data.fs" # do not time the flush of the copy
	cat "$work/Data.fs" > /dev/null
	t0=$(date +%s.%N)
	if [ $have_time = 1 ]; then
		out=$( { /usr/bin/time -v "$bin" pack "$work/Data.fs"; } 2>&1 )
		r=$(printf '%s\n' "$out" | awk -F': ' '/Maximum resident set size/ {print $2}')
		[ "${r:-0}" -gt "$rss" ] && rss=$r
	else
		out=$("$bin" pack "$work/Data.fs" 2>&1)
	fi
	t1=$(date +%s.%N)
	summary=$(printf '%s\n' "$out" | grep -E 'packed|not packed|revisions|unreachable' | cut -c1-120 || true)
	s=$(echo "scale=3; ($t1 - $t0)/1" | bc)
	if [ -z "$best" ] || [ "$(echo "$s < $best" | bc)" = 1 ]; then best=$s; fi
done
live=$("$bin" reindex "$work/Data.fs" | awk '{print $2}')

printf 'file: %s (%d bytes)\n%s\n' "$file" "$(stat -c %s "$file")" "$summary"
printf '%-6s %10s %10s %12s\n' command seconds "x cat" "peak RSS"
printf '%-6s %10s %10s %12s\n' cat "$best_cat" 1 -
if [ "$rss" = 0 ]; then rss_s="n/a"; else rss_s="$((rss / 1024)) MiB"; fi
printf '%-6s %10s %10s %12s\n' pack "$best" "$(echo "scale=1; $best / $best_cat" | bc)" "$rss_s"
if [ "$rss" != 0 ] && [ "${live:-0}" -gt 0 ]; then
	printf 'live objects after pack: %d; RSS target 64 MiB + 40 B/object = %d MiB\n' "$live" $(( (64*1048576 + 40*live) / 1048576 ))
fi
