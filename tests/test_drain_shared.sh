#!/usr/bin/env bash
# Draining the home of a shared region while its holders use it (issue 15):
# a local cluster of redis and two servers; three drain_shared processes
# map one 2 MiB region with 1 MiB resident each and keep a counter under
# dsm_lock, a dsm_fetch_add counter and pages of their own going.  The
# region's home is drained under them: `dsmctl drain` must finish (one
# holder moves the region, the others follow it), the home then holds
# nothing, the registry names the other server as the region's home, and
# every process finds both counters equal to the steps all of them did
# and its own pages as it last wrote them.  Defeated by a mover that
# skips shared regions (the drain never ends) and by a move that does
# not seal first (increments lost).
#   test_drain_shared.sh BUILD_DIR   (exit 77: redis-server not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
worker=$build/tests/drain_shared
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=2 CAPACITY=64M CLUSTER=drainshared-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS

workers=()
trap 'for p in "${workers[@]}"; do kill -KILL "$p" 2>/dev/null; done; cleanup' EXIT
mapped() { grep -qx mapped "$1" 2>/dev/null; }
# home of the shared region NAME, as the registry records it
home_of() { shared_record "$1" | cut -d' ' -f1; }

"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster up"; }
for f in "$RUN_DIR"/*.pid; do all_pids+=("$(cat "$f")"); done

name=drain-me
n=3
for i in $(seq 0 $((n - 1))); do
	"$worker" "$name" $n "$i" 12 >"$tmp/w$i.out" 2>"$tmp/w$i.err" &
	workers+=($!)
done
for i in $(seq 0 $((n - 1))); do
	wait_for 30 mapped "$tmp/w$i.out" || fatal "worker $i did not map: $(cat "$tmp/w$i.err")"
done
sleep 2 # under way before the drain
home=$(home_of "$name")
[ "$home" != none ] || fatal "no record of shared region $name"
echo "draining server $home, the home of $name"
drain_empties "$home" "draining the home of a shared region"
# while they run: not because they let go at their end
grep -l '^ok' "$tmp"/w*.out >/dev/null 2>&1 &&
	fail "the drain ended only once the holders were done"
new=$(home_of "$name")
[ "$new" != "$home" ] && [ "$new" != none ] ||
	fail "the registry names server $new as the home of $name, not the other one"

for i in $(seq 0 $((n - 1))); do
	if wait "${workers[$i]}"; then
		grep -q '^ok [0-9]' "$tmp/w$i.out" || fail "worker $i: $(cat "$tmp/w$i.out")"
	else
		fail "worker $i failed: $(cat "$tmp/w$i.out") $(tail -n 5 "$tmp/w$i.err")"
	fi
done
grep -h "moving it off\|its home is" "$tmp"/w*.err | sort | uniq -c

"$top/deploy/cluster.sh" down >/dev/null 2>&1 || fail "cluster.sh down"
if [ $failed = 0 ]; then
	echo "drain_shared: ok"
fi
exit $failed
