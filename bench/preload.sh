#!/usr/bin/env bash
# What the LD_PRELOAD shim costs and buys, in one run:
#  1. overhead on a program whose allocations all stay below the threshold
#     (dsm-bench-alloc-churn, plain and under libdsm-preload.so, interleaved);
#  2. slowdown of real, unmodified programs (sort, python3, redis-server,
#     xz, the managed runtimes node, java and go, and small_threads, a
#     threaded C program of small blocks, under --threshold 16)
#     with 25%, 50% and 100% of their working set in local memory, under
#     dsm-run and under the kernel's swap with the same memory limit (a
#     cgroup v1 memory limit and a swap file).
# Prints a markdown report and keeps it in bench/results/preload.md, with
# its chart (preload-slowdown.png) and its raw runs (preload-runs.tsv,
# preload-churn.tsv: bench/preload_report.py redraws both from them).
# Run as root (swapon, memory cgroups):   bench/preload.sh
# Knobs: REPS (runs per case, medians; default 3), CHURN_REPS (default 5),
# CHURN_OPS (default 50000000), FRACTIONS (default "25 50 100"),
# PROGRAMS (default "sort python redis xz node java go small"; " " for
# the overhead alone), SORT_LINES (2000000),
# PY_BLOBS (160), REDIS_KEYS (1000), XZ_MB (1), TIMEOUT (seconds per
# run, 600),
# BUILD (build directory, default build-bench), OUT (where the report,
# chart and raw runs go, default bench/results: a run of some PROGRAMS
# only is better kept elsewhere).
# The exit status is non-zero if a run failed, timed out or produced
# output different from the plain run's, or if far memory was not used
# at the smallest fraction: those are failures, not figures.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
CHURN_REPS=${CHURN_REPS:-5}
CHURN_OPS=${CHURN_OPS:-50000000}
FRACTIONS=${FRACTIONS:-25 50 100}
PROGRAMS=${PROGRAMS:-sort python redis xz node java go small}
SORT_LINES=${SORT_LINES:-2000000}
PY_BLOBS=${PY_BLOBS:-160}
REDIS_KEYS=${REDIS_KEYS:-1000}
# xz -6's match finder writes its 16 MiB hash table and its tree at
# random whatever the input, so below its working set every input byte
# costs faults: a larger input multiplies the run time, not the shape of
# the working set.  Under dsm-run at 25%, 3 MB took 257 s (5.3M pages
# fetched; kernel swap was OOM-killed), and 12 MB at 50% 457 s; 1 MB takes
# about a minute at 25%.
XZ_MB=${XZ_MB:-1}
TIMEOUT=${TIMEOUT:-600}
BUILD=${BUILD:-$top/build-bench}
OUT=${OUT:-$top/bench/results}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac
PY=/usr/bin/python3   # Debian's, as the tests use: not a pyenv shim

log() { printf 'preload-bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: the swap baseline needs swapon and a memory cgroup"
[ -w /sys/fs/cgroup/memory/cgroup.procs ] ||
	die "no cgroup v1 memory controller at /sys/fs/cgroup/memory"
# what each program needs installed; python3 the script needs itself
needs() {
	case $1 in
	python) ;;
	redis) echo redis-server redis-cli ;;
	java) echo java javac ;;
	small) ;;
	*) echo "$1" ;;
	esac
}
for p in $PY $(for prog in $PROGRAMS; do needs "$prog"; done); do
	command -v "$p" >/dev/null || die "$p not installed (deploy/install-deps.sh)"
done

start_time=$EPOCHREALTIME
work=$(mktemp -d /tmp/dsm-preload-bench.XXXXXX)
runs=$work/runs.tsv      # prog frac mode rep seconds peak fetched evicted
churn=$work/churn.tsv    # threads mode rep seconds ns_per_op
: >"$runs"
: >"$churn"
# Named after this shell's pid, so a concurrent or crashed run's leftovers
# are never mistaken for ours.  Every program this script runs goes into
# one of the two cgroups (the unlimited one for plain and dsm runs), so
# cleanup can find and kill whatever an interrupted run left.
cg_free=/sys/fs/cgroup/memory/dsm-preload-bench.$$.free
cg_lim=/sys/fs/cgroup/memory/dsm-preload-bench.$$.lim
swapfile=/var/tmp/dsm-preload-bench.$$.swap
server_pid=""
failures=0

