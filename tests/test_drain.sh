#!/usr/bin/env bash
# dsmctl drain on a real local cluster (redis + three dsm-servers):
#   1. drain under load: two clients keep reading and writing 48 MiB each
#      (budget 8 MiB, every read checked) while a server holding a third of
#      their data is drained; dsmctl waits until it holds nothing; the
#      registry places nothing there; then the drained server is killed and
#      the clients, checking every word at the end, find nothing lost;
#   2. while a server drains, a new client places nothing on it;
#   3. --cancel puts the server back in service;
#   4. refusals that change nothing: an unknown server; a drain the other
#      servers have no room for.
#   test_drain.sh BUILD_DIR      (exit 77: redis-server is not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
load=$build/tests/drain_load
hold=$build/tests/hold_region
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=3 CAPACITY=64M CLUSTER=draintest-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS

# bytes the registry's region records place on server ID
placed_on() {
	"$dsmctl" --json regions |
		json_get "sum(e['len'] for r in d for e in r['extents'] if e['server'] == $1)"
}
# predicates for wait_for, evaluated afresh on every try
state_is() { [ "$(server_field "$1" state 2>/dev/null)" = "$2" ]; }
placed_is() { [ "$(placed_on "$1" 2>/dev/null)" = "$2" ]; }
used_total_is() { [ "$("$dsmctl" --json servers 2>/dev/null | json_get 'sum(s["used"] for s in d)')" = "$1" ]; }
nservers_is() { [ "$("$dsmctl" --json servers 2>/dev/null | json_get 'len(d)')" = "$1" ]; }
ready() { grep -qx ready "$1" 2>/dev/null; }

"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster up"; }
for i in 1 2 3; do all_pids+=("$(cat "$RUN_DIR/server-$i.pid")"); done
all_pids+=("$(cat "$RUN_DIR/redis.pid")")

# ---- 1. drain under load -----------------------------------------------------
clients=()
for c in 1 2; do
	# each stripe stays "moving" 20 ms (as if the old server were slow),
	# so write-backs and faults meet moving stripes: the hard cases
	DSM_TEST_MOVE_STALL_MS=20 DSM_LOCAL_MEM=8M "$load" 48 4 \
		>"$tmp/load$c.out" 2>"$tmp/load$c.err" &
	clients+=($!)
done
wait_for 60 ready "$tmp/load1.out" && wait_for 60 ready "$tmp/load2.out" ||
	fatal "clients not ready: $(cat "$tmp"/load*.err)"
sleep 1 # let them run under load for a moment first

victim=$("$dsmctl" --json servers | json_get 'max(d, key=lambda s: s["used"])["id"]')
victim_pid=$(server_field "$victim" pid)
before=$(server_field "$victim" used)
[ "$before" -gt 0 ] || fail "server $victim holds nothing before the drain"
drain_empties "$victim" "drain under load"
# piped, the outcome only: how much moved, then that it drained
grep -q "^  moved [0-9.]* [KMG]iB off server $victim in [0-9.]* s ([0-9.]* [KMG]*i*B/s)$" <<<"$drain_out" ||
	fail "drain under load: no 'moved ... off server' line: $drain_out"
state_is "$victim" draining || fail "drained server's state is not 'draining'"
wait_for 5 placed_is "$victim" 0 ||
	fail "the registry still places $(placed_on "$victim") bytes on the drained server"

# ---- 2. a new client while it drains ------------------------------------------
DSM_LOCAL_MEM=1M "$hold" >"$tmp/hold.out" 2>"$tmp/hold.err" &
hold_pid=$!
wait_for 30 grep -q holding "$tmp/hold.out" || fail "hold_region: $(cat "$tmp/hold.err")"
[ "$(server_field "$victim" used)" = 0 ] || fail "a new client placed memory on a draining server"
kill -KILL $hold_pid 2>/dev/null
wait $hold_pid 2>/dev/null

# ---- the drained server goes; nothing may be lost --------------------------
kill -KILL "$victim_pid"
sleep 2
kill -TERM "${clients[@]}"
for c in 1 2; do
	wait "${clients[$((c - 1))]}"
	rc=$?
	line=$(grep '^done' "$tmp/load$c.out")
	echo "client $c: $line"
	[ $rc = 0 ] || fail "client $c exited $rc: $line $(grep -v info "$tmp/load$c.err" | tail -5)"
	grep -q 'mismatches=0 ' <<<"$line" || fail "client $c lost data: $line"
	moved=$(sed -n 's/.*pages_moved=\([0-9]*\).*/\1/p' <<<"$line")
	[ "${moved:-0}" -gt 0 ] || fail "client $c moved no pages: $line"
	# (losing the killed server's connection is expected and logged)
	! grep -Eq "cannot fetch|pages lost|failed" "$tmp/load$c.err" ||
		fail "client $c: lost pages: $(cat "$tmp/load$c.err")"
done

# ---- 4. refusals that change nothing --------------------------------------------
out=$("$dsmctl" drain 12345 2>&1)
rc=$?
[ $rc = 1 ] && grep -q "no live server 12345" <<<"$out" || fail "unknown server: exit $rc: $out"

# Fill the two servers left, then ask to drain one: the other lacks room.
wait_for 10 nservers_is 2 ||
	fail "the killed server did not leave the registry"
DSM_LOCAL_MEM=8M "$load" 96 1 >"$tmp/big.out" 2>"$tmp/big.err" &
big=$!
wait_for 60 ready "$tmp/big.out" || fail "big client: $(cat "$tmp/big.err")"
# dsmctl judges by the servers' records: wait until they show the client
wait_for 10 used_total_is $((96 << 20)) || fail "the servers do not show the big client"
other=$("$dsmctl" --json servers | json_get 'd[0]["id"]')
out=$("$dsmctl" drain "$other" --timeout=5 2>&1)
rc=$?
[ $rc = 1 ] && grep -q "cannot drain server $other: it holds" <<<"$out" ||
	fail "drain without room elsewhere: exit $rc: $out"
sleep 1.5 # a heartbeat: had the drain been recorded, the server would say so
state_is "$other" serving || fail "a refused drain changed the server's state"

kill -TERM $big
wait $big || fail "big client: $(grep '^done' "$tmp/big.out") $(tail -3 "$tmp/big.err")"
grep -q 'mismatches=0 ' "$tmp/big.out" || fail "big client lost data"

# ---- 3. cancel ---------------------------------------------------------------------
# Now there is room (once the servers' records say so): drain with
# --no-wait, see the state change, cancel, see it change back.
wait_for 10 used_total_is 0 || fail "the servers keep memory of a client gone"
out=$("$dsmctl" drain "$other" --no-wait 2>&1) || fail "drain --no-wait: $out"
wait_for 5 state_is "$other" draining || fail "state never became 'draining'"
out=$("$dsmctl" drain --cancel "$other" 2>&1) || fail "drain --cancel: $out"
grep -q "drain cancelled" <<<"$out" || fail "drain --cancel says: $out"
wait_for 5 state_is "$other" serving || fail "state never went back to 'serving'"

[ $failed = 0 ] && echo "PASS: test_drain"
exit $failed
