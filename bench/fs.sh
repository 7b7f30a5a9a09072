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
. "$(dirname "$0")/lib.sh"
bench_setup "$file"

size=$(stat -c %s "$file")
printf 'file: %s (%d bytes)\n' "$file" "$size"
results=$(
	bench_run cat cat "$file"
	bench_run verify "$bin" verify "$file"
	bench_run fsdump "$bin" fsdump "$file"
	# The Python tools, where ZODB is importable (PYTHON=... to choose).
	py=${PYTHON:-python3}
	if "$py" -c 'import ZODB' 2>/dev/null; then
		bench_run fstest.py "$py" -m ZODB.scripts.fstest "$file"
		bench_run fsdump.py "$py" -m ZODB.FileStorage.fsdump "$file"
	fi
)
cat_s=$(echo "$results" | awk '$1=="cat" {print $2}')
printf '%-10s %10s %10s %12s\n' command seconds "x cat" "peak RSS"
echo "$results" | while read -r name secs rss; do
	ratio=$(echo "scale=2; $secs / $cat_s" | bc 2>/dev/null) || ratio="?"
	if [ "$rss" = 0 ]; then rss_s="n/a"; else rss_s="$((rss / 1024)) MiB"; fi
	printf '%-10s %10s %10s %12s\n' "$name" "$secs" "$ratio" "$rss_s"
done
