#!/usr/bin/env bash
# tests/multinode/rdma.sh - dsm across four soft-RoCE guests, over RDMA and
# over TCP: Redis in guest 1, dsm-servers in guests 2 and 3 (both
# transports, a cluster secret), clients in guest 4.
#
#   - integrity: mn_check writes a 16 MiB region word by word with 2 MiB
#     resident (an eighth) and reads every word back after eviction, over
#     DSM_TRANSPORT=rdma, then the same over tcp; each names the
#     transport it used to each server; then over rdma with the region
#     on 2 MiB pages (DSM_ALLOC_HUGE, 8 MiB resident), which needs the
#     guests' Linux 6.1 to write-protect hugetlb memory;
#   - the preload shim over RDMA: sort, unmodified, under dsm-run with a
#     budget below its buffer, output byte for byte as without (the
#     shim's DISCARDs meet the transport's WRITE hold);
#   - rkeys (rdma_check stale-rkey): another connection's rkey and a
#     freed region's rkey read nothing, the extent's next owner zeros;
#   - ordering (rdma_check discard-order): a WRITE after a DISCARD
#     survives it; without the transport's hold it does not (the check
#     can fail);
#   - INVALIDATEs (rdma_check inval-flow): a holder of a shared region
#     gets 8 of them unacknowledged, no more, the rest wait at the
#     server; it acknowledges them while every call credit it has waits
#     on a LOCK, and every writer is granted;
#   - dsmctl from a guest while a client runs: status lists both servers
#     (tcp,rdma) and the client with its transport; stats counts the
#     one-sided READs and WRITEs the servers cannot see;
#   - a drain over RDMA while that client runs: the drained server ends
#     up empty, and the client's rounds stay right word for word;
#   - the last server SIGKILLed under the client: the client names it,
#     and a page only it held raises SIGBUS in the thread touching it
#     (the guests' Linux 6.1 has no UFFDIO_POISON: this is the memfd way,
#     client/uffd.c); never a hang;
#   - replicas over RDMA: a client with DSM_REPLICAS=2 keeps a copy of
#     every stripe on each server; one server SIGKILLed under it, and its
#     rounds go on, every word right, no SIGBUS, read from the other copy;
#   - shared memory across guests, over RDMA and then over TCP: processes
#     in guests 1 and 4 map one region by name
#     (its home picked by the servers' registry ids) and pass a
#     checksummed stream through a ring buffer, run the message-passing
#     and store-buffering litmus tests, count with dsm_fetch_add, and
#     keep two counters equal under dsm_lock, started and ended by
#     dsm_barrier (test_shared_mem's children, a tenth of their host
#     iterations);
#   - a shared region's home drained over RDMA under 3 processes on two
#     nodes taking a lock, adding and writing (tests/drain_shared.c): the
#     drain ends while they run and every count is exact;
#   - the same with DSM_REPLICAS=2, the home's server SIGKILLed instead:
#     every process fails over to the standby, every count exact.
#
#   tests/multinode/rdma.sh
# Exit 0 if every check passed, 1 if any failed, 77 (with the reason on
# stderr) if qemu cannot run here at all.
# shellcheck disable=SC2317 # the check functions run through check()
set -uo pipefail
# shellcheck source=tests/multinode/lib.sh
. "$(dirname "$0")/lib.sh" rdma

port=7400
cluster=mn
# Enough for the preload shim's 1 GiB arena, striped over both servers.
# Over RDMA each half is registered, so pinned: 512 MiB resident in each
# server's guest from the arena's ALLOC on (docs/design.md,
# "Registration"); the rest of the pool costs nothing until written.
capacity=768M
size=16M       # mn_check's region
local_mem=2M   # an eighth of it

