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
# The report goes to bench/results/multinode.md.
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
python3 - "$raw" "$REPS" "$SIZE" >bench/results/multinode.md <<'PY'
import json, statistics, sys, datetime
raw, reps, size = sys.argv[1], sys.argv[2], sys.argv[3]
runs = {}
for line in open(raw):
    d = json.loads(line)
    runs.setdefault(d["case"], []).append(d)
def med(case, key):
    v = [r[key] for r in runs.get(case, []) if r.get(key) is not None]
    return statistics.median(v) if v else None
def f(v, d=1):
    return "-" if v is None else f"{v:,.{d}f}"
out = ["# RDMA against TCP across two soft-RoCE guests", "",
       f"- date: {datetime.datetime.now():%Y-%m-%d %H:%M}",
       f"- {reps} runs per case, medians; qemu TCG guests (Linux 6.1, "
       "rdma_rxe), server in guest 1, client in guest 2",
       "- **software figures**: emulated CPUs and an emulated NIC; they "
       "compare the two transports on the same machines, never hardware",
       "", "| | RDMA | TCP |", "|---|---|---|"]
for key, label in (("remote_fault_p50_us", "remote fault p50 µs (prefetch off)"),
                   ("remote_fault_p99_us", "remote fault p99 µs"),
                   ("lib_fault_p50_us", "libdsm fault service p50 µs")):
    out.append(f"| {label} | {f(med('lat-rdma', key))} | {f(med('lat-tcp', key))} |")
out.append(f"| sequential read of {size}, budget 1/8, MB/s | "
           f"{f(med('seq-rdma', 'mb_per_s'))} | {f(med('seq-tcp', 'mb_per_s'))} |")
for case, key, label in (
        ("pingpong", "us_per_handoff", "shared: ownership handoff between two processes, µs"),
        ("lock1", "us_per_lock", "shared: dsm_lock + dsm_unlock uncontended, µs"),
        ("lock2", "us_per_lock", "shared: the same, 2 processes contending, µs each"),
        ("readers2", "write_us_per_page", "shared: write invalidating 2 readers' copies, µs per page"),
        ("readers2", "read_us_per_page", "shared: read by each of 2 readers, µs per page")):
    out.append(f"| {label} | {f(med(case + '-rdma', key))} | {f(med(case + '-tcp', key))} |")
out.append("")
print("\n".join(out))
PY
rm -f "$raw"
cat bench/results/multinode.md
