#!/usr/bin/env bash
# The kill -9 test of `zodbctl serve`, longer: ROUNDS times (default 50) a
# child server on one Data.fs gets streams of commits from 4 concurrent
# clients (one object each) and is killed with
# SIGKILL at a random moment (50–300 ms in), then restarted. At the end the
# file must verify, hold every transaction whose tpc_finish reply reached
# the client, and nothing that was not sent (commands/serve_test.go,
# TestServeCrash). TestServeCrashDuringPack does the same with GC packs
# running in a loop from a second client (the root must be at the last
# acknowledged transaction or later after every restart).
#
#   bench/crash-serve.sh            # 50 rounds
#   ROUNDS=500 bench/crash-serve.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
ZODBCTL_CRASH_ROUNDS=${ROUNDS:-50} go test -count=1 -run '^TestServeCrash(DuringPack)?$' -v -timeout 60m ./commands/ |
	grep -E 'rounds|^--- |^(ok|FAIL)|serve_test.go'