cleanup() {
	set +e
	local cg p
	for cg in "$cg_free" "$cg_lim"; do
		[ -d "$cg" ] || continue
		while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$cg/cgroup.procs"
		for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
		[ -d "$cg" ] && log "WARNING: could not remove $cg"
	done
	if [ -n "$server_pid" ]; then
		kill -TERM "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	if [ -e "$swapfile" ]; then
		if swapon --show=NAME --noheadings | grep -qxF "$swapfile"; then
			swapoff "$swapfile" || log "WARNING: swapoff $swapfile failed"
		fi
		rm -f "$swapfile"
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

build() {
	log "building in $BUILD (Release)"
	if ! { nice cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
	       nice cmake --build "$BUILD" -j"$(nproc)" --target dsm-server \
		     dsm-preload dsm-run dsm-bench-alloc-churn small_threads; } \
		>"$work/build.log" 2>&1; then
		tail -n 30 "$work/build.log" >&2
		die "build failed"
	fi
	churn_bin=$BUILD/bench/dsm-bench-alloc-churn
	shim=$BUILD/preload/libdsm-preload.so
	dsmrun=$BUILD/preload/dsm-run
	small_bin=$BUILD/tests/small_threads
}

# The server stands for another machine: it runs on the last CPU, as
# bench/run.sh's do (the comment above its start_server says why); PIN=0
# leaves it to the scheduler.  taskset execs the server, so $! stays its
# pid.  The programs keep both CPUs: they are multi-threaded (sort, xz,
# Go), and swap's runs get the same.
start_server() {
	local pin=()
	if [ "${PIN:-1}" != 0 ] && (( $(nproc) >= 2 )) && command -v taskset >/dev/null; then
		pin=(taskset -c $(( $(nproc) - 1 )))
	fi
	"${pin[@]}" "$BUILD/server/dsm-server" --listen 127.0.0.1:0 --capacity 8G \
		--port-file "$work/port" 2>"$work/server.log" &
	server_pid=$!
	for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
	[ -s "$work/port" ] || die "dsm-server did not start: $(cat "$work/server.log")"
	addr=127.0.0.1:$(cat "$work/port")
	log "dsm-server on $addr"
}

setup_cgroups() {
	mkdir "$cg_free" "$cg_lim" || die "cannot create memory cgroups"
	# a cgroup inherits swappiness; 0 would keep anonymous memory in RAM
	echo 60 >"$cg_lim/memory.swappiness" 2>/dev/null || true
}

# A swap file of twice the largest working set, on.  fallocate'd files are
# refused as swap by some filesystems, so a written-out file is the fallback.
make_swapfile() {
	local need=$1 how
	for how in fallocate dd; do
		rm -f "$swapfile"
		if [ $how = fallocate ]; then
			fallocate -l "$need" "$swapfile" || continue
		else
			dd if=/dev/zero of="$swapfile" bs=1M count=$(( need >> 20 )) \
				status=none || continue
		fi
		chmod 600 "$swapfile"
		mkswap "$swapfile" >/dev/null && swapon "$swapfile" && return 0
	done 2>>"$work/swap.log"
	rm -f "$swapfile"
	die "swapon refused $swapfile: $(tail -n 1 "$work/swap.log" 2>/dev/null)"
}

# in_cg CGROUP CMD...: CMD joins CGROUP before it allocates anything ($$ is
# the inner shell's pid, which exec hands to the program).
in_cg() {
	local cg=$1
	shift
	# shellcheck disable=SC2016
	timeout -s KILL "$TIMEOUT" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# ---- 1. overhead below the threshold ------------------------------------

churn_once() { # THREADS MODE REP
	local t=$1 mode=$2 rep=$3 out rc=0
	local args=(--ops "$CHURN_OPS" --threads "$t")
	rm -f "$work/churn.stats"
	if [ "$mode" = plain ]; then
		out=$("$churn_bin" "${args[@]}" 2>"$work/churn.err") || rc=$?
	else
		# DSM_REQUIRE: the shim must really be connected, not in its
		# no-server pass-through; the stats file is written only then.
		out=$(env DSM_SERVERS="$addr" DSM_REQUIRE=1 \
			DSM_STATS_FILE="$work/churn.stats" LD_PRELOAD="$shim" \
			"$churn_bin" "${args[@]}" 2>"$work/churn.err") || rc=$?
		if [ $rc = 0 ] && ! grep -q '^arenas=[1-9]' "$work/churn.stats" 2>/dev/null; then
			log "alloc churn under the shim: the shim was not on"
			rc=99
		fi
	fi
	if [ $rc != 0 ]; then
		failures=$(( failures + 1 ))
		log "alloc churn $t thread(s) $mode run $rep FAILED (exit $rc): $(tail -n 3 "$work/churn.err")"
		return
	fi
	local sum secs ns
	sum=$(sed 's/.*"checksum":\([0-9]*\).*/\1/' <<<"$out")
	secs=$(sed 's/.*"seconds":\([0-9.]*\).*/\1/' <<<"$out")
	ns=$(sed 's/.*"ns_per_op":\([0-9.]*\).*/\1/' <<<"$out")
	if [ -n "${churn_sum[$t]:-}" ] && [ "${churn_sum[$t]}" != "$sum" ]; then
		failures=$(( failures + 1 ))
		log "alloc churn: checksum $sum under $mode, ${churn_sum[$t]} before"
		return
	fi
	churn_sum[$t]=$sum
	printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$mode" "$rep" "$secs" "$ns" >>"$churn"
}

run_churn() {
	declare -gA churn_sum=()
	local t rep
	for t in 1 2; do
		# untimed warm-up of each, then plain and shim alternate, each
		# going first half the time
		churn_once "$t" plain 0
		churn_once "$t" shim 0
		for rep in $(seq "$CHURN_REPS"); do
			log "alloc churn, $t thread(s) (run $rep/$CHURN_REPS)"
			if (( rep % 2 )); then
				churn_once "$t" plain "$rep"; churn_once "$t" shim "$rep"
			else
				churn_once "$t" shim "$rep"; churn_once "$t" plain "$rep"
			fi
		done
	done
	# the warm-ups are not figures
	awk -F'\t' '$3 != 0' "$churn" >"$churn.tmp" && mv "$churn.tmp" "$churn"
}

# ---- 2. real programs ----------------------------------------------------

make_inputs() {
	log "generating inputs"
	# sort: SORT_LINES lines of random hex keys and padding (~75 MB)
	$PY -c '
import random, sys
r = random.Random(7)
w = sys.stdout.write
for i in range('"$SORT_LINES"'):
    w("%016x %x %s\n" % (r.getrandbits(64), i, "z" * (i % 29)))
' >"$work/sort.in"
	# xz: XZ_MB MB of text from a 20,000-word vocabulary, so the match
	# finder has real work (compresses about 3:1)
	$PY -c '
import random, sys
r = random.Random(11)
words = ["".join(r.choice("etaoinshrdlucmfwypvbgkqjxz")
                 for _ in range(r.randint(2, 11))) for _ in range(20000)]
out, n = [], 0
while n < '"$XZ_MB"' * 1000000:
    line = " ".join(r.choice(words) for _ in range(r.randint(4, 16))) + "\n"
    out.append(line)
    n += len(line)
sys.stdout.write("".join(out)[:'"$XZ_MB"' * 1000000])
' >"$work/xz.in"
	# read once outside the cgroups: the page cache holding the inputs is
	# then charged to the root cgroup, not to a limited run
	cat "$work/sort.in" "$work/xz.in" >/dev/null
	# python3: 1 MiB bytearrays (far: >= 128 KiB), a list of 2M floats
	# sorted, a dict of 1M small strings (pymalloc's 1 MiB arenas are
	# anonymous mmaps, so these small objects are far memory too), all
	# checksummed; the blobs hashed again in reverse order.
	cat >"$work/work.py" <<PY
import hashlib, random
r = random.Random(3)
h = hashlib.sha256()
blobs = [bytearray(r.randbytes(1 << 20)) for _ in range($PY_BLOBS)]
for b in blobs:
    b[::4096] = bytes(len(b[::4096]))
    h.update(b)
nums = [r.random() for _ in range(2_000_000)]
nums.sort()
h.update(repr(sum(nums)).encode())
d = {i: str(i * 7919) for i in range(1_000_000)}
h.update(repr(sum(len(v) for v in d.values())).encode())
for b in reversed(blobs):
    h.update(hashlib.sha256(b).digest())
print(h.hexdigest(), len(blobs), len(nums), len(d))
PY
	# node and java: tests/programs/heap.js (V8's heap) and Fill.java
	[[ " $PROGRAMS " != *" java "* ]] ||
		javac -d "$work" "$top/tests/programs/Fill.java"
	# go: tests/programs/gochurn, linked with cgo so that it loads the
	# shim (a 400 MB live heap, and heaps given back round after round)
	if [[ " $PROGRAMS " == *" go "* ]]; then
		cp "$top/tests/programs/gochurn/main.go" \
			"$top/tests/programs/gochurn/go.mod" "$work/"
		(cd "$work" && GOCACHE=$work/gocache GOFLAGS=-mod=mod \
			CGO_ENABLED=1 go build -o gochurn .)
	fi
	# redis client: SET REDIS_KEYS values of 300 KB (each one a far
	# block under the shim), then GET them all twice in a random order,
	# hashing what comes back; times itself (load + reads).
	cat >"$work/rclient.py" <<'PY'
import hashlib, random, socket, sys, time
port, nkeys, vsize = int(sys.argv[1]), int(sys.argv[2]), 300000
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile("rb")
def cmd(*args):
    s.sendall(b"*%d\r\n" % len(args) +
              b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    line = f.readline()
    if line[:1] == b"$" and int(line[1:]) >= 0:
        return f.read(int(line[1:]) + 2)[:-2]
    if line[:1] in (b"+", b":"):
        return line[1:-2]
    raise SystemExit("redis: %r" % line)
t0 = time.monotonic()
for i in range(nkeys):
    cmd(b"SET", b"key:%d" % i, (b"%07d" % i) * (vsize // 7))
h = hashlib.sha256()
order = list(range(nkeys))
random.Random(5).shuffle(order)
for _ in range(2):
    for i in order:
        h.update(cmd(b"GET", b"key:%d" % i))
h.update(cmd(b"DBSIZE"))
t1 = time.monotonic()
print(h.hexdigest(), nkeys)
print("%.4f" % (t1 - t0), file=sys.stderr)
PY
}

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run_prog PROG CGROUP OUT [dsm-run args...]: one run of PROG in CGROUP,
# its digest in OUT; prints its wall-clock seconds.  Status non-zero on
# failure.
run_prog() {
	local prog=$1 cg=$2 out=$3 t0 t1 rc=0 port rp
	shift 3
	local pre=("$@")
	case $prog in
	sort)
		t0=$EPOCHREALTIME
		{ in_cg "$cg" env LC_ALL=C "${pre[@]}" sort -S 2G "$work/sort.in" ||
		  echo "sort failed, exit $?" >>"$work/err"; } | sha256sum >"$out"
		t1=$EPOCHREALTIME
		! [ -s "$work/err" ] || return 1
		;;
	xz)
		t0=$EPOCHREALTIME
		{ in_cg "$cg" "${pre[@]}" xz -6 -T1 -c "$work/xz.in" ||
		  echo "xz failed, exit $?" >>"$work/err"; } | sha256sum >"$out"
		t1=$EPOCHREALTIME
		! [ -s "$work/err" ] || return 1
		;;
	python)
		t0=$EPOCHREALTIME
		in_cg "$cg" "${pre[@]}" $PY "$work/work.py" >"$out" 2>>"$work/err" || return 1
		t1=$EPOCHREALTIME
		;;
	node)
		t0=$EPOCHREALTIME
		# node sizes its heap limit from the cgroup's memory limit,
		# which would make the swap runs fail for want of heap rather
		# than page: the same limit for every mode
		in_cg "$cg" "${pre[@]}" node --max-old-space-size=2048 \
			"$top/tests/programs/heap.js" >"$out" 2>>"$work/err" || return 1
		t1=$EPOCHREALTIME
		;;
	java)
		t0=$EPOCHREALTIME
		in_cg "$cg" "${pre[@]}" java -Xmx1g -XX:+UseG1GC -cp "$work" Fill \
			>"$out" 2>>"$work/err" || return 1
		t1=$EPOCHREALTIME
		;;
	go)
		t0=$EPOCHREALTIME
		in_cg "$cg" "${pre[@]}" "$work/gochurn" >"$out" 2>>"$work/err" || return 1
		t1=$EPOCHREALTIME
		;;
	small)
		t0=$EPOCHREALTIME
		in_cg "$cg" "${pre[@]}" "$small_bin" >"$out" 2>>"$work/err" || return 1
		t1=$EPOCHREALTIME
		;;
	redis)
		port=$(free_port)
		in_cg "$cg" "${pre[@]}" redis-server --port "$port" \
			--bind 127.0.0.1 --save '' --appendonly no \
			--logfile "$work/redis.log" 2>>"$work/err" &
		rp=$!
		for _ in $(seq 100); do
			redis-cli -p "$port" ping >/dev/null 2>&1 && break
			sleep 0.1
		done
		$PY "$work/rclient.py" "$port" "$REDIS_KEYS" >"$out" 2>"$work/rsecs" || rc=$?
		redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
		wait "$rp" || rc=$(( rc ? rc : 1 ))
		[ $rc = 0 ] || { cat "$work/rsecs" >>"$work/err"; return 1; }
		awk '{ print $1 }' "$work/rsecs"
		return 0
		;;
	esac
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", b - a }'
}

