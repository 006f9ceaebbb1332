#!/usr/bin/env bash
# Nothing leaks in the registry and no id is used twice (issue 14, defect
# 5), on a local cluster of redis and two servers:
#   1. index members whose record is gone leave their index within the
#      prune period although nobody lists them, and an index has the TTL of
#      its members.  Defeated by pruning only when listing, and by indexes
#      without a TTL;
#   2. redis restarted empty under a running client, and a second client
#      started at once: both are recorded, under different ids, with their
#      regions.  Defeated by ids from INCR next_id (both get id 1);
#   3. the drain set: a server stopped while drained leaves it; a server
#      restarted with its fixed id whose drain outlived a crash comes up
#      not draining; dsmctl drain --cancel cancels the drain of a server
#      that is not live, and refuses an id that is neither live nor drained.
#      Defeated by drain entries tied to nothing, and by --cancel wanting a
#      live server;
#   4. a program under the preload shim leaves the registry when it exits:
#      no client or region record is left a lease later.  Defeated by a
#      shim that leaves at exit without a word.  Skipped (with its reason)
#      in sanitizer builds, where the shim cannot run.
#   test_registry_leaks.sh BUILD_DIR   (exit 77: redis-server not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
hold=$build/tests/hold_region
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=2 CAPACITY=64M CLUSTER=regleaks-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS

key() { echo "dsm:$CLUSTER:$1"; }
member() { [ "$(rcli sismember "$(key "$1")" "$2")" = "$3" ]; }
count_is() { [ "$("$dsmctl" --json "$1" 2>/dev/null | json_get 'len(d)' 2>/dev/null)" = "$2" ]; }
server_ids() { "$dsmctl" --json servers | json_get '" ".join(str(s["id"]) for s in d)'; }
hold_start() {
	"$hold" >"$tmp/$1.log" 2>&1 &
	held=$!
	all_pids+=("$held")
	wait_for 15 grep -q holding "$tmp/$1.log" ||
		fatal "$1 never held its region: $(cat "$tmp/$1.log")"
}