require_qemu
echo "--- build"
deploy/install-deps.sh >&2 || { echo "FAIL: deploy/install-deps.sh"; exit 1; }
run deploy/build.sh build >/dev/null || { echo "FAIL: deploy/build.sh build"; exit 1; }
for b in build/server/dsm-server build/ctl/dsmctl build/tests/mn_check build/tests/rdma_check \
	build/tests/drain_shared; do
	[ -x "$b" ] || { echo "FAIL: $b was not built"; exit 1; }
done
command -v redis-server >/dev/null || skip "no redis-server on this machine"

guests_up 4
ip1=$("$vmctl" ip 1) ip2=$("$vmctl" ip 2) ip3=$("$vmctl" ip 3)
registry=redis://$ip1:6379

secret=$DSM_VM_DIR/share/rdma.secret
rm -f "$secret"
(umask 077 && head -c 32 /dev/urandom | base64 >"$secret")

# client I ENV... -- CMD: a client in guest 4 of the cluster
# Emulated guests on a busy host can take seconds to resolve a peer's
# address (ARP through the emulated NIC): a generous connect deadline.
client_env=(--env DSM_REGISTRY="$registry" --env DSM_CLUSTER="$cluster"
	    --env DSM_SECRET_FILE="$secret" --env DSM_LOCAL_MEM="$local_mem"
	    --env DSM_CONNECT_TIMEOUT_MS=30000)

# ---- the cluster ---------------------------------------------------------------
redis_up() {
	run "$vmctl" spawn 1 -- redis-server --bind "$ip1" --port 6379 \
		--protected-mode no --save '' --appendonly no >/dev/null || return 1
	retry 10 "$vmctl" exec 4 -- redis-cli -h "$ip1" ping
}
check "redis in guest 1" redis_up

declare -A server_pid
server_up() { # server_up I
	local ip

	ip=$("$vmctl" ip "$1")
	mark_log "$1"
	server_pid[$1]=$(run "$vmctl" spawn "$1" -- build/server/dsm-server \
		--listen "$ip:$port" --capacity "$capacity" --secret-file "$secret" \
		--registry "$registry" --cluster "$cluster") || return 1
	wait_log "$1" "listening on $ip:$port capacity 768.0 MiB \(tcp,rdma\)"
}
check "dsm-server in guest 2 serves TCP and RDMA" server_up 2
check "dsm-server in guest 3 serves TCP and RDMA" server_up 3

# ---- integrity, over each transport -------------------------------------------------
integrity() { # integrity TRANSPORT
	local out rc

	out=$(run "$vmctl" exec 4 "${client_env[@]}" --env DSM_TRANSPORT="$1" -- \
		build/tests/mn_check --size "$size" --rounds 2 2>&1)
	rc=$?
	printf '%s\n' "$out"
	echo "exit status $rc"
	[ "$rc" = 0 ] && grep -qx 'mn_check: PASS' <<<"$out" || return 1
	grep -qE "servers .*$ip2:$port=$1" <<<"$out" &&
		grep -qE "servers .*$ip3:$port=$1" <<<"$out" ||
		{ echo "not both servers over $1"; return 1; }
	# the data really left the guest and came back
	grep -qE 'written back [1-9][0-9]{3}' <<<"$out" &&
		grep -qE 'fetched [1-9][0-9]{3}' <<<"$out"
}
check "every word right after eviction, over RDMA (16 MiB, 2 MiB resident)" integrity rdma
check "every word right after eviction, over TCP" integrity tcp

