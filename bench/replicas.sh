#!/usr/bin/env bash
# What replicas cost, and how long making lost copies again takes.
#
#   bench/replicas.sh          (a few minutes with the defaults)
#
# 1. Re-replication: a fresh local cluster (redis + 3 servers), one client
#    (tests/drain_load: THREADS threads of checked random reads and
#    writes) with DSM_REPLICAS=2 over SIZE_MIB MiB and a LOCAL budget; the
#    server holding the most is SIGKILLed, and the time is taken from the
#    kill until the client logs that the region lacks no copy any more
#    (degraded_stripes 0), and the MiB it copied.
# 2. Cost of a second copy: dsm-bench-workload (as bench/run.sh runs it)
#    with 1 and with 2 copies on the same cluster: a sequential write of
#    SIZE_MIB MiB (its fill) and OPS random read-modify-writes.
#
# The report goes to bench/results/replicas.md.  Knobs: SIZE_MIB (1024),
# LOCAL (256M), THREADS (4), OPS (2000000), REPS (3: runs of each
# workload, medians), BUILD (build-bench; built
# Release unless SKIP_BUILD=1), REDIS_PORT/BASE_PORT (7790/7791).
# A benchmark, not a test: the exit status is non-zero only if a run
# failed or read back wrong data.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MIB=${SIZE_MIB:-1024}
LOCAL=${LOCAL:-256M}
THREADS=${THREADS:-4}
OPS=${OPS:-2000000}
REPS=${REPS:-3}
BUILD=${BUILD:-$top/build-bench}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac

log() { printf 'bench: %s\n' "$*" >&2; }
work=$(mktemp -d /tmp/dsm-replicas-bench.XXXXXX)
client=""
# two copies of SIZE_MIB on the two servers left after a loss, and room
capacity=$(( SIZE_MIB + SIZE_MIB / 4 + 64 ))M
export RUN_DIR=$work/run BUILD SERVERS=3 CAPACITY=$capacity CLUSTER=repbench-$$
export REDIS_PORT=${REDIS_PORT:-7790} BASE_PORT=${BASE_PORT:-7791}
export DSM_REGISTRY=redis://127.0.0.1:$REDIS_PORT DSM_CLUSTER=$CLUSTER
export DSM_SECRET_FILE=$RUN_DIR/secret DSM_REGISTRY_PASSWORD_FILE=$RUN_DIR/redis.pass
unset DSM_SERVERS DSM_REPLICAS

cleanup() {
	set +e
	[ -n "$client" ] && kill -KILL "$client" 2>/dev/null
	"$top/deploy/cluster.sh" down >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${SKIP_BUILD:-}" ]; then
	log "building in $BUILD (Release)"
	{ cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
	  cmake --build "$BUILD" -j"$(nproc)" --target dsm-server dsmctl \
		drain_load dsm-bench-workload; } >"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log" >&2; exit 1; }
fi
dsmctl=$BUILD/ctl/dsmctl
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
now_ms() { date +%s%3N; }

cluster_up() {
	"$top/deploy/cluster.sh" up >"$work/up.log" 2>&1 || { cat "$work/up.log"; exit 1; }
}

# 1. time to re-replicate; prints "SECONDS MIB"
rereplicate() {
	local victim t0 line
	cluster_up
	DSM_REPLICAS=2 DSM_LOCAL_MEM=$LOCAL DSM_LOG=info \
		"$BUILD/tests/drain_load" "$SIZE_MIB" "$THREADS" \
		>"$work/client.out" 2>"$work/client.err" &
	client=$!
	for _ in $(seq 1200); do grep -qx ready "$work/client.out" && break; sleep 0.1; done
	grep -qx ready "$work/client.out" || { cat "$work/client.err" >&2; exit 1; }
	sleep 2 # the servers' records catch up (a heartbeat)
	victim=$("$dsmctl" --json servers | json_get 'max(d, key=lambda s: s["used"])["pid"]')
	t0=$(now_ms)
	kill -KILL "$victim"
	for _ in $(seq 6000); do
		grep -q "stripes still lack a copy" "$work/client.err" && break
		sleep 0.05
	done
	line=$(grep "stripes still lack a copy" "$work/client.err" | tail -1)
	[ -n "$line" ] || { log "no re-replication: $(tail -3 "$work/client.err")"; exit 1; }
	grep -q "; 0 stripes still lack a copy" <<<"$line" ||
		log "warning: not finished in one pass: $line"
	kill -TERM "$client"
	wait "$client" || { log "client failed: $(tail -3 "$work/client.err")"; exit 1; }
	client=""
	grep -q 'mismatches=0 ' "$work/client.out" ||
		{ log "wrong data: $(grep done "$work/client.out")"; exit 1; }
	printf '%s %s\n' "$(( $(now_ms) - t0 ))" \
		"$(( $(sed -n 's/.*: \([0-9]*\) pages copied again.*/\1/p' <<<"$line") * 4096 >> 20 ))"
	"$top/deploy/cluster.sh" down >/dev/null 2>&1
}

