#!/usr/bin/env bash
# bench/multinode.sh - RDMA against TCP across two qemu guests with
# soft-RoCE, in one run: fault latency p50/p99 (dsm-bench-latency: a
# remote fault through libdsm with prefetch off, and the raw floors),
# sequential throughput (dsm-bench-workload seq), and what coherence
# costs on a shared region (dsm-bench-shared: an ownership handoff
# between two processes, a lock uncontended and with 2 contending, a
# write invalidating 2 readers' copies and their reads), with a server in
# guest 1 and the clients in guest 2, DSM_TRANSPORT=rdma and tcp
# interleaved.
#   bench/multinode.sh
# Knobs: REPS (3), SAMPLES (latency samples per run, 2000), SIZE (seq
# working set, 64M; the budget is SIZE/8), HANDOFFS (400), LOCKS (400).
# The report goes to bench/results/multinode.md, its chart to
# multinode.png, the runs to multinode.jsonl (bench/multinode_report.py).
#
# These are software figures: TCG emulates the CPUs and rdma_rxe the NIC,
# so they show the two transports side by side on the same emulated
# machines, never what RDMA hardware does (the report says so).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
REPS=${REPS:-3}
SAMPLES=${SAMPLES:-2000}
SIZE=${SIZE:-64M}
HANDOFFS=${HANDOFFS:-400}
LOCKS=${LOCKS:-400}
vmctl=$top/deploy/vm/vmctl
export DSM_VM_DIR=${DSM_VM_DIR:-$top/build/vm}
log() { printf 'bench-multinode: %s\n' "$*" >&2; }

deploy/install-deps.sh --vm >&2 || exit 1
deploy/build.sh build >/dev/null || { log "build failed"; exit 1; }
trap '"$vmctl" down >/dev/null 2>&1' EXIT
"$vmctl" down >/dev/null 2>&1
"$vmctl" up 2 >&2 || { log "the guests did not come up"; exit 1; }
ip1=$("$vmctl" ip 1)
secret=$DSM_VM_DIR/share/bench.secret
rm -f "$secret"
(umask 077 && head -c 32 /dev/urandom | base64 >"$secret")
"$vmctl" spawn 1 -- build/server/dsm-server --listen "$ip1:7400" \
	--capacity 512M --secret-file "$secret" >/dev/null
for _ in $(seq 50); do
	"$vmctl" log 1 | grep -q 'listening on' && break
	sleep 0.5
done
budget=$(( $(numfmt --from=iec "$SIZE") / 8 ))
raw=$(mktemp)
for rep in $(seq "$REPS"); do
	for tr in rdma tcp; do
		log "latency over $tr (run $rep/$REPS)"
		"$vmctl" exec 2 --env DSM_TRANSPORT="$tr" --env DSM_SECRET_FILE="$secret" -- \
			build/bench/dsm-bench-latency --server "$ip1:7400" \
			--samples "$SAMPLES" 2>/dev/null |
			sed -n "s/^{/{\"case\":\"lat-$tr\",/p" >>"$raw"
		log "sequential over $tr (run $rep/$REPS)"
		"$vmctl" exec 2 --env DSM_TRANSPORT="$tr" --env DSM_SECRET_FILE="$secret" \
			--env DSM_SERVERS="$ip1:7400" --env DSM_LOCAL_MEM="$budget" -- \
			build/bench/dsm-bench-workload --backend dsm --size "$SIZE" \
			--pattern seq 2>/dev/null |
			sed -n "s/^{/{\"case\":\"seq-$tr\",/p" >>"$raw"
		for c in "pingpong|--mode pingpong --n $((HANDOFFS / 2))" \
			 "lock1|--mode lock --lockers 1 --n $LOCKS" \
			 "lock2|--mode lock --lockers 2 --n $LOCKS" \
			 "readers2|--mode readers --readers 2 --n 3"; do
			log "shared ${c%%|*} over $tr (run $rep/$REPS)"
			# shellcheck disable=SC2086 # the mode and its options
			"$vmctl" exec 2 --env DSM_TRANSPORT="$tr" --env DSM_SECRET_FILE="$secret" -- \
				build/bench/dsm-bench-shared --server "$ip1:7400" ${c#*|} \
				2>/dev/null | sed -n "s/^{/{\"case\":\"${c%%|*}-$tr\",/p" >>"$raw"
		done
	done
done
mkdir -p bench/results
# The runs are kept (multinode.jsonl) with what the report says of them,
# so the report and its chart can be made again without the guests:
#   bench/multinode_report.py bench/results/multinode.jsonl --plots bench/results
{
	printf '{"meta": {"date": "%s", "reps": %d, "size": "%s"}}\n' \
		"$(date '+%Y-%m-%d %H:%M')" "$REPS" "$SIZE"
	cat "$raw"
} >bench/results/multinode.jsonl
rm -f "$raw" bench/results/multinode.png
/usr/bin/python3 -B bench/multinode_report.py bench/results/multinode.jsonl \
	--plots bench/results >bench/results/multinode.md
cat bench/results/multinode.md
