#!/usr/bin/env bash
# A client on a real local cluster (redis + three dsm-servers from
# deploy/cluster.sh), finding its servers through the registry:
#   1. integrity: 8 threads over a region striped over all three servers,
#      budget far below it; the registry's records match (test_integrity
#      --cluster checks them) and are gone after free and exit;
#   2. redis restarted empty while the client runs: the client keeps its
#      data, the servers register again, and the client records itself and
#      its region again;
#   3. a client SIGKILLed while it holds a region: meanwhile dsmctl stats
#      shows what it did (its evictions and write-backs, the pages the
#      servers took); then its lease expires, its client and region records
#      leave the registry, and the servers have its memory back;
#   4. a client stopped (SIGSTOP: alive, connections open, no longer
#      renewing) while it holds a region: once its lease has been missing
#      for the grace period the servers close its connections and free its
#      memory, while the process still exists.
#   test_cluster.sh BUILD_DIR      (exit 77: redis-server is not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
integrity=$build/tests/test_integrity
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=3 CAPACITY=64M CLUSTER=clustertest-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS

count() { "$dsmctl" --json "$1" | json_get 'len(d)'; }
used_total() { "$dsmctl" --json servers | json_get 'sum(s["used"] for s in d)'; }
# predicates for wait_for, evaluated afresh on every try
count_is() { [ "$(count "$1" 2>/dev/null)" = "$2" ]; }
used_is() { [ "$(used_total 2>/dev/null)" = "$1" ]; }
# dsmctl stats: the holding client wrote 8 MiB through a 1 MiB budget
stats_show_writes() {
	"$dsmctl" --json stats 2>/dev/null | json_get '(
len(d["clients"]) == 1 and d["clients"][0]["pages_evicted"] >= 1792 and
d["clients"][0]["pages_written_back"] >= 1792 and
d["clients"][0]["bytes_out"] >= 1792 * 4096 and
sum(s["pages_written"] for s in d["servers"]) >= 1792 and
all(s["auth_refused"] == 0 for s in d["servers"]))' | grep -qx True
}
used_above() { [ "$(used_total 2>/dev/null || echo 0)" -gt "$1" ] 2>/dev/null; }

"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster.sh up failed"; }
for f in "$RUN_DIR"/*.pid; do all_pids+=("$(cat "$f")"); done

echo "--- 1. integrity over the cluster"
"$integrity" --cluster 3 >"$tmp/1.log" 2>&1 || { tail -5 "$tmp/1.log"; fail "integrity over the cluster"; }
count_is regions 0 || fail "regions left in the registry after a clean exit"
count_is clients 0 || fail "client left in the registry after a clean exit"

echo "--- 2. redis restarted empty under a running client"
"$integrity" --cluster 3 >"$tmp/2.log" 2>&1 &
client=$!
# restart only once the client has recorded its region, so that there is
# something to record again
wait_for 10 count_is regions 1 || fail "the client's region never appeared"
runs $client test_integrity || fail "the client finished before redis was restarted: the test proves nothing"
"$top/deploy/cluster.sh" restart-redis >"$tmp/restart.log" 2>&1 || fail "restart-redis: $(cat "$tmp/restart.log")"
runs $client test_integrity || fail "the client finished during the redis restart: the test proves nothing"
wait_for 10 count_is servers 3 || fail "servers did not register again after the restart"
# test_integrity waits for its region's record before it frees it: the
# lease thread must have recorded client and region again
wait $client || { tail -5 "$tmp/2.log"; fail "client after a redis restart"; }

echo "--- 3. a client killed while it holds a region (with two copies)"
DSM_REPLICAS=2 "$build/tests/hold_region" >"$tmp/3.log" 2>&1 &
client=$!
wait_for 10 count_is regions 1 || fail "the holding client's region never appeared"
# its record names both copies of every extent, on distinct servers
"$dsmctl" --json regions | python3 -c '
import json, sys
ext = json.load(sys.stdin)[0]["extents"]
assert ext and all(len(e.get("replicas", [])) == 1 and
                   e["replicas"][0]["server"] != e["server"] for e in ext), ext
' || fail "the region record does not show a second copy of each extent on another server"
# servers publish what they use with each heartbeat (every second)
wait_for 5 used_above 0 || fail "servers show nothing used while a region is held"
wait_for 5 stats_show_writes || fail "dsmctl stats does not show the client's writes: $("$dsmctl" --json stats 2>&1)"
timeout 2.5 "$dsmctl" stats --watch >"$tmp/watch.log" 2>&1
grep -q "per second since the last round" "$tmp/watch.log" || fail "stats --watch printed no second round: $(head -5 "$tmp/watch.log")"
kill -KILL $client
wait $client 2>/dev/null
# the lease (5 s TTL) and the servers' next heartbeats
wait_for 10 count_is clients 0 || fail "a killed client's record outlived its lease"
wait_for 10 count_is regions 0 || fail "a killed client's region outlived its lease"
wait_for 10 used_is 0 || fail "servers did not get a killed client's memory back"

echo "--- 4. a client hung while it holds a region"
"$build/tests/hold_region" >"$tmp/4.log" 2>&1 &
client=$!
wait_for 10 count_is regions 1 || fail "the hung client's region never appeared"
wait_for 5 used_above 0 || fail "servers show nothing used for the hung client"
kill -STOP $client
# lease TTL (5 s) + the servers' grace (10 s) + a few heartbeats
wait_for 25 used_is 0 || fail "servers kept a hung client's memory after its lease expired"
kill -0 $client 2>/dev/null || fail "the hung client is gone: the test proves nothing"
grep -q "lease expired" "$RUN_DIR"/server-*.log || fail "no server logged the expired lease"
kill -KILL $client
kill -CONT $client 2>/dev/null
wait $client 2>/dev/null

"$top/deploy/cluster.sh" down >/dev/null 2>&1 || fail "cluster.sh down"
if [ $failed = 0 ]; then
	echo "cluster: ok"
fi
exit $failed
