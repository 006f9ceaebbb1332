#!/usr/bin/env bash
# A replicated shared region's home killed under its holders (issue 15):
# a local cluster of redis and four servers; three drain_shared processes
# with DSM_REPLICAS=2 map one 2 MiB region (a home and a standby on
# another server) with 1 MiB resident each, and keep a counter under
# dsm_lock, a dsm_fetch_add counter and pages of their own going.  The
# home is killed (SIGKILL) under them: every process must fail over to
# the standby; they make a new standby on a server left, and the new
# home is killed too: they fail over again, and each finishes with both
# counters equal to the steps all of them did and its own pages as it
# last wrote them; the registry names each new home as it comes.  Defeated by holders that do
# not write back what they own before promoting (their pages and the
# counters go back), by a standby that grants before every holder has
# promoted it, and by locks not taken again at the standby (increments
# lost).  Then, with three more, the standby's server is drained: the
# drain ends while they run, each lets the standby go and finishes with
# every count exact.  Last, a home killed while its locks are being let
# go (a test hook widens the moment): the releasers do not take them
# again at the standby, their new holders do, and every count is exact;
# defeated by a releaser that does.
#   test_failover_shared.sh BUILD_DIR   (exit 77: redis-server not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
worker=$build/tests/drain_shared
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=4 CAPACITY=64M CLUSTER=failshared-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS

workers=()
trap 'for p in "${workers[@]}"; do kill -KILL "$p" 2>/dev/null; done; cleanup' EXIT
mapped() { grep -qx mapped "$1" 2>/dev/null; }
home_of() { shared_record "$1" | cut -d' ' -f1; }

"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster up"; }
for f in "$RUN_DIR"/*.pid; do all_pids+=("$(cat "$f")"); done

n=3
# start PREFIX NAME SECONDS: n workers on NAME, mapped; their output in
# $tmp/PREFIXi.out and .err
start() {
	workers=()
	for i in $(seq 0 $((n - 1))); do
		DSM_REPLICAS=2 DSM_LOG=info "$worker" "$2" $n "$i" "$3" \
			>"$tmp/$1$i.out" 2>"$tmp/$1$i.err" &
		workers+=($!)
	done
	for i in $(seq 0 $((n - 1))); do
		wait_for 30 mapped "$tmp/$1$i.out" ||
			fatal "worker $i did not map: $(cat "$tmp/$1$i.err")"
	done
}
# finished PREFIX: each worker exited 0 saying ok
finished() {
	for i in $(seq 0 $((n - 1))); do
		if wait "${workers[$i]}"; then
			grep -q '^ok [0-9]' "$tmp/$1$i.out" || fail "worker $i: $(cat "$tmp/$1$i.out")"
		else
			fail "worker $i failed: $(cat "$tmp/$1$i.out") $(tail -n 5 "$tmp/$1$i.err")"
		fi
	done
}

name=fail-me
start w "$name" 25
grep -q "home .*, standby " "$tmp/w0.err" || fail "no standby said: $(cat "$tmp/w0.err")"
sleep 3 # under way before the kill
home=$(home_of "$name")
[ "$home" != none ] || fatal "no record of shared region $name"
victim_pid=$(server_field "$home" pid)
echo "killing server $home (pid $victim_pid), the home of $name"
kill -KILL "$victim_pid"
# while they run: the holders record the standby's server as the home
moved_home() { local h; h=$(home_of "$name"); [ "$h" != "$home" ] && [ "$h" != none ]; }
wait_for 6 moved_home ||
	fail "the registry names server $(home_of "$name") as the home of $name after the failover"
# the holders make a new standby on a server left (one seals the home
# and fills it, the others hold it), so a second loss costs nothing
made() { [ "$(grep -l "standby on" "$tmp"/w*.err | wc -l)" = $n ]; }
wait_for 20 made || fail "no new standby held by every process after the failover: $(tail -n 3 "$tmp/w0.err")"
home=$(home_of "$name")
victim_pid=$(server_field "$home" pid)
echo "killing server $home (pid $victim_pid), the home of $name after the failover"
kill -KILL "$victim_pid"
wait_for 6 moved_home ||
	fail "the registry names server $(home_of "$name") as the home of $name after the second failover"

finished w
grep -h "is lost;\|failing over\|standby on" "$tmp"/w*.err | sed 's/^dsm\[[0-9]*\]/dsm/' | sort | uniq -c

# The standby's server drained under them: the holders let the standby
# go (the drain ends while they run) and go on unreplicated.
name=drain-standby
start s "$name" 8
standby=$(sed -n 's/.*, standby \([0-9.:]*\)$/\1/p' "$tmp/s0.err" | head -1)
sid=$("$dsmctl" --json servers | json_get "[s['id'] for s in d if s['addr'] == '$standby'][0]")
echo "draining server $sid ($standby), the standby of $name"
drain_empties "$sid" "draining a shared region's standby"
grep -l '^ok' "$tmp"/s*.out >/dev/null 2>&1 &&
	fail "the drain of the standby ended only once the holders were done"
finished s
for i in $(seq 0 $((n - 1))); do
	grep -q "not replicated until a new one is made" "$tmp/s$i.err" ||
		fail "worker $i did not let the standby go: $(tail -n 3 "$tmp/s$i.err")"
done

# The drained server back in service: a home and a standby again.
"$dsmctl" drain --cancel "$sid" >/dev/null || fail "dsmctl drain --cancel $sid"
serving() { [ "$("$dsmctl" --json servers | json_get "len([s for s in d if s['state'] == 'serving'])")" -ge 2 ]; }
wait_for 20 serving || fatal "server $sid not serving again after dsmctl drain --cancel"

# The home killed while unlocks are answered: each worker lingers 40 ms
# between an UNLOCK's answer and the lock leaving its list of holds, so
# the kill finds a lock the home has just given to the next waiter still
# listed by the thread that let it go.  Only the new holder may take it
# again at the standby: had the releaser won that race, the holder's
# claim would be refused ("went to another holder"), its dsm_unlock said
# EPERM, and the lock stayed held for nobody.
name=unlock-in-flight
DSM_TEST_UNLOCK_STALL_MS=40 start u "$name" 8
sleep 3
home=$(home_of "$name")
victim_pid=$(server_field "$home" pid)
echo "killing server $home (pid $victim_pid), the home of $name, with unlocks in flight"
kill -KILL "$victim_pid"
finished u
grep -l "went to another holder" "$tmp"/u*.err >/dev/null 2>&1 &&
	fail "a lock let go before the loss was taken again at the standby: $(grep -h "went to another holder" "$tmp"/u*.err | head -n 2)"

"$top/deploy/cluster.sh" down >/dev/null 2>&1 || true
if [ $failed = 0 ]; then
	echo "failover_shared: ok"
fi
exit $failed
