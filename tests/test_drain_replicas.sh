#!/usr/bin/env bash
# Drains and replicas (docs/design.md, "Replicas"), on a real local
# cluster (redis + three dsm-servers) and a client keeping two copies of
# every stripe (DSM_REPLICAS=2) that checks every read of its 24 MiB:
#   drain: `dsmctl drain` empties the server holding most, under load: it
#     ends holding nothing, the registry places no copy there, every
#     extent keeps its two copies on the two other servers, and after the
#     drained server is killed the client's final sweep finds every word;
#   lost: the server being drained is SIGKILLed in the middle of its
#     drain (moves widened by DSM_TEST_MOVE_STALL_MS, so some stripes are
#     moving when it dies): nothing is lost, since every stripe had its
#     other copy, and the copies still on the dead server are made again,
#     so the region ends with both copies of every extent on the two
#     servers left and `dsmctl status` counts no degraded region.
#   test_drain_replicas.sh BUILD_DIR drain|lost
#     (exit 77: redis-server is not installed)
set -uo pipefail
build=$1
case=$2
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
load=$build/tests/drain_load
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=3 CAPACITY=64M CLUSTER=drainrep-$case-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS

ready() { grep -qx ready "$1" 2>/dev/null; }
said() { grep -q "$1" "$2" 2>/dev/null; }

# Whether the registry's region records put two copies of every extent
# on distinct servers, none of them server $1 (the one drained or dead).
copies_ok() {
	"$dsmctl" --json regions 2>/dev/null | python3 -c '
import json, sys
gone = int(sys.argv[1])
d = json.load(sys.stdin)
assert d, "no region"
for r in d:
    for e in r["extents"]:
        s = [e["server"]] + [c["server"] for c in e.get("replicas", [])]
        assert len(s) == 2 and len(set(s)) == 2 and gone not in s, e
' "$1"
}
degraded_is() {
	[ "$("$dsmctl" --json status 2>/dev/null | json_get 'd["degraded_regions"]')" = "$1" ]
}

"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster up"; }
for i in 1 2 3; do all_pids+=("$(cat "$RUN_DIR/server-$i.pid")"); done
all_pids+=("$(cat "$RUN_DIR/redis.pid")")

# drain: each stripe stays "moving" 20 ms, so write-backs and faults meet
# moving stripes; lost: 300 ms, so the kill finds the drain half done
stall=20
[ "$case" = lost ] && stall=300
DSM_LOG=debug DSM_REPLICAS=2 DSM_TEST_MOVE_STALL_MS=$stall DSM_LOCAL_MEM=4M \
	"$load" 24 4 >"$tmp/load.out" 2>"$tmp/load.err" &
client=$!
wait_for 60 ready "$tmp/load.out" || fatal "client not ready: $(tail -5 "$tmp/load.err")"
copies_ok 0 || fatal "the region is not recorded with two copies of each extent"
sleep 1 # under load for a moment first

victim=$("$dsmctl" --json servers | json_get 'max(d, key=lambda s: s["used"])["id"]')
victim_pid=$(server_field "$victim" pid)
[ "$(server_field "$victim" used)" -gt 0 ] || fail "server $victim holds nothing before the drain"

if [ "$case" = drain ]; then
	drain_empties "$victim" "drain of a replicated region"
	wait_for 5 copies_ok "$victim" ||
		fail "copies not on two distinct other servers: $("$dsmctl" --json regions)"
else
	"$dsmctl" drain "$victim" --no-wait >"$tmp/drain.out" 2>&1 ||
		fatal "drain: $(cat "$tmp/drain.out")"
	wait_for 20 said "moving 256 pages at .* from server" "$tmp/load.err" ||
		fatal "the client never started moving: $(grep -v debug "$tmp/load.err" | tail -5)"
	sleep 1 # a few stripes moved, one or two moving
	kill -KILL "$victim_pid"
	moved=$(grep -c "moving 256 pages at .* from server" "$tmp/load.err")
	echo "server $victim killed after $moved stripes began moving"
	wait_for 30 copies_ok "$victim" ||
		fail "copies not made again on the two servers left: $("$dsmctl" --json regions)"
	wait_for 10 degraded_is 0 ||
		fail "dsmctl status counts degraded regions: $("$dsmctl" status)"
	said "pages copied again from their other copies" "$tmp/load.err" ||
		fail "the client did not say it copied pages again"
	# the case happened: a move reading from the dead server was undone
	said "undone: the READ from server" "$tmp/load.err" ||
		fail "no move was under way when the server died: the test proved nothing"
fi

[ "$case" = drain ] && kill -KILL "$victim_pid" # nothing may be left there
sleep 1
kill -TERM $client
wait $client
rc=$?
line=$(grep '^done' "$tmp/load.out")
echo "client: exit $rc: $line"
[ $rc = 0 ] || fail "client exited $rc: $(grep -v debug "$tmp/load.err" | tail -5)"
grep -q 'mismatches=0 ' <<<"$line" || fail "client lost data: $line"
grep -q 'degraded_stripes=0$' <<<"$line" || fail "stripes left degraded: $line"
if [ "$case" = drain ]; then
	grep -Eq 'pages_moved=[1-9]' <<<"$line" || fail "the client moved no pages: $line"
else
	grep -Eq 'pages_rereplicated=[1-9]' <<<"$line" || fail "nothing copied again: $line"
fi
# (losing the killed server's connection is expected and logged)
lost='cannot fetch|[1-9][0-9]* (evicted )?pages lost'
! grep -Eq "$lost" "$tmp/load.err" ||
	fail "lost pages: $(grep -E "$lost" "$tmp/load.err" | head -5)"

[ $failed = 0 ] && echo "PASS: test_drain_replicas $case"
exit $failed
