# Shared by the bench/*.sh scripts (source it; not run on its own).
#
# bench_setup FILE: builds zodbctl into $bin (removed on exit) and warms the
# page cache with FILE. bench_run NAME CMD...: prints "NAME SECONDS RSS_KIB",
# the best wall time over $runs runs (RUNS, default 3) and the largest peak
# RSS seen (0 where /usr/bin/time -v is missing: a wrapper in bash or Python
# would be counted in, since Linux carries the parent's high-water mark
# across exec). Exit statuses are ignored: fsrefs exits 1 when something
# dangles, and the time is the point here.

runs=${RUNS:-3}
bench_here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_have_time=0
[ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1 && bench_have_time=1

bench_setup() {
	bin=$(mktemp -d)/zodbctl
	trap 'rm -rf "$(dirname "$bin")"' EXIT
	(cd "$bench_here" && go build -o "$bin" .)
	cat "$1" > /dev/null # warm the page cache
}

bench_run() {
	local name=$1; shift
	local best="" rss=0 t0 t1 secs r tv
	tv=$(dirname "$bin")/time.out
	for _ in $(seq "$runs"); do
		t0=$(date +%s.%N)
		if [ $bench_have_time = 1 ]; then
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
