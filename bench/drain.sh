#!/usr/bin/env bash
# What a drain costs: how long `dsmctl drain` takes per GiB moved, and what
# the clients' memory accesses see meanwhile, next to the same client's
# accesses just before the drain, in the same run.
#
#   bench/drain.sh            (about 2 minutes with the defaults)
#
# Each repetition brings up a fresh local cluster (redis + 3 servers of
# 2G), starts one client (tests/drain_load: THREADS threads of random
# reads and writes, each checked, over SIZE_MIB MiB with a LOCAL budget),
# records WINDOW seconds of its access latencies, then drains the server
# holding the most and records the latencies during the drain.  Every
# TICK seconds meanwhile it also takes the client's latencies since the
# last tick and what the drained server still holds: the timeline of the
# chart.  Medians of REPS runs go to bench/results/drain.md, the chart to
# drain.png, the runs to drain.jsonl (bench/drain_report.py makes the
# report and the chart again from them).  Knobs: SIZE_MIB (default
# 3072), LOCAL (256M), THREADS (4), REPS (3), WINDOW (3), TICK (0.25),
# BUILD (build-bench; built Release unless SKIP_BUILD=1), OUT (the
# directory kept in, bench/results).
# Benchmarks, not tests: the exit status is non-zero only if a run failed
# or read back wrong data.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MIB=${SIZE_MIB:-3072}
LOCAL=${LOCAL:-256M}
THREADS=${THREADS:-4}
REPS=${REPS:-3}
WINDOW=${WINDOW:-3}
TICK=${TICK:-0.25}
BUILD=${BUILD:-$top/build-bench}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac
OUT=${OUT:-$top/bench/results}
PY=/usr/bin/python3   # Debian's, which has Debian's matplotlib: not a pyenv shim

log() { printf 'bench: %s\n' "$*" >&2; }
work=$(mktemp -d /tmp/dsm-drain-bench.XXXXXX)
client=""
sampler=""
export RUN_DIR=$work/run BUILD SERVERS=3 CAPACITY=2G CLUSTER=drainbench-$$
export REDIS_PORT=${REDIS_PORT:-7690} BASE_PORT=${BASE_PORT:-7691}
export DSM_REGISTRY=redis://127.0.0.1:$REDIS_PORT DSM_CLUSTER=$CLUSTER
export DSM_SECRET_FILE=$RUN_DIR/secret DSM_REGISTRY_PASSWORD_FILE=$RUN_DIR/redis.pass
unset DSM_SERVERS