"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster.sh up failed"; }
for f in "$RUN_DIR"/*.pid; do all_pids+=("$(cat "$f")"); done

echo "--- 1. dead index members pruned without a reader; indexes with a TTL"
rcli sadd "$(key clients)" 999999999 >/dev/null
rcli sadd "$(key regions)" 999999999000000001 >/dev/null
rcli sadd "$(key servers)" 4000000001 >/dev/null
# the servers prune every 10 s; no dsmctl runs meanwhile
wait_for 13 member clients 999999999 0 || fail "a dead client id stayed in the clients index"
member regions 999999999000000001 0 || fail "a dead region id stayed in the regions index"
member servers 4000000001 0 || fail "a dead server id stayed in the servers index"
hold_start ttl
ttl_client=$held
ttl() { rcli pttl "$(key "$1")"; }
for set in clients regions servers; do
	t=$(ttl $set)
	[ "$t" -gt 0 ] && [ "$t" -le 5000 ] ||
		fail "index $set has TTL $t ms with a live member, not its members' (at most 5000)"
done
kill -KILL $ttl_client
wait $ttl_client 2>/dev/null

echo "--- 2. ids stay unique across an empty redis restart"
hold_start before
before=$held
wait_for 10 count_is clients 1 || fail "the first client was never recorded"
"$top/deploy/cluster.sh" restart-redis >"$tmp/restart.log" 2>&1 || fail "restart-redis: $(cat "$tmp/restart.log")"
# as soon as the servers are back: with a counter in Redis this client
# gets the first one's id whether or not that one has written again
wait_for 10 count_is servers 2 || fail "the servers did not register again"
hold_start after
after=$held
wait_for 10 count_is clients 2 ||
	fail "two live clients, $("$dsmctl" --json clients | json_get 'len(d)') recorded: $("$dsmctl" clients 2>&1)"
wait_for 10 count_is regions 2 || fail "two clients' regions, $("$dsmctl" --json regions | json_get 'len(d)') recorded"
ids=$("$dsmctl" --json clients | json_get '" ".join(sorted(set(str(c["id"]) for c in d)))')
[ "$(wc -w <<<"$ids")" = 2 ] || fail "the clients share an id: $ids"
kill -KILL $before $after
wait $before $after 2>/dev/null
wait_for 10 count_is clients 0 || fail "the killed clients' records outlived their lease"

echo "--- 3. the drain set does not outlive its server"
read -r first second <<<"$(server_ids)"
[ -n "${second:-}" ] || fatal "two servers expected, got: $first"
out=$("$dsmctl" drain --no-wait "$first" 2>&1) || fail "drain --no-wait: $out"
member drain "$first" 1 || fail "the drain was not recorded"
for f in "$RUN_DIR"/server-*.pid; do # stop the drained one
	pid=$(cat "$f")
	if grep -q "registered as server $first " "${f%.pid}.log"; then
		kill -TERM "$pid"
		wait_for 10 sh -c "! kill -0 $pid 2>/dev/null" || fail "server $first did not stop"
	fi
done
member drain "$first" 0 || fail "a server stopped while drained is still in the drain set"
# a crash leaves the entry; the server restarted with its fixed id clears it
fixed=4000000002
rcli sadd "$(key drain)" $fixed >/dev/null
port=$((BASE_PORT + 2))
setsid "$build/server/dsm-server" --listen "127.0.0.1:$port" --capacity "$CAPACITY" \
	--registry "$registry" --cluster "$CLUSTER" --server-id $fixed \
	--secret-file "$RUN_DIR/secret" --registry-password-file "$RUN_DIR/redis.pass" \
	</dev/null >/dev/null 2>"$tmp/fixed.log" &
fixed_pid=$!
all_pids+=("$fixed_pid")
echo "$fixed_pid" >"$RUN_DIR/server-fixed.pid"
wait_for 10 count_is servers 2 || fail "the server with a fixed id did not register: $(cat "$tmp/fixed.log")"
member drain $fixed 0 || fail "a restarted server's old drain entry is still there"
sleep 1.5 # a beat: it would have read the drain set
state=$("$dsmctl" --json servers | json_get "[s['state'] for s in d if s['id'] == $fixed]")
[ "$state" = "['serving']" ] || fail "the restarted server with a fixed id is $state, not serving"
# --cancel of a server that is gone, and of one that never was
rcli sadd "$(key drain)" 4000000003 >/dev/null
out=$("$dsmctl" drain --cancel 4000000003 2>&1) || fail "drain --cancel of a server no longer live: $out"
member drain 4000000003 0 || fail "drain --cancel left a server no longer live in the drain set"
out=$("$dsmctl" drain --cancel 4000000004 2>&1)
[ $? = 1 ] || fail "drain --cancel of an id neither live nor drained: exit status not 1: $out"
grep -q "no drain of it" <<<"$out" || fail "drain --cancel of an unknown id says: $out"

echo "--- 4. a program under the preload shim leaves the registry at exit"
if [ "${DSM_TEST_SANITIZED:-0}" = 1 ]; then
	echo "SKIP: 4. shim: the shim replaces malloc, as the sanitizer runtime does; it cannot be tested under a sanitizer"
elif ! [ -x /usr/bin/python3 ]; then
	echo "SKIP: 4. shim: python3 not installed"
else
	"$build/preload/dsm-run" --require -- /usr/bin/python3 -c '
import time
b = bytearray(16 << 20)
b[::4096] = b"x" * (len(b) // 4096)
time.sleep(1.5)  # a lease renewal: the region is recorded
' >"$tmp/shim.log" 2>&1 || fail "python3 under dsm-run: $(cat "$tmp/shim.log")"
	# at once, well within a lease (5 s): nothing of it is left
	n=$(rcli --scan --pattern "$(key 'client:*')" | wc -l)
	r=$(rcli --scan --pattern "$(key 'region:*')" | wc -l)
	[ "$n" = 0 ] && [ "$r" = 0 ] ||
		fail "a program that exited under the shim left $n client and $r region records"
	[ "$(rcli scard "$(key clients)")" = 0 ] || fail "the clients index still names the shim's client"
fi

"$top/deploy/cluster.sh" down >/dev/null 2>&1 || fail "cluster.sh down"
if [ $failed = 0 ]; then
	echo "registry_leaks: ok"
fi
exit $failed
