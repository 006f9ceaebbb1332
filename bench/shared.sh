#!/usr/bin/env bash
# What coherence costs on shared regions, next to a plain remote fault
# measured in the same run.
#
#   bench/shared.sh            (about two minutes with the defaults)
#
# One dsm-server on loopback (4 KiB pool).  Interleaved, REPS times:
#   - dsm-bench-latency: the remote fault p50 of a private region, the
#     baseline (and the TCP round trip under it);
#   - dsm-bench-shared --mode pingpong: two processes hand a token back
#     and forth through one word of a shared page (a RECALL and an
#     INVALIDATE per handoff);
#   - dsm-bench-shared --mode readers --readers R (R = 1..4): a writer
#     rewrites a 1 MiB region, then R readers read it, per page;
#   - dsm-bench-shared --mode lock --lockers L (L = 1, 2, 4): dsm_lock and
#     dsm_unlock of one lock in a loop, uncontended and contended.
# Medians over the runs go to bench/results/shared.md.  Knobs: REPS (3),
# HANDOFFS (4000), ROUNDS (10), LOCKS (2000), BUILD (build-bench; built Release unless
# SKIP_BUILD=1).  A benchmark, not a test: the exit status is non-zero
# only if a run failed or read a wrong value.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
HANDOFFS=${HANDOFFS:-4000}
ROUNDS=${ROUNDS:-10}
LOCKS=${LOCKS:-2000}
BUILD=${BUILD:-$top/build-bench}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac

log() { printf 'bench: %s\n' "$*" >&2; }
work=$(mktemp -d /tmp/dsm-shared-bench.XXXXXX)
server=""
cleanup() {
	set +e
	[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${SKIP_BUILD:-}" ]; then
	log "building in $BUILD (Release)"
	{ cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
	  cmake --build "$BUILD" -j"$(nproc)" --target dsm-server \
		dsm-bench-latency dsm-bench-shared; } >"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log" >&2; exit 1; }
fi

"$BUILD/server/dsm-server" --listen 127.0.0.1:0 --capacity 1G \
	--hugepages off --port-file "$work/port" --log warn 2>"$work/server.log" &
server=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { log "the server did not start"; cat "$work/server.log" >&2; exit 1; }
addr=127.0.0.1:$(cat "$work/port")
log "server on $addr"

jsonl=$work/all.jsonl
: >"$jsonl"
record() { # record CASE CMD...
	local name=$1 out

	shift
	log "$name"
	out=$("$@") || { log "$name FAILED"; exit 1; }
	printf '{"case":"%s","result":%s}\n' "$name" "$out" >>"$jsonl"
}
for rep in $(seq "$REPS"); do
	log "run $rep of $REPS"
	record latency "$BUILD/bench/dsm-bench-latency" --server "$addr" \
		--samples 5000
	record pingpong "$BUILD/bench/dsm-bench-shared" --server "$addr" \
		--mode pingpong --n $((HANDOFFS / 2))
	for r in 1 2 3 4; do
		record "readers-$r" "$BUILD/bench/dsm-bench-shared" \
			--server "$addr" --mode readers --readers "$r" --n "$ROUNDS"
	done
	for l in 1 2 4; do
		record "lock-$l" "$BUILD/bench/dsm-bench-shared" \
			--server "$addr" --mode lock --lockers "$l" --n "$LOCKS"
	done
done

mkdir -p "$top/bench/results"
python3 - "$jsonl" "$REPS" >"$work/shared.md" <<'PY'
import json, statistics, sys, time
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(case, key):
    v = [r["result"][key] for r in runs if r["case"] == case]
    return statistics.median(v) if v else None
fault = med("latency", "remote_fault_p50_us")
rtt = med("latency", "tcp_rtt_p50_us")
pp = med("pingpong", "us_per_handoff")
print("# Shared regions: what coherence costs\n")
print(f"- date: {time.strftime('%Y-%m-%d %H:%M')}")
print(f"- {sys.argv[2]} interleaved runs per case, medians; one dsm-server "
      "on loopback TCP, 4 KiB pool; processes on one 2-core VM\n")
print("| operation | µs | / remote fault |")
print("|---|---|---|")
print(f"| remote fault of a private page, p50 (baseline) | {fault:.1f} | 1.00 |")
print(f"| TCP round trip, 1-page READ, p50 | {rtt:.1f} | {rtt / fault:.2f} |")
print(f"| ownership handoff between two processes (one RECALL, one INVALIDATE) | {pp:.1f} | {pp / fault:.2f} |")
for l, what in ((1, "uncontended"), (2, "2 processes contending"),
                (4, "4 processes contending")):
    v = med(f"lock-{l}", "us_per_lock")
    print(f"| dsm_lock + dsm_unlock, {what} (per acquisition, each process) | {v:.1f} | {v / fault:.2f} |")
print("\n| readers | write, per page (invalidating R copies) | / remote fault "
      "| read, per page (each reader) | / remote fault |")
print("|---|---|---|---|---|")
for r in (1, 2, 3, 4):
    w = med(f"readers-{r}", "write_us_per_page")
    rd = med(f"readers-{r}", "read_us_per_page")
    print(f"| {r} | {w:.1f} | {w / fault:.2f} | {rd:.1f} | {rd / fault:.2f} |")
PY
cp "$work/shared.md" "$top/bench/results/shared.md"
cat "$work/shared.md"
log "report in bench/results/shared.md"