# The same on 2 MiB pages, four of them resident: guest 4 reserves them
# for the run and gives them back.
huge_integrity() {
	local out rc

	run "$vmctl" exec 4 -- sh -c 'echo 6 >/proc/sys/vm/nr_hugepages &&
		[ "$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)" -ge 4 ]' ||
		{ echo "guest 4 could not reserve 2 MiB pages"; return 1; }
	out=$(run "$vmctl" exec 4 "${client_env[@]}" --env DSM_LOCAL_MEM=8M \
		--env DSM_TRANSPORT=rdma -- \
		build/tests/mn_check --size "$size" --rounds 2 --pages 2M 2>&1)
	rc=$?
	run "$vmctl" exec 4 -- sh -c 'echo 0 >/proc/sys/vm/nr_hugepages'
	printf '%s\n' "$out"
	echo "exit status $rc"
	[ "$rc" = 0 ] && grep -qx 'mn_check: PASS' <<<"$out" &&
		grep -qE 'written back [1-9][0-9]{3}' <<<"$out" &&
		grep -qE 'fetched [1-9][0-9]{3}' <<<"$out"
}
check "every word right after eviction on 2 MiB pages, over RDMA (8 MiB resident)" huge_integrity

# ---- the preload shim ------------------------------------------------------------------
shim_test() { # shim_test TRANSPORT
	local tr=$1 dir=$DSM_VM_DIR/share/rdma-sort out

	rm -rf "$dir" && mkdir -p "$dir" || return 1
	python3 -c '
import random, sys
r = random.Random(7)
with open(sys.argv[1], "w") as f:
    for i in range(40000):
        f.write("%016x %x %s\n" % (r.getrandbits(64), i, "z" * (i % 13)))
' "$dir/in" && LC_ALL=C sort -S 4M "$dir/in" >"$dir/plain" || return 1
	out=$(run "$vmctl" exec 4 "${client_env[@]}" --env DSM_TRANSPORT="$tr" \
		--env LC_ALL=C -- build/preload/dsm-run --local-mem 1M \
		--stats-file "$dir/stats" -- sort -S 4M -o "$dir/far" "$dir/in" 2>&1)
	printf '%s\n' "$out"
	grep -E "^(pages_fetched|pages_evicted|pages_written_back|transports)=" "$dir/stats"
	cmp "$dir/plain" "$dir/far" || return 1
	grep -q "transports=.*=$tr" "$dir/stats" &&
		awk -F= '$1 == "pages_fetched" && $2 > 0 { ok = 1 } END { exit !ok }' "$dir/stats"
}

# ---- rkeys and order, against guest 2's server ------------------------------------------
rdma_check() { # rdma_check CHECK [ENV...]
	local what=$1

	shift
	run "$vmctl" exec 4 --env DSM_SECRET_FILE="$secret" \
		--env DSM_CONNECT_TIMEOUT_MS=30000 "$@" -- \
		build/tests/rdma_check "$what" "$ip2:$port"
}
check "rkeys: another connection's and a freed region's read nothing" rdma_check stale-rkey
check "a WRITE after a DISCARD survives it" rdma_check discard-order
check "without the hold it does not (the check can fail)" \
	rdma_check discard-order --env DSM_TEST_RDMA_UNORDERED=1
check "INVALIDATEs: 8 unacknowledged at most, acked with every credit waiting on a LOCK" \
	rdma_check inval-flow

# ---- a running client: dsmctl, a drain, then its last server killed -------------------
client_pid=
client_up() { # client_up TRANSPORT
	mark_log 4
	client_pid=$(run "$vmctl" spawn 4 "${client_env[@]}" --env DSM_TRANSPORT="$1" -- \
		build/tests/mn_check --size "$size" --rounds 1000) || return 1
	wait_log 4 "round 1: "
}

dsmctl_test() { # dsmctl_test TRANSPORT
	local tr=$1 out

	out=$(run "$vmctl" exec 4 -- build/ctl/dsmctl --registry "$registry" \
		--cluster "$cluster" status) || return 1
	printf '%s\n' "$out"
	grep -qE "$ip2:$port .* tcp,rdma" <<<"$out" &&
		grep -qE "$ip3:$port .* tcp,rdma" <<<"$out" ||
		{ echo "status does not show both servers with tcp,rdma"; return 1; }
	grep -qE "^ *[0-9]+ .* $client_pid .* $tr$" <<<"$out" ||
		{ echo "status does not show the client (pid $client_pid) over $tr"; return 1; }
	# TCP traffic the servers count themselves; only RDMA's is one-sided
	[ "$tr" = rdma ] || return 0
	out=$(run "$vmctl" exec 4 -- build/ctl/dsmctl --registry "$registry" \
		--cluster "$cluster" --json stats) || return 1
	python3 -c '
import json, sys
doc = json.load(sys.stdin)
for s in doc["servers"]:
    print(s["addr"], "one-sided:", s["one_sided"])
    assert s["one_sided"]["pages_read"] > 0 and s["one_sided"]["pages_written"] > 0, s
' <<<"$out"
}