cleanup() {
	set +e
	[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
	[ -n "$client" ] && kill -KILL "$client" 2>/dev/null
	"$top/deploy/cluster.sh" down >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${SKIP_BUILD:-}" ]; then
	log "building in $BUILD (Release)"
	{ cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
	  cmake --build "$BUILD" -j"$(nproc)" --target dsm-server dsmctl drain_load; } \
		>"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; exit 1; }
fi
dsmctl=$BUILD/ctl/dsmctl

json_get() { $PY -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
wait_lines() { # N: until the client has printed N window lines
	for _ in $(seq 300); do
		[ "$(grep -c '^window' "$work/client.out")" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

now_ms() { date +%s%3N; }

# sample VICTIM: every TICK s until killed, a tick line from the client
# (its latencies since the last) and the registry's servers, kept whole
# (parsed once at the end, to keep each tick cheap).
sample() {
	mkdir -p "$work/samples"
	while kill -USR2 "$client" 2>/dev/null; do
		"$dsmctl" --json servers >"$work/samples/$(now_ms).json" 2>/dev/null
		sleep "$TICK"
	done
}

# rep_record REP VICTIM START_MS SECS MOVED_LINE: the run as one JSON line
# (drain_report.py's input), timeline included.
rep_record() {
	$PY - "$@" "$work/samples" "$work/client.out" <<'PY'
import json, os, re, sys
rep, victim, start, secs, moved, samples, client = sys.argv[1:]
start = int(start)
def field(line, k):
    return int(re.search(k + r"=(\d+)", line).group(1))
windows = [l for l in open(client) if l.startswith("window")]
left = []
for f in sorted(os.listdir(samples)):
    try:
        servers = json.load(open(os.path.join(samples, f)))
    except ValueError:
        continue   # dsmctl cut short: a tick without the server's figure
    used = [s["used"] for s in servers if str(s["id"]) == victim]
    if used:
        left.append([(int(f[:-5]) - start) / 1e3, used[0] / 2**20])
ticks = [[(field(l, "t_ms") - start) / 1e3, field(l, "access_p50_us"),
          field(l, "access_p99_us")] for l in open(client)
         if l.startswith("tick") and field(l, "ops")]
print(json.dumps({
    "rep": int(rep), "dsmctl_s": float(secs),
    "moved_mib": int(re.search(r"moved (\d+) MiB", moved).group(1)),
    "move_ms": int(re.search(r" in (\d+) ms", moved).group(1)),
    "before_p50_us": field(windows[1], "access_p50_us"),
    "before_p99_us": field(windows[1], "access_p99_us"),
    "during_p50_us": field(windows[2], "access_p50_us"),
    "during_p99_us": field(windows[2], "access_p99_us"),
    "left": left, "ticks": ticks}))
PY
}

one_rep() {
	local rep=$1 victim moved_line secs start
	"$top/deploy/cluster.sh" up >"$work/up.log" 2>&1 || { cat "$work/up.log"; exit 1; }
	DSM_LOCAL_MEM=$LOCAL DSM_LOG=info "$BUILD/tests/drain_load" "$SIZE_MIB" "$THREADS" \
		>"$work/client.out" 2>"$work/client.err" &
	client=$!
	for _ in $(seq 600); do grep -qx ready "$work/client.out" && break; sleep 0.1; done
	grep -qx ready "$work/client.out" || { cat "$work/client.err"; exit 1; }
	sleep 1
	victim=$("$dsmctl" --json servers | json_get 'max(d, key=lambda s: s["used"])["id"]')
	rm -rf "$work/samples"
	kill -USR1 "$client"; wait_lines 1   # discard the warm-up
	sample & sampler=$!                  # the timeline, from here
	sleep "$WINDOW"
	kill -USR1 "$client"; wait_lines 2   # before: WINDOW seconds, no drain
	start=$(now_ms)
	"$dsmctl" --json drain "$victim" --timeout=600 >"$work/drain.json"
	kill -USR1 "$client"; wait_lines 3   # during: the drain
	sleep 1                              # and a second of the timeline after
	kill "$sampler"; wait "$sampler" 2>/dev/null || true
	sampler=""
	kill -TERM "$client"
	wait "$client" || { log "client failed: $(tail -3 "$work/client.err")"; exit 1; }
	client=""
	secs=$(json_get 'd["seconds"]' <"$work/drain.json")
	moved_line=$(grep 'moved .* MiB off' "$work/client.err" | tail -1)
	rep_record "$rep" "$victim" "$start" "$secs" "$moved_line" >>"$work/drain.jsonl"
	grep -q 'mismatches=0 ' "$work/client.out" || { log "wrong data: $(grep done "$work/client.out")"; exit 1; }
	"$top/deploy/cluster.sh" down >/dev/null 2>&1
}

printf '{"meta": {"date": "%s", "reps": %d, "size_mib": %d, "local": "%s", "threads": %d, "tick_s": %s}}\n' \
	"$(date '+%Y-%m-%d %H:%M')" "$REPS" "$SIZE_MIB" "$LOCAL" "$THREADS" "$TICK" >"$work/drain.jsonl"
for rep in $(seq "$REPS"); do
	log "rep $rep of $REPS"
	one_rep "$rep"
done

mkdir -p "$OUT"
$PY -B "$top/bench/drain_report.py" "$work/drain.jsonl" --plots "$work" >"$work/drain.md"
cp "$work/drain.md" "$work/drain.jsonl" "$OUT/"
rm -f "$OUT/drain.png"
[ ! -e "$work/drain.png" ] || cp "$work/drain.png" "$OUT/"
cat "$OUT/drain.md"
log "report in $OUT/drain.md, its chart in drain.png, the runs in drain.jsonl"
