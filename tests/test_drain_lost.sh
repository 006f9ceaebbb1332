#!/usr/bin/env bash
# A server dies while a stripe is being moved off it (docs/design.md,
# "Draining a server"): on a real local cluster (redis + two dsm-servers),
# tests/drain_lost makes every page of a two-stripe region newest in its
# memory, a drain of one server starts moving that server's stripe (the
# mover stalled before its READ by DSM_TEST_MOVE_STALL_MS), the client
# evicts the whole region (so the moving stripe's write-backs are held in
# the move), and the old server dies: SIGKILLed before the READ goes out,
# and, with a fresh cluster, SIGSTOPped before it and SIGKILLed once it is
# out (in flight).  Nothing the client held may be lost: every word reads back exactly, no
# page raises SIGBUS, and the client's log says the move failed and how
# many pages its held write-backs kept.
#   test_drain_lost.sh BUILD_DIR      (exit 77: redis-server is not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
client=$build/tests/drain_lost
failed=0
stall_ms=5000 # the kill must land in it: seconds of margin, under ASan too

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=2 CAPACITY=64M CLUSTER=drainlost-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS

said() { grep -q "$1" "$2" 2>/dev/null; }
used_is() { [ "$(server_field "$1" used 2>/dev/null)" = "$2" ]; }

# run_case WHEN: a fresh cluster and client; the old server dies either
# "before" the move's READ is sent (SIGKILL in the stall), or while it is
# "inflight" (SIGSTOP in the stall, so the READ goes out and is never
# answered, then SIGKILL after it: the transport fails it with the server).
run_case() {
	local when=$1 out=$tmp/$1.out err=$tmp/$1.err pid victim victim_pid t0 rc line
	echo "--- the old server dies: $when (the move's READ)"
	"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster up"; }
	for i in 1 2; do all_pids+=("$(cat "$RUN_DIR/server-$i.pid")"); done
	all_pids+=("$(cat "$RUN_DIR/redis.pid")")

	DSM_LOG=debug DSM_EVICT=fifo DSM_LOCAL_MEM=3M \
		DSM_TEST_MOVE_STALL_MS=$stall_ms "$client" >"$out" 2>"$err" &
	pid=$!
	wait_for 30 said '^ready' "$out" || fatal "client not ready: $(tail -5 "$err")"
	# each server holds one stripe of the region: drain the first
	victim=$("$dsmctl" --json servers | json_get 'd[0]["id"]')
	victim_pid=$(server_field "$victim" pid)
	wait_for 10 used_is "$victim" $((1 << 20)) || # its record, at a heartbeat
		fatal "server $victim does not hold one stripe: $("$dsmctl" --json servers)"
	"$dsmctl" drain "$victim" --no-wait >"$tmp/drain.out" 2>&1 ||
		fatal "drain: $(cat "$tmp/drain.out")"
	wait_for 20 said "moving 256 pages at .* from server" "$err" ||
		fatal "the client never started moving: $(grep -v debug "$err" | tail -5)"
	t0=$SECONDS
	kill -USR1 $pid # churn: the moving stripe's write-backs are held
	wait_for 20 said '^churned' "$out" || fatal "client did not churn"
	if [ "$when" = before ]; then
		kill -KILL "$victim_pid"
	else
		kill -STOP "$victim_pid"
	fi
	[ $((SECONDS - t0)) -lt $((stall_ms / 1000)) ] ||
		fail "$when: the server was stopped $((SECONDS - t0)) s into a $stall_ms ms stall: too late to test anything"
	if [ "$when" = inflight ]; then
		# the stall is over: the READ is out, unanswered
		while [ $SECONDS -lt $((t0 + stall_ms / 1000 + 2)) ]; do sleep 0.2; done
		kill -KILL "$victim_pid"
	fi
	kill -USR1 $pid # check every word (waits out the stall first)

	timeout 60 tail --pid=$pid -f /dev/null
	wait $pid
	rc=$?
	line=$(grep '^check' "$out")
	echo "client: exit $rc: $line"
	grep -E 'moving .* failed|lost connection' "$err"
	[ $rc = 0 ] || fail "$when: client exited $rc: $(grep -v debug "$err" | tail -8)"
	grep -q 'sigbus=0 mismatches=0$' <<<"$line" || fail "$when: data lost: $line"
	# the case happened: the move's READ failed, the server dead first
	grep -q "moving 256 pages at .* failed: " "$err" ||
		fail "$when: the move did not fail: the test proved nothing"
	grep -Eq "failed: .*; 0 pages lost .*, [1-9][0-9]* pages kept" "$err" ||
		fail "$when: held write-backs were not kept: $(grep 'pages lost' "$err")"
	"$top/deploy/cluster.sh" down >/dev/null 2>&1
}

run_case before
run_case inflight

[ $failed = 0 ] && echo "PASS: test_drain_lost"
exit $failed