# How many times the kernel's OOM killer struck in CGROUP so far.
oom_kills() { awk '$1 == "oom_kill" { print $2 }' "$1/memory.oom_control"; }

# case_run PROG FRAC MODE REP: one timed, checked run, appended to $runs.
case_run() {
	local prog=$1 frac=$2 mode=$3 rep=$4 cg=$cg_free secs peak
	local fetched=- evicted=- pre=() local_mem ooms
	log "$prog $mode${frac:+ at $frac%} (run $rep/$REPS)"
	: >"$work/err"
	if [ "$mode" = dsm ]; then
		local_mem=$(( W[$prog] * frac / 100 ))
		pre=("$dsmrun" --servers "$addr" --local-mem "$local_mem"
		     --require --stats-file "$work/stats")
		# its heap is small blocks: far only from the shim's slabs
		[ "$prog" != small ] || pre+=(--threshold 16)
		pre+=(--)
	elif [ "$mode" = swap ]; then
		cg=$cg_lim
		echo $(( W[$prog] * frac / 100 )) >"$cg/memory.limit_in_bytes"
	fi
	echo 0 >"$cg/memory.max_usage_in_bytes"
	ooms=$(oom_kills "$cg")
	if ! secs=$(run_prog "$prog" "$cg" "$work/out" "${pre[@]}"); then
		# The kernel killing a program in its memory limit is what
		# swap did with that limit: a result, not a broken run.
		if [ "$mode" = swap ] && [ "$(oom_kills "$cg")" != "$ooms" ]; then
			log "$prog swap $frac% run $rep: OOM-killed in the memory cgroup"
			printf '%s\t%s\t%s\t%s\tOOM\t-\t-\t-\n' "$prog" "$frac" "$mode" "$rep" >>"$runs"
			return
		fi
		failures=$(( failures + 1 ))
		log "$prog $mode $frac% run $rep FAILED: $(tail -n 5 "$work/err")"
		printf '%s\t%s\t%s\t%s\tFAILED\t-\t-\t-\n' "$prog" "$frac" "$mode" "$rep" >>"$runs"
		return
	fi
	peak=$(cat "$cg/memory.max_usage_in_bytes")
	if [ "$mode" = plain ] && [ -z "${digest[$prog]:-}" ]; then
		digest[$prog]=$(cat "$work/out")
	elif [ "$(cat "$work/out")" != "${digest[$prog]}" ]; then
		failures=$(( failures + 1 ))
		log "$prog $mode $frac% run $rep: OUTPUT DIFFERS from the plain run's"
		printf '%s\t%s\t%s\t%s\tWRONG\t-\t-\t-\n' "$prog" "$frac" "$mode" "$rep" >>"$runs"
		return
	fi
	if [ "$mode" = dsm ]; then
		fetched=$(awk -F= '$1 == "pages_fetched" { s += $2 } END { print s + 0 }' "$work/stats")
		evicted=$(awk -F= '$1 == "pages_evicted" { s += $2 } END { print s + 0 }' "$work/stats")
		if [ "$frac" = "$min_frac" ] && { [ "$fetched" = 0 ] || [ "$evicted" = 0 ]; }; then
			failures=$(( failures + 1 ))
			log "$prog dsm $frac%: far memory not used (fetched $fetched, evicted $evicted)"
		fi
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$prog" "$frac" "$mode" "$rep" \
		"$secs" "$peak" "$fetched" "$evicted" >>"$runs"
}

