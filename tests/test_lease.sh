#!/usr/bin/env bash
# A healthy client keeps its memory whatever happens outside it (issue 14,
# defect 1).  One server, stood in for by one under clock_step.so (its
# wall clock can be stepped alone), and clients holding 8 MiB each
# (hold_region):
#   1. a client whose wall clock runs 15 s ahead of the kernel's (what a
#      step back by 15 s does to a deadline computed before it): its lease
#      is renewed all along.  Defeated by a lease thread that waits on the
#      wall clock (the lease lapses within 6 s);
#   2. the server's wall clock stepped back 15 s while a stopped client's
#      lease is missing: the server does not free its memory early.
#      Defeated by a grace period measured on the wall clock (it wraps, and
#      the memory is freed at the next beat);
#   3. a client cut off from a healthy Redis (its Redis user disabled, its
#      connection killed): its lease lapses, it keeps its memory, and it is
#      recorded again when it gets back.  Defeated by taking a missing
#      lease alone as the client gone (no keepalive on its connection);
#   4. Redis full (maxmemory 1, noeviction) for longer than TTL + grace: a
#      running client and a stopped one both keep their memory while it
#      is full (a failed write is no evidence); once Redis takes writes
#      again the running client is recorded again and the stopped one's
#      memory is freed (its lease now seen missing on a healthy Redis).
#      Defeated by counting a lease missing on a Redis that refuses writes.
#   test_lease.sh BUILD_DIR      (exit 77: redis-server is not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
hold=$build/tests/hold_region
clock_step=$build/tests/libclock_step.so
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=1 CAPACITY=64M CLUSTER=leasetest-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS
[ -e "$clock_step" ] || fatal "no $clock_step: build the tests first"
# a preloaded library ahead of a sanitizer's runtime is what we want here
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

key() { echo "dsm:$CLUSTER:$1"; }
used_total() { "$dsmctl" --json servers | json_get 'sum(s["used"] for s in d)'; }
used_is() { [ "$(used_total 2>/dev/null)" = "$1" ]; }
servers_are() { [ "$("$dsmctl" --json servers 2>/dev/null | json_get 'len(d)' 2>/dev/null)" = "$1" ]; }
# the registry id of the client with this pid
client_id() {
	"$dsmctl" --json clients 2>/dev/null |
		json_get "[c['id'] for c in d if c['pid'] == $1][0]" 2>/dev/null
}
has_id() { [ -n "$(client_id "$1")" ]; }
lease_live() { [ "$(rcli exists "$(key "client:$1")")" = 1 ]; }
lease_gone() { [ "$(rcli exists "$(key "client:$1")")" = 0 ]; }
# the server's log since the case began (mark_log)
mark_log() { mark=$(wc -l <"$server_log"); }
case_log() { tail -n +$((mark + 1)) "$server_log"; }
freed() { case_log | grep -q "lease expired"; }
mib8=8388608