server_id() { # server_id I: guest I's server's registry id
	run "$vmctl" exec 4 -- build/ctl/dsmctl --registry "$registry" \
		--cluster "$cluster" --json servers | python3 -c '
import json, sys
print([s["id"] for s in json.load(sys.stdin) if s["addr"] == sys.argv[1]][0])
' "$("$vmctl" ip "$1"):$port"
}

drain_test() {
	local id rounds out k

	id=$(server_id 2) || return 1
	rounds=$(grep -c "^round [0-9]*: " <<<"$(log_new 4)")
	run "$vmctl" exec 4 -- build/ctl/dsmctl --registry "$registry" \
		--cluster "$cluster" drain --timeout=120 "$id" || return 1
	# a whole round after the drain: every word written and read back
	for ((k = 0; k < 300; k++)); do
		out=$(log_new 4)
		[ "$(grep -c "^round [0-9]*: " <<<"$out")" -ge $((rounds + 2)) ] && break
		sleep 0.2
	done
	grep "^round [0-9]*: " <<<"$out" | tail -3
	[ "$(grep -c "^round [0-9]*: " <<<"$out")" -ge $((rounds + 2)) ] ||
		{ echo "no whole round after the drain within 60 s"; return 1; }
	! grep -qE "^round [0-9]*: [0-9]+ words, [1-9]" <<<"$out"
}

kill_test() {
	local k log

	run "$vmctl" exec 3 -- kill -9 "${server_pid[3]}" || return 1
	# the client faults on a page only guest 3 held within its next round
	for ((k = 0; k < 300; k++)); do
		log=$(log_new 4)
		grep -qE "^=== guest 4 pid $client_pid \(exit" <<<"$log" && break
		sleep 0.2
	done
	grep -E "lost connection to memory server|SIGBUS|cannot|exit" <<<"$log" | tail -8
	grep -qE "^=== guest 4 pid $client_pid \(exit 3\)" <<<"$log" &&
		grep -q "^mn_check: SIGBUS at offset" <<<"$log" ||
		{ echo "the client did not end in SIGBUS on the lost page within 60 s"; return 1; }
	grep -q "lost connection to memory server $ip3:$port" <<<"$log" ||
		{ echo "the client did not name the lost server"; return 1; }
}

# The same over each transport.  Before the second round the first one's
# drain is cancelled and the server it killed is started again.
suite() { # suite TRANSPORT
	local tr=$1 name=${1^^}

	check "sort under dsm-run over $name (1 MiB resident): output as without" shim_test "$tr"
	check "a client runs over $name in guest 4" client_up "$tr"
	check "dsmctl status shows both servers and the client over $name" \
		dsmctl_test "$tr"
	check "a drain over $name under the running client: every word right" drain_test
	check "a server SIGKILLed under the client over $name: it is named, its page raises SIGBUS, no hang" kill_test
}