main() {
	local prog frac rep maxw=0
	build
	start_server
	setup_cgroups
	(( CHURN_REPS > 0 )) && run_churn
	[ -z "${PROGRAMS// }" ] || make_inputs
	declare -gA W=() digest=()
	min_frac=$(tr ' ' '\n' <<<"$FRACTIONS" | sort -n | head -n 1)
	# The working set: the memory cgroup's peak (RSS + page cache it
	# caused) over an untimed plain run, which is also the reference
	# output and a warm-up.  It is exactly what the swap limit compares
	# against.
	for prog in $PROGRAMS; do
		case_run "$prog" "" plain 0
		W[$prog]=$(awk -F'\t' -v p="$prog" '$1 == p && $4 == 0 { print $6 }' "$runs")
		[ -n "${W[$prog]}" ] && [ "${W[$prog]}" != - ] || die "$prog: the plain run failed"
		log "$prog: working set $(( W[$prog] >> 20 )) MiB"
		(( W[$prog] > maxw )) && maxw=${W[$prog]}
	done
	if (( maxw )); then # PROGRAMS=" ": the overhead alone
		make_swapfile $(( maxw * 2 ))
		log "kernel swap: $swapfile ($(( maxw * 2 >> 20 )) MiB)"
	fi
	# Runs of all cases are interleaved, so a slow minute on a shared
	# machine hurts every case a little, not one a lot.
	for rep in $(seq "$REPS"); do
		for prog in $PROGRAMS; do
			case_run "$prog" "" plain "$rep"
			for frac in $FRACTIONS; do
				case_run "$prog" "$frac" dsm "$rep"
				case_run "$prog" "$frac" swap "$rep"
			done
		done
	done
	local took
	took=$(awk -v a="$start_time" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", b - a }')
	mkdir -p "$OUT"
	$PY -B "$top/bench/preload_report.py" "$churn" "$runs" \
		--reps "$REPS" --churn-reps "$CHURN_REPS" --churn-ops "$CHURN_OPS" \
		--took "$took" --xz-mb "$XZ_MB" \
		--machine "$(nproc) cores, $(uname -sr), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM" \
		--plots "$work" >"$work/preload.md"
	cp "$work/preload.md" "$OUT/preload.md"
	cp "$runs" "$OUT/preload-runs.tsv"
	cp "$churn" "$OUT/preload-churn.tsv"
	rm -f "$OUT/preload-slowdown.png"
	[ ! -e "$work/preload-slowdown.png" ] ||
		cp "$work/preload-slowdown.png" "$OUT/"
	cat "$work/preload.md"
	log "report in $OUT/preload.md (took $took s), its chart in preload-slowdown.png"
	if (( failures )); then
		log "$failures run(s) FAILED: see above"
		exit 1
	fi
}

main