"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster.sh up failed"; }
for f in "$RUN_DIR"/*.pid; do all_pids+=("$(cat "$f")"); done

# The server again, under clock_step.so, on the same port: its wall clock
# is $clock's number of seconds off, 0 for now.
clock=$tmp/server.clock
echo 0 >"$clock"
kill -TERM "$(cat "$RUN_DIR/server-1.pid")"
wait_for 15 servers_are 0 ||
	fatal "the first server did not leave"
server_log=$RUN_DIR/server-1.log
setsid env LD_PRELOAD="$clock_step" DSM_TEST_CLOCK_FILE="$clock" \
	"$build/server/dsm-server" --listen "127.0.0.1:$BASE_PORT" \
	--capacity "$CAPACITY" --registry "$registry" --cluster "$CLUSTER" \
	--secret-file "$RUN_DIR/secret" \
	--registry-password-file "$RUN_DIR/redis.pass" \
	</dev/null >/dev/null 2>"$server_log" &
server=$!
all_pids+=("$server")
echo "$server" >"$RUN_DIR/server-1.pid"
wait_for 15 servers_are 1 ||
	fatal "the server under clock_step.so did not register: $(cat "$server_log")"

# start_hold NAME [ENV...]: a hold_region, its pid in $held
start_hold() {
	local name=$1
	shift
	env "$@" "$hold" >"$tmp/$name.log" 2>&1 &
	held=$!
	all_pids+=("$held")
	wait_for 15 grep -q holding "$tmp/$name.log" ||
		fatal "$name never held its region: $(cat "$tmp/$name.log")"
	wait_for 10 has_id $held || fatal "$name never appeared in the registry"
}
mark=0
stop_hold() { kill -KILL "$1" 2>/dev/null; kill -CONT "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

echo "--- 1. a client's wall clock 15 s ahead: its lease is renewed all along"
echo 15 >"$tmp/client.clock"
start_hold ahead LD_PRELOAD="$clock_step" DSM_TEST_CLOCK_FILE="$tmp/client.clock"
ahead=$held
id=$(client_id $ahead)
lapsed=0
for _ in $(seq 40); do # 12 s: more than twice the TTL
	lease_live "$id" || lapsed=1
	sleep 0.3
done
[ $lapsed = 0 ] || fail "the lease of a client with its wall clock ahead lapsed: its lease thread waits on the wall clock"
stop_hold $ahead
wait_for 10 used_is 0 || fail "the killed client's memory was not freed"

echo "--- 2. the server's wall clock stepped back 15 s while a lease is missing"
mark_log
start_hold stopped
stopped=$held
id=$(client_id $stopped)
wait_for 5 used_is $mib8 || fail "the server does not hold the client's 8 MiB"
kill -STOP $stopped
rcli del "$(key "client:$id")" >/dev/null
sleep 2.5 # two beats: the server has seen the lease missing
echo -15 >"$clock"
sleep 3
freed && fail "the server freed a client's memory 5.5 s after its lease went missing, its clock stepped back: $(case_log | grep 'lease expired')"
echo 0 >"$clock"
stop_hold $stopped
wait_for 10 used_is 0 || fail "the killed client's memory was not freed"

echo "--- 3. a client cut off from a healthy Redis keeps its memory"
mark_log
rcli acl setuser cut on '>cutpass' '~*' '&*' +@all >/dev/null ||
	fatal "cannot add a Redis user"
start_hold cut DSM_REGISTRY="redis://cut:cutpass@127.0.0.1:$REDIS_PORT" \
	DSM_REGISTRY_PASSWORD_FILE=
cut=$held
id=$(client_id $cut)
wait_for 5 used_is $mib8 || fail "the server does not hold the cut client's 8 MiB"
rcli acl setuser cut off >/dev/null
rcli client kill user cut >/dev/null
wait_for 8 lease_gone "$id" ||
	fail "the cut client's lease did not lapse: the test proves nothing"
sleep 13 # the grace period, and more
freed && fail "the server freed the memory of a client cut off from Redis: $(case_log | grep 'lease expired')"
used_is $mib8 || fail "the server holds $(used_total) bytes, not the cut client's 8 MiB"
rcli acl setuser cut on >/dev/null
wait_for 10 lease_live "$id" || fail "the client did not record itself again once it could"
stop_hold $cut
wait_for 10 used_is 0 || fail "the killed client's memory was not freed"

echo "--- 4. Redis full for longer than lease and grace together"
mark_log
start_hold running
running=$held
start_hold stopped
stopped=$held
wait_for 5 used_is $((2 * mib8)) || fail "the server does not hold both clients' memory"
kill -STOP $stopped
rcli config set maxmemory-policy noeviction >/dev/null
rcli config set maxmemory 1 >/dev/null
[ "$(rcli set dsm-test-probe 1 2>&1)" != OK ] || fail "Redis still takes writes: the test proves nothing"
sleep 18 # the TTL (5 s), the grace (10 s) and more
freed && fail "the server freed memory while Redis was full: $(case_log | grep 'lease expired')"
kill -0 $running 2>/dev/null || fail "the running client died while Redis was full"
rcli config set maxmemory 0 >/dev/null
wait_for 10 has_id $running || fail "the running client was not recorded again after Redis took writes again"
# now its lease is missing on a healthy Redis, and it is silent: freed
wait_for 20 used_is $mib8 || fail "the stopped client's memory was not freed once Redis was healthy (used: $(used_total))"
freed || fail "no 'lease expired' in the server's log"
kill -0 $stopped 2>/dev/null || fail "the stopped client is gone: the test proves nothing"
stop_hold $stopped
stop_hold $running

"$top/deploy/cluster.sh" down >/dev/null 2>&1 || fail "cluster.sh down"
if [ $failed = 0 ]; then
	echo "lease: ok"
fi
exit $failed