# Guest I's server started again, and listed with the other's only.
server_again() { # server_again I
	local k n

	server_up "$1" || return 1
	# the killed server's record lingers until its TTL (5 s): a client
	# must find the two live ones only
	for ((k = 0; k < 40; k++)); do
		n=$("$vmctl" exec 4 -- build/ctl/dsmctl --registry "$registry" \
			--cluster "$cluster" --json servers |
			python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')
		[ "$n" = 2 ] && return 0
		sleep 0.5
	done
	echo "the registry still lists $n servers"
	return 1
}
server3_again() { server_again 3; }

again() {
	local id

	id=$(server_id 2) || return 1
	run "$vmctl" exec 4 -- build/ctl/dsmctl --registry "$registry" \
		--cluster "$cluster" drain --cancel "$id" || return 1
	server3_again
}

# rounds_after I N: waits up to 120 s for N whole rounds in guest I's log
# since mark_log I; prints the last few.
rounds_after() {
	local k out

	for ((k = 0; k < 600; k++)); do
		out=$(log_new "$1")
		[ "$(grep -c "^round [0-9]*: " <<<"$out")" -ge "$2" ] && break
		grep -qE "^=== guest $1 pid [0-9]+ \(exit" <<<"$out" && break
		sleep 0.2
	done
	grep -E "^round [0-9]*: |SIGBUS|lost connection|^=== guest" <<<"$out" | tail -4
	[ "$(grep -c "^round [0-9]*: " <<<"$out")" -ge "$2" ]
}

replicas_test() {
	local pid n log t0

	mark_log 4
	pid=$(run "$vmctl" spawn 4 "${client_env[@]}" --env DSM_TRANSPORT=rdma \
		--env DSM_REPLICAS=2 -- \
		build/tests/mn_check --size "$size" --rounds 1000) || return 1
	wait_log 4 "round 1: " || return 1
	mark_log 4
	run "$vmctl" exec 3 -- kill -9 "${server_pid[3]}" || return 1
	# A SIGKILLed server's queue pairs answer in the kernel until its
	# exit has torn them down, which under TCG can outlast two rounds
	# (CI of 12-06): wait for the client to see it go, then ask for two
	# whole rounds after that, every word right.
	t0=$SECONDS
	wait_log 4 "lost connection to memory server $ip3:$port|^=== guest 4 pid $pid \(exit" 120
	log=$(log_new 4)
	grep -q "lost connection to memory server $ip3:$port" <<<"$log" || {
		grep -E "^round [0-9]*: |SIGBUS|^=== guest" <<<"$log" | tail -4
		echo "the client did not see the server go within 120 s"
		"$vmctl" exec 4 -- kill "$pid" >/dev/null 2>&1
		return 1
	}
	n=$(grep -c "^round [0-9]*: " <<<"$log")
	echo "the client saw the server go after $((SECONDS - t0)) s, $n rounds after the kill"
	rounds_after 4 $((n + 2)) ||
		{ echo "no two whole rounds after the loss within 120 s"; return 1; }
	log=$(log_new 4)
	"$vmctl" exec 4 -- kill "$pid" >/dev/null 2>&1
	! grep -qE "^round [0-9]*: [0-9]+ words, [1-9]|SIGBUS" <<<"$log"
}

suite rdma
check "guest 2's drain cancelled, guest 3's server started again" again
check "DSM_REPLICAS=2 over RDMA: a server SIGKILLed under the client costs no word" \
	replicas_test
check "guest 3's server started again" server3_again
# shared TRANSPORT CASE N: test_shared_mem's case CASE in N processes,
# the even ones in guest 1 and the odd ones in guest 4, all at once, over
# TRANSPORT; each checks what it saw and exits 0 only if it was right.
shared_test() {
	local tr=$1 name=$2 n=$3 who pids=() rc=0 out

	for ((who = 0; who < n - 1; who++)); do
		pids+=("$(run "$vmctl" spawn $((who % 2 ? 4 : 1)) "${client_env[@]}" \
			--env DSM_TRANSPORT="$tr" -- build/tests/test_shared_mem \
			child "$name" "$who" - 10)") || return 1
	done
	out=$(run "$vmctl" exec $(((n - 1) % 2 ? 4 : 1)) "${client_env[@]}" \
		--env DSM_TRANSPORT="$tr" -- build/tests/test_shared_mem \
		child "$name" $((n - 1)) - 10 2>&1) || rc=1
	grep -E "^  |SIGBUS|timed out|wrong|saw|counted" <<<"$out"
	grep -qE "servers .*$ip2:$port=$tr" <<<"$out" &&
		grep -qE "servers .*$ip3:$port=$tr" <<<"$out" ||
		{ echo "not both servers over $tr"; rc=1; }
	for ((who = 0; who < n - 1; who++)); do
		wait_exit $((who % 2 ? 4 : 1)) "${pids[$who]}" 0 || rc=1
	done
	# what a failed child said is in its guest's log
	[ "$rc" = 0 ] || { "$vmctl" log 1 | tail -n 12; "$vmctl" log 4 | tail -n 12; }
	return $rc
}
for tr in rdma tcp; do
	check "shared memory across guests over $tr: a ring buffer, producer and consumer on two nodes" \
		shared_test $tr ring 2
	check "shared memory across guests over $tr: message passing, writer and reader on two nodes" \
		shared_test $tr mp 2
	check "shared memory across guests over $tr: store buffering with fences, never both zero" \
		shared_test $tr sb 2
	check "shared memory across guests over $tr: dsm_fetch_add from 4 processes on two nodes, exact" \
		shared_test $tr counters 4
	check "shared memory across guests over $tr: two counters kept equal under dsm_lock by 4 processes on two nodes" \
		shared_test $tr locked 4
done
# Over RDMA, where credits and one-sided READs change the client's path:
# bursts of grants, eviction meeting invalidation, locks with a model.
check "shared memory across guests over rdma: 24 threads faulting at once on pages another process owns" \
	shared_test rdma threads 2
check "shared memory across guests over rdma: a randomized model of words, 3 processes, a quarter of the region resident" \
	shared_test rdma model 3
check "shared memory across guests over rdma: the model under dsm_lock, 3 processes" \
	shared_test rdma lockmodel 3
check "shared memory across guests over rdma: 24 threads in each of 2 processes taking one lock (more waiters than credits)" \
	shared_test rdma lockthreads 2

# shared_home NAME HOLDERS: the registry's home of shared region NAME once
# it has HOLDERS holders, or nothing
shared_home() {
	run "$vmctl" exec 4 -- build/ctl/dsmctl --registry "$registry" \
		--cluster "$cluster" --json regions 2>/dev/null | python3 -c '
import json, sys
s = [r for r in json.load(sys.stdin) if r.get("shared") and r["name"] == sys.argv[1]]
if s and len(s[0]["holders"]) == int(sys.argv[2]):
    print(s[0]["home"])' "$1" "$2"
}

# drain_shared_test TRANSPORT: the home of a shared region drained under
# 3 processes in guests 1 and 4 (tests/drain_shared.c) taking a lock,
# adding with dsm_fetch_add and writing pages of their own: the drain
# ends while they run (one seals and copies the region, the others
# follow it), and each finds every count exact.  The drain is cancelled
# afterwards, for what follows.
drain_shared_test() {
	local tr=$1 name=mn-drain-$1 pids=() home="" new="" who k rc=0 left

	mark_log 1
	mark_log 4
	for who in 0 1 2; do
		pids+=("$(run "$vmctl" spawn $((who % 2 ? 4 : 1)) "${client_env[@]}" \
			--env DSM_TRANSPORT="$tr" --env DSM_LOG=info -- build/tests/drain_shared \
			"$name" 3 "$who" 60)") || return 1
	done
	for ((k = 0; k < 150; k++)); do
		home=$(shared_home "$name" 3)
		[ -n "$home" ] && break
		sleep 0.2
	done
	[ -n "$home" ] || { echo "the 3 processes did not map $name"; return 1; }
	run "$vmctl" exec 4 -- build/ctl/dsmctl --registry "$registry" \
		--cluster "$cluster" drain --timeout=120 "$home" || rc=1
	grep -q "^ok " <<<"$(log_new 1; log_new 4)" &&
		{ echo "the drain ended only once the processes were done"; rc=1; }
	new=$(shared_home "$name" 3)
	echo "home of $name: server $home, then ${new:-none}"
	[ -n "$new" ] && [ "$new" != "$home" ] || rc=1
	run "$vmctl" exec 4 -- build/ctl/dsmctl --registry "$registry" \
		--cluster "$cluster" drain --cancel "$home" || rc=1
	for ((k = 0; k < 600; k++)); do
		left=0
		for who in 0 1 2; do
			grep -q "^=== guest $((who % 2 ? 4 : 1)) pid ${pids[$who]} (exit" \
				<<<"$(log_new $((who % 2 ? 4 : 1)))" || left=1
		done
		[ $left = 0 ] && break
		sleep 0.2
	done
	for who in 0 1 2; do
		wait_exit $((who % 2 ? 4 : 1)) "${pids[$who]}" 0 || rc=1
	done
	grep -hE "^ok |^FAIL|moving it off|its home is" <<<"$(log_new 1; log_new 4)"
	return $rc
}
check "a shared region's home drained under 3 processes on two nodes over rdma: moved, every count exact" \
	drain_shared_test rdma

# failover_shared_test: drain_shared's 3 processes in guests 1 and 4 over
# RDMA with DSM_REPLICAS=2 (the region's home on one server, its standby
# on the other); the home's server SIGKILLed under them: each fails over
# to the standby (writes back what it owns, takes its locks again,
# promotes it) and finds every count exact.  The server is started again
# afterwards.
failover_shared_test() {
	local name=mn-failover pids=() home="" victim="" who k rc=0 left out

	mark_log 1
	mark_log 4
	for who in 0 1 2; do
		pids+=("$(run "$vmctl" spawn $((who % 2 ? 4 : 1)) "${client_env[@]}" \
			--env DSM_TRANSPORT=rdma --env DSM_REPLICAS=2 --env DSM_LOG=info -- \
			build/tests/drain_shared "$name" 3 "$who" 25)") || return 1
	done
	for ((k = 0; k < 150; k++)); do
		home=$(shared_home "$name" 3)
		[ -n "$home" ] && break
		sleep 0.2
	done
	[ -n "$home" ] || { echo "the 3 processes did not map $name"; return 1; }
	for k in 2 3; do
		[ "$(server_id $k)" = "$home" ] && victim=$k
	done
	[ -n "$victim" ] || { echo "no guest serves server $home"; return 1; }
	sleep 5 # under way before the kill
	echo "killing guest $victim's server ($home), the home of $name"
	run "$vmctl" exec "$victim" -- kill -9 "${server_pid[$victim]}" || return 1
	for ((k = 0; k < 600; k++)); do
		left=0
		for who in 0 1 2; do
			grep -q "^=== guest $((who % 2 ? 4 : 1)) pid ${pids[$who]} (exit" \
				<<<"$(log_new $((who % 2 ? 4 : 1)))" || left=1
		done
		[ $left = 0 ] && break
		sleep 0.2
	done
	for who in 0 1 2; do
		wait_exit $((who % 2 ? 4 : 1)) "${pids[$who]}" 0 || rc=1
	done
	out=$(log_new 1; log_new 4)
	grep -hE "^ok |^FAIL|standby|is lost;|failing over" <<<"$out"
	[ "$(grep -c "is lost; .* holds it now" <<<"$out")" = 3 ] ||
		{ echo "not every process failed over"; rc=1; }
	server_again "$victim" || rc=1
	return $rc
}
check "a replicated shared region's home SIGKILLed under 3 processes on two nodes over rdma: failed over, every count exact" \
	failover_shared_test

suite tcp

"$vmctl" down
trap - EXIT
rm -f "$secret"
echo "rdma: vmctl up 4 took ${up_s} s; the whole test $((SECONDS - t_start)) s"
finish
