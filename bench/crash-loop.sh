#!/usr/bin/env bash
# Runs the kill -9 tests N times each and reports the passes per test:
#   serve   commands  TestServeCrash* (kill -9 of zodbctl serve under 4 clients committing,
#                     and during GC packs)
#           zeowire   TestCrashDuringCommits (the server core, same idea)
#   pack    fsformat/pack TestKillDuringPack (every hook point of a pack)
#           commands  TestPackKilled (zodbctl pack killed at random moments)
#   reindex commands  TestReindexKilled, TestReindexCrash
#   append  fsformat  TestAppenderCrash
# (go test -run 'Crash|Kill' -count N; the child-process halves skip.)
#
#   bench/crash-loop.sh 100                 # every group, 100 times each
#   bench/crash-loop.sh 100 pack reindex    # only these groups
#   bench/crash-loop.sh 20 serve
#
# Exit status 0 only if every run of every test passed.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
n=${1:-10}
shift || true
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(append pack reindex serve)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
for g in "${groups[@]}"; do
	case $g in
	serve) specs=("./commands/ ^TestServeCrash" "./zeowire/ ^TestCrashDuringCommits$") ;;
	pack) specs=("./fsformat/pack/ ^TestKillDuringPack$" "./commands/ ^TestPackKilled$") ;;
	reindex) specs=("./commands/ ^(TestReindexKilled|TestReindexCrash)$") ;;
	append) specs=("./fsformat/ ^TestAppenderCrash$") ;;
	*) echo "crash-loop: unknown group $g (serve, pack, reindex, append)" >&2; exit 2 ;;
	esac
	for spec in "${specs[@]}"; do
		read -r pkg re <<<"$spec"
		start=$(date +%s)
		go test -count="$n" -run "$re" -v -timeout 6h "$pkg" >"$out" 2>&1
		rc=$?
		secs=$(( $(date +%s) - start ))
		for t in $(grep -oE '^--- (PASS|FAIL): [A-Za-z0-9_]+' "$out" | awk '{print $3}' | sort -u); do
			p=$(grep -cE "^--- PASS: $t " "$out")
			f=$(grep -cE "^--- FAIL: $t " "$out")
			printf '%-8s %-28s %4d passed, %d failed of %d (%ds for the package run)\n' "$g" "$t" "$p" "$f" "$n" "$secs"
			[ "$f" -ne 0 ] && status=1
			[ "$p" -ne "$n" ] && status=1
		done
		if [ $rc -ne 0 ]; then
			status=1
			echo "crash-loop: go test $pkg -run '$re' failed (exit $rc); the failures:"
			grep -E -B4 '^\s*--- FAIL' "$out" | head -60
			grep -E '^(panic|FAIL|fatal)' "$out" | head -10
		fi
	done
done
exit $status
