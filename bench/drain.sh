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
# holding the most and records the latencies during the drain.  Medians
# of REPS runs go to bench/results/drain.md.  Knobs: SIZE_MIB (default
# 3072), LOCAL (256M), THREADS (4), REPS (3), WINDOW (3), BUILD
# (build-bench).  Benchmarks, not tests: the exit status is non-zero only
# if a run failed or read back wrong data.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MIB=${SIZE_MIB:-3072}
LOCAL=${LOCAL:-256M}
THREADS=${THREADS:-4}
REPS=${REPS:-3}
WINDOW=${WINDOW:-3}
BUILD=${BUILD:-$top/build-bench}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac

log() { printf 'bench: %s\n' "$*" >&2; }
work=$(mktemp -d /tmp/dsm-drain-bench.XXXXXX)
client=""
export RUN_DIR=$work/run BUILD SERVERS=3 CAPACITY=2G CLUSTER=drainbench-$$
export REDIS_PORT=${REDIS_PORT:-7690} BASE_PORT=${BASE_PORT:-7691}
export DSM_REGISTRY=redis://127.0.0.1:$REDIS_PORT DSM_CLUSTER=$CLUSTER
export DSM_SECRET_FILE=$RUN_DIR/secret DSM_REGISTRY_PASSWORD_FILE=$RUN_DIR/redis.pass
unset DSM_SERVERS

cleanup() {
	set +e
	[ -n "$client" ] && kill -KILL "$client" 2>/dev/null
	"$top/deploy/cluster.sh" down >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building in $BUILD (Release)"
{ cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
  cmake --build "$BUILD" -j"$(nproc)" --target dsm-server dsmctl drain_load; } \
	>"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; exit 1; }
dsmctl=$BUILD/ctl/dsmctl

json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p"; }
# the line the client prints after the n-th SIGUSR1
window() { grep '^window' "$work/client.out" | sed -n "$1p"; }
wait_lines() { # N: until the client has printed N window lines
	for _ in $(seq 300); do
		[ "$(grep -c '^window' "$work/client.out")" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

one_rep() {
	local rep=$1 victim moved_line secs
	"$top/deploy/cluster.sh" up >"$work/up.log" 2>&1 || { cat "$work/up.log"; exit 1; }
	DSM_LOCAL_MEM=$LOCAL DSM_LOG=info "$BUILD/tests/drain_load" "$SIZE_MIB" "$THREADS" \
		>"$work/client.out" 2>"$work/client.err" &
	client=$!
	for _ in $(seq 600); do grep -qx ready "$work/client.out" && break; sleep 0.1; done
	grep -qx ready "$work/client.out" || { cat "$work/client.err"; exit 1; }
	sleep 1
	kill -USR1 "$client"; wait_lines 1   # discard the warm-up
	sleep "$WINDOW"
	kill -USR1 "$client"; wait_lines 2   # before: WINDOW seconds, no drain
	victim=$("$dsmctl" --json servers | json_get 'max(d, key=lambda s: s["used"])["id"]')
	"$dsmctl" --json drain "$victim" --timeout=600 >"$work/drain.json"
	kill -USR1 "$client"; wait_lines 3   # during: the drain
	kill -TERM "$client"
	wait "$client" || { log "client failed: $(tail -3 "$work/client.err")"; exit 1; }
	client=""
	secs=$(json_get 'd["seconds"]' <"$work/drain.json")
	moved_line=$(grep 'moved .* MiB off' "$work/client.err" | tail -1)
	printf '%s %s %s %s %s %s %s %s\n' "$rep" "$secs" \
		"$(sed -n 's/.*moved \([0-9]*\) MiB.*/\1/p' <<<"$moved_line")" \
		"$(sed -n 's/.* in \([0-9]*\) ms.*/\1/p' <<<"$moved_line")" \
		"$(window 2 | field access_p50_us)" "$(window 2 | field access_p99_us)" \
		"$(window 3 | field access_p50_us)" "$(window 3 | field access_p99_us)" \
		>>"$work/reps.txt"
	grep -q 'mismatches=0 ' "$work/client.out" || { log "wrong data: $(grep done "$work/client.out")"; exit 1; }
	"$top/deploy/cluster.sh" down >/dev/null 2>&1
}

: >"$work/reps.txt"
for rep in $(seq "$REPS"); do
	log "rep $rep of $REPS"
	one_rep "$rep"
done

mkdir -p "$top/bench/results"
python3 - "$work/reps.txt" "$SIZE_MIB" "$LOCAL" "$THREADS" >"$top/bench/results/drain.md" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
secs, mib, ms = med(1), med(2), med(3)
print(f"# Drain cost ({len(rows)} runs, medians)\n")
print(f"One client, {sys.argv[2]} MiB over 3 servers, local budget {sys.argv[3]}, "
      f"{sys.argv[4]} threads of checked random reads and writes; the server "
      "holding the most is drained.\n")
print("| | median |")
print("|---|---|")
print(f"| moved by the client | {mib:.0f} MiB |")
print(f"| client's move time | {ms/1000:.2f} s ({ms/1000/(mib/1024):.2f} s per GiB) |")
print(f"| `dsmctl drain`, start to \"drained\" | {secs:.2f} s ({secs/(mib/1024):.2f} s per GiB) |")
print(f"| access p50 before / during | {med(4):.0f} / {med(6):.0f} µs |")
print(f"| access p99 before / during | {med(5):.0f} / {med(7):.0f} µs ({med(7)/max(med(5),1):.2f}x) |")
print("\nraw: rep, dsmctl seconds, MiB moved, move ms, p50/p99 before, p50/p99 during")
for r in rows:
    print("    " + " ".join(f"{v:g}" for v in r))
PY
cat "$top/bench/results/drain.md"
