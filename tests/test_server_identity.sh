#!/usr/bin/env bash
# A server's HELLO must name the server its registry record lists there
# (room: tests).  A stale or forged record (a Redis writer, an address
# taken over by another server) would otherwise send a client's pages to
# whoever answers at its address.  On a local cluster (redis + one server
# from deploy/cluster.sh), a second dsm-server with id 4242 is started
# outside the registry, and a record that claims server 5151 is at its
# address is written by hand.  A client finding its servers in the
# registry must refuse that one, saying why, and page through the real
# one.  Without the check it takes both.
#   test_server_identity.sh BUILD_DIR   (exit 77: redis-server is not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=1 CAPACITY=64M CLUSTER=identity-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS

key() { echo "dsm:$CLUSTER:$1"; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster.sh up failed"; }
for f in "$RUN_DIR"/*.pid; do all_pids+=("$(cat "$f")"); done

other=$((BASE_PORT + 1))
"$build/server/dsm-server" --listen "127.0.0.1:$other" --capacity 64M \
	--secret-file "$RUN_DIR/secret" --server-id 4242 --log warn \
	>"$tmp/other.log" 2>&1 &
all_pids+=($!)
wait_for 10 listening "$other" || fatal "the unregistered server never listened"

now=$(($(date +%s) * 1000))
rcli hset "$(key server:5151)" id 5151 addr "127.0.0.1:$other" host forged \
	pid 1 capacity 67108864 used 0 regions 0 clients 0 transports tcp \
	started_ms "$now" heartbeat_ms "$now" >/dev/null
rcli pexpire "$(key server:5151)" 60000 >/dev/null
rcli sadd "$(key servers)" 5151 >/dev/null

DSM_LOG=warn "$build/tests/hold_region" >"$tmp/client.log" 2>&1 &
client=$!
holding() { grep -q holding "$tmp/client.log"; }
wait_for 15 holding || fail "the client did not page through the real server: $(cat "$tmp/client.log")"
kill -KILL $client 2>/dev/null
wait $client 2>/dev/null
grep -q "says it is server 4242, but the registry lists server 5151 there: refusing it" "$tmp/client.log" ||
	fail "the client took a server whose HELLO id is not its record's: $(cat "$tmp/client.log")"
grep -q "skipping memory server 127.0.0.1:$other" "$tmp/client.log" ||
	fail "the client did not skip the forged record's address"

[ $failed = 0 ] && echo PASS
exit $failed