# 2. one workload run with N copies: prints its JSON line
workload() {
	local copies=$1 pattern=$2
	DSM_REPLICAS=$copies DSM_LOCAL_MEM=$LOCAL "$BUILD/bench/dsm-bench-workload" \
		--backend dsm --size "${SIZE_MIB}M" --pattern "$pattern" \
		--ops "$OPS" --threads "$THREADS" 2>>"$work/workload.err" ||
		{ log "workload failed: $(tail -3 "$work/workload.err")"; exit 1; }
}

log "re-replication of $SIZE_MIB MiB with 2 copies"
rereplicate >"$work/rr.txt" # not in a subshell: cleanup needs $client
read -r rr_ms rr_mib <"$work/rr.txt"
log "re-replicated $rr_mib MiB in $rr_ms ms after the kill"

cluster_up
# interleaved, so that the machine's drift from minute to minute falls on
# both alike; medians of REPS
for rep in $(seq "$REPS"); do
	for pattern in seq rmw; do
		for copies in 1 2; do
			log "$pattern with $copies copies, run $rep of $REPS"
			echo "$copies $(workload "$copies" "$pattern")" >>"$work/workload.txt"
		done
	done
done
"$top/deploy/cluster.sh" down >/dev/null 2>&1

mkdir -p "$top/bench/results"
python3 - "$work/workload.txt" "$rr_ms" "$rr_mib" "$SIZE_MIB" "$LOCAL" "$THREADS" \
	>"$top/bench/results/replicas.md" <<'PY'
import json, statistics, sys
runs = {}
for l in open(sys.argv[1]):
    copies, js = l.split(" ", 1)
    d = json.loads(js)
    runs.setdefault((int(copies), d["pattern"]), []).append(d)
def med(copies, pattern, key):
    return statistics.median(d[key] for d in runs[(copies, pattern)])
ms, mib, size, local, threads = (sys.argv[2], sys.argv[3], int(sys.argv[4]),
                                 sys.argv[5], sys.argv[6])
print("# Replicas: cost and re-replication\n")
print(f"Three local servers; {size} MiB, local budget {local}, {threads} threads.\n")
print(f"Re-replication: the server holding the most SIGKILLed under load; "
      f"{mib} MiB copied again, {int(ms)/1000:.2f} s from the kill to "
      f"degraded_stripes 0 ({int(ms)/1000/max(int(mib),1)*1024:.2f} s per GiB).\n")
reps = len(runs[(1, "seq")])
print(f"Medians of {reps} runs of each, 1 and 2 copies interleaved.\n")
print("| | 1 copy | 2 copies | 2 / 1 |")
print("|---|---|---|---|")
w1, w2 = size / med(1, "seq", "fill_seconds"), size / med(2, "seq", "fill_seconds")
print(f"| sequential write (MiB/s) | {w1:.0f} | {w2:.0f} | {w2/w1:.2f} |")
for key, name, scale in (("us_per_op", "read-modify-write (µs/op)", 1),
                         ("fault_p50_ns", "rmw fault p50 (µs)", 1000),
                         ("fault_p99_ns", "rmw fault p99 (µs)", 1000)):
    a, b = med(1, "rmw", key) / scale, med(2, "rmw", key) / scale
    print(f"| {name} | {a:.1f} | {b:.1f} | {b/a:.2f} |")
print("\nraw:")
for k in sorted(runs):
    for d in runs[k]:
        print(f"    {k[0]} {json.dumps(d)}")
PY
cat "$top/bench/results/replicas.md"
