#!/usr/bin/env bash
# The one benchmark command: dsm against the kernel's own swap on this
# machine, each with the same local memory budget, plus the fault latency
# breakdown.  Prints a markdown report and keeps it in bench/results/,
# with its charts (PNG, bench/plots.py) beside it.
# Run as root (the swap baseline needs swapon and a memory cgroup):
#   bench/run.sh                      the full run (about 25 minutes; REPS=5 nearer 50)
#   bench/run.sh --short --out DIR    CI's short mode (about a minute): the
#                                     same report and charts from small
#                                     runs, into DIR; no strace pass, no
#                                     hugetlb pools; figures not to quote
#   bench/run.sh --out DIR            the full run, kept in DIR instead
# Also: the same client striped over 2 and 3 servers (the scaling table);
# the floors under a fault measured in the same run (dsm-bench-floor,
# dsm-bench-latency); the server's pool on hugetlb pages (reserved here for
# the run and given back) against 4 KiB pages; and the system calls per
# 1,000 pages each side makes, counted with strace in one extra run per
# workload (not timed).
# The servers run on the last CPU and everything else on the others
# (taskset), as two machines would; PIN=0 leaves them to the scheduler.
# Knobs: SIZE (working set, default 1G; the budget is SIZE/8), REPS (runs
# per case, medians reported; default 3), OPS (accesses per random run,
# default 300000), WARMUP (untimed zipf accesses before the timed ones,
# default 1000000), BUILD (build directory, default build-bench; built
# Release unless SKIP_BUILD=1, which takes its binaries as they are).
# --short changes the defaults to SIZE=128M REPS=1 OPS=20000
# WARMUP=20000 (a knob set in the environment still wins).
# Benchmarks, not tests: nothing fails on timing.  The exit status is
# non-zero only if a run crashed or read back wrong data.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3   # Debian's, which has Debian's matplotlib: not a pyenv shim

log() { printf 'bench: %s\n' "$*" >&2; }
usage() {
	log "$*"
	echo "usage: bench/run.sh [--short] [--out DIR]  (the header of bench/run.sh says more)" >&2
	exit 2
}

short=""
out_dir=$top/bench/results
while [ $# -gt 0 ]; do
	case $1 in
	--short) short=1; shift ;;
	--out) [ $# -ge 2 ] || usage "--out needs a directory"; out_dir=$2; shift 2 ;;
	--out=*) out_dir=${1#--out=}; shift ;;
	*) usage "unknown argument '$1'" ;;
	esac
done
if [ -n "$short" ]; then
	# its small figures must never overwrite the kept results
	[ "$(realpath -m "$out_dir")" != "$(realpath -m "$top/bench/results")" ] ||
		usage "--short writes to a directory of its own (--out DIR), never over bench/results"
	SIZE=${SIZE:-128M}
	REPS=${REPS:-1}
	OPS=${OPS:-20000}
	WARMUP=${WARMUP:-20000}
	lat_samples=5000
fi
lat_samples=${lat_samples:-20000}   # dsm-bench-latency's default
SIZE=${SIZE:-1G}
REPS=${REPS:-3}
OPS=${OPS:-300000}
WARMUP=${WARMUP:-1000000}
BUILD=${BUILD:-$top/build-bench}
case "$BUILD" in /*) ;; *) BUILD="$top/$BUILD" ;; esac
mkdir -p "$out_dir" || { log "cannot create $out_dir"; exit 1; }

# "1G", "256M", "1GiB" -> bytes (the forms the programs accept)
to_bytes() { local s=${1%B}; numfmt --from=iec "${s%i}"; }
size_bytes=$(to_bytes "$SIZE") || { log "SIZE=$SIZE: expected e.g. 1G"; exit 2; }
budget=$(( size_bytes / 8 ))
capacity=$(( size_bytes + (256 << 20) ))
(( capacity > 4 << 30 )) || capacity=$(( 4 << 30 ))

work=$(mktemp -d /tmp/dsm-bench.XXXXXX)
jsonl=$work/all.jsonl
: >"$jsonl"
# Named after this shell's pid so a concurrent or crashed run's leftovers
# are never mistaken for ours.
cgroup=/sys/fs/cgroup/memory/dsm-bench.$$
swapfile=/var/tmp/dsm-bench.$$.swap
swap_skip=""       # why the kernel swap baseline does not run, if it does not
huge_before=""     # vm.nr_hugepages before we reserved the servers' pools
server_pids=()
addrs=()           # the servers' host:port; the first is "the" server
failures=0

# Undo everything this script set up, whatever way it ends.
cleanup() {
	set +e
	for pid in "${server_pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ -d "$cgroup" ]; then
		# only processes this script put there: an interrupted run
		while read -r p; do
			kill -KILL "$p" 2>/dev/null
		done <"$cgroup/cgroup.procs"
		for _ in $(seq 50); do rmdir "$cgroup" 2>/dev/null && break; sleep 0.1; done
		[ -d "$cgroup" ] && log "WARNING: could not remove $cgroup"
	fi
	if [ -e "$swapfile" ]; then
		if swapon --show=NAME --noheadings | grep -qxF "$swapfile"; then
			swapoff "$swapfile" || log "WARNING: swapoff $swapfile failed"
		fi
		rm -f "$swapfile"
	fi
	[ -z "$huge_before" ] || echo "$huge_before" >/proc/sys/vm/nr_hugepages
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build() {
	local b
	if [ -n "${SKIP_BUILD:-}" ]; then
		log "using the binaries in $BUILD as they are (SKIP_BUILD)"
	else
		log "building in $BUILD (Release)"
		if ! { cmake -S "$top" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
		       cmake --build "$BUILD" -j"$(nproc)" --target dsm-server \
			     dsm-bench-workload dsm-bench-latency dsm-bench-floor
		   } >"$work/build.log" 2>&1; then
			tail -n 30 "$work/build.log" >&2
			log "build failed (libdsm and dsm-server are needed)"
			exit 1
		fi
	fi
	wl=$BUILD/bench/dsm-bench-workload
	lat=$BUILD/bench/dsm-bench-latency
	floor=$BUILD/bench/dsm-bench-floor
	for b in "$wl" "$lat" "$floor" "$BUILD/server/dsm-server"; do
		[ -x "$b" ] || { log "no $b: build it first (deploy/build.sh ${BUILD#"$top"/})"; exit 1; }
	done
}

# Huge pages for servers 1-3 (the main cases), for the huge install
# floor's window (SIZE/8), and for the budget of the client whose region
# is on huge pages (huge-seq, SIZE/8 again); server 4 keeps 4 KiB pages
# for the side-by-side table.  Without them (not root, or the kernel
# cannot find that many) every server runs on 4 KiB pages, the floor has
# no huge figure, huge-seq does not run, and the report says so.  Short
# mode runs every server on 4 KiB pages and reserves the window and the
# client's budget only.
huge_note=""
huge_reserved="" # 1: the floor's window and huge-seq's budget are there
reserve_huge() {
	local window=$(( (size_bytes / 8 + (2 << 20) - 1) >> 21 ))
	local need=$(( 3 * ((capacity + (2 << 20) - 1) >> 21) + 2 * window ))
	if [ ! -w /proc/sys/vm/nr_hugepages ]; then
		huge_note="cannot set vm.nr_hugepages (not root)"
		return
	elif [ -n "$short" ]; then
		huge_note="short mode (--short) leaves it out"
		need=$(( 2 * window ))
	fi
	huge_before=$(cat /proc/sys/vm/nr_hugepages)
	echo $(( huge_before + need )) >/proc/sys/vm/nr_hugepages
	if (( $(cat /proc/sys/vm/nr_hugepages) < huge_before + need )); then
		huge_note="the kernel found fewer than $need free huge pages"
		echo "$huge_before" >/proc/sys/vm/nr_hugepages
	else
		huge_reserved=1
	fi
}

# The servers stand for other machines, so they run on a CPU of their
# own (the last one), and the client and kernel swap's program on the
# others; the streaming floors are left to the scheduler.  Left to the scheduler on a 2-core machine, a
# server lands on the CPU of the thread whose fault it serves (the
# client's engine thread busy-polls the other one), and every fault pays
# two switches between address spaces there: a remote fault measured
# 72 µs that way against 40 µs with server and client apart, on a day
# when such switches were dear (2026-12-06), and from run to run the
# ratio to its floors moved between 1.07 and 1.44 with only the server
# placed.  PIN=0 leaves everything to the scheduler.  (taskset execs the
# program: $! stays the server's pid.)
on_server_cpu=()
on_client_cpus=()
placement="servers, client and swap left to the scheduler"
if [ "${PIN:-1}" != 0 ] && (( $(nproc) >= 2 )) && command -v taskset >/dev/null; then
	on_server_cpu=(taskset -c $(( $(nproc) - 1 )))
	on_client_cpus=(taskset -c 0-$(( $(nproc) - 2 )))
	placement="servers on CPU $(( $(nproc) - 1 )), the client and kernel swap's program on CPU 0-$(( $(nproc) - 2 )) (taskset): two machines' worth"
fi

# Server i (1-based) on an ephemeral loopback port, its pool on PAGES
# (on/off/auto) pages.
start_server() {
	local i=$1 pages=$2
	"${on_server_cpu[@]}" "$BUILD/server/dsm-server" --listen 127.0.0.1:0 --capacity "$capacity" \
		--hugepages "$pages" --port-file "$work/port$i" \
		2>"$work/server$i.log" &
	server_pids+=($!)
	for _ in $(seq 100); do [ -s "$work/port$i" ] && break; sleep 0.1; done
	if [ ! -s "$work/port$i" ]; then
		cat "$work/server$i.log" >&2
		log "dsm-server did not start"
		exit 1
	fi
	addrs+=("127.0.0.1:$(cat "$work/port$i")")
	log "dsm-server $i on ${addrs[-1]}: $(grep -o 'pool of .*' "$work/server$i.log")"
}

# The first n servers, as DSM_SERVERS lists them.
servers_list() { local IFS=,; echo "${addrs[*]:0:$1}"; }

# A swap file of 1.5 x SIZE, on.  fallocate'd files are refused as swap
# by some filesystems, so a written-out file is the fallback.
make_swapfile() {
	local need=$(( size_bytes * 3 / 2 )) how
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
	return 1
}

# The kernel baseline: the same program on plain memory, in a memory
# cgroup limited to the dsm budget, with a swap file to page to.
setup_swap() {
	local avail
	if [ "$(id -u)" != 0 ]; then
		swap_skip="not root (swapon and memory cgroups need it)"
	elif [ ! -w /sys/fs/cgroup/memory/cgroup.procs ]; then
		swap_skip="no cgroup v1 memory controller at /sys/fs/cgroup/memory"
	else
		avail=$(( $(df --output=avail -B1 /var/tmp | tail -n 1) ))
		if (( avail < size_bytes * 2 )); then
			swap_skip="not enough space in /var/tmp for a $(( size_bytes * 3 / 2 >> 20 )) MiB swap file"
		elif ! make_swapfile; then
			swap_skip="swapon refused $swapfile: $(tail -n 1 "$work/swap.log" 2>/dev/null)"
		elif ! mkdir "$cgroup" ||
		     ! echo "$budget" >"$cgroup/memory.limit_in_bytes"; then
			swap_skip="cannot create memory cgroup $cgroup"
		fi
	fi
	if [ -n "$swap_skip" ]; then
		log "SKIP kernel swap baseline: $swap_skip"
		return
	fi
	# a cgroup inherits swappiness; 0 would keep anonymous memory in RAM
	echo 60 >"$cgroup/memory.swappiness" 2>/dev/null || true
	log "kernel swap: $swapfile ($(( size_bytes * 3 / 2 >> 20 )) MiB), cgroup $cgroup limited to $(( budget >> 20 )) MiB"
}

# record NAME REP CMD...: one run; its JSON line goes to $jsonl wrapped as
# {"case":NAME,"rep":REP,"result":{...}}, a failure as "failed":status.
record() {
	local name=$1 rep=$2 out rc=0
	shift 2
	log "$name (run $rep/$REPS)"
	# Not in $(...): run directly, the program is this shell's own child,
	# and a Ctrl-C that kills it also reaches the INT trap here.
	"$@" >"$work/out" 2>>"$work/$name.err" || rc=$?
	out=$(grep '^{' "$work/out" | tail -n 1) || true
	if [ $rc != 0 ] || [ -z "$out" ]; then
		failures=$(( failures + 1 ))
		log "$name run $rep FAILED (exit $rc):"
		tail -n 5 "$work/$name.err" >&2
		printf '{"case":"%s","rep":%d,"failed":%d}\n' "$name" "$rep" "$rc" >>"$jsonl"
		return
	fi
	if [ -n "${peak_file:-}" ]; then
		out="${out%\}},\"cgroup_peak\":$(cat "$peak_file")}"
	fi
	printf '{"case":"%s","rep":%d,"result":%s}\n' "$name" "$rep" "$out" >>"$jsonl"
}

# The zipf cases compare victim policies, so they start from a warm
# cache: the first pass over the hot set is compulsory misses for every
# policy (about 70k distinct pages in 300k accesses over 1 GiB).
warmup_of() { [ "$1" = zipf ] && echo "$WARMUP" || echo 0; }

run_dsm() { # NAME REP EVICT PATTERN [NSERVERS | SERVER LIST]
	local list=${5:-1}
	[[ $list == *:* ]] || list=$(servers_list "$list")
	record "$1" "$2" "${on_client_cpus[@]}" env DSM_SERVERS="$list" \
		DSM_LOCAL_MEM="$budget" DSM_EVICT="$3" "$wl" --backend dsm \
		--size "$size_bytes" --pattern "$4" --ops "$OPS" \
		--warmup "$(warmup_of "$4")"
}

# The uniform case in the remote-fault probe's shape (64 MiB under a
# 4 MiB budget, dsm-bench-latency's): the report sets its access time
# beside the probe's fault, which separates what dsm adds to a miss from
# what the larger working set costs the machine.
run_probe_shape() { # REP
	record probe-uniform "$1" "${on_client_cpus[@]}" env \
		DSM_SERVERS="$(servers_list 1)" DSM_LOCAL_MEM=$((4 << 20)) \
		DSM_EVICT=2q "$wl" --backend dsm --size $((64 << 20)) \
		--pattern uniform --ops $((OPS / 5)) --warmup 0
}

# The sequential read with the client's region on 2 MiB pages
# (dsm_alloc_flags, DSM_ALLOC_HUGE), beside dsm-seq's 4 KiB pages.
run_huge_seq() { # REP
	[ -n "$huge_reserved" ] || return 0
	record huge-seq "$1" "${on_client_cpus[@]}" env \
		DSM_SERVERS="$(servers_list 1)" DSM_LOCAL_MEM="$budget" \
		DSM_EVICT=2q "$wl" --backend dsm-huge --size "$size_bytes" \
		--pattern seq --ops "$OPS" --warmup 0
}

run_swap() { # NAME REP PATTERN
	[ -z "$swap_skip" ] || return 0
	echo 0 >"$cgroup/memory.max_usage_in_bytes"
	# the process joins the cgroup before it allocates anything; $$ is
	# the inner shell's pid, which exec hands to the program
	# shellcheck disable=SC2016
	peak_file=$cgroup/memory.max_usage_in_bytes \
	record "$1" "$2" "${on_client_cpus[@]}" \
		sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
		"$cgroup" "$wl" --backend local --size "$size_bytes" \
		--pattern "$3" --ops "$OPS" --warmup "$(warmup_of "$3")"
}

# syscalls NAME PATTERN [OPS]: one untimed run under strace -c, the
# client's process and (attached) server 1's; their counts go to the
# report, which subtracts those of a run that only fills the buffer
# (NAME fill, one access) to count the timed phase alone.
syscalls() {
	local name=$1 pat=$2 ops=${3:-$OPS} spid=${server_pids[0]} tr
	command -v strace >/dev/null || return 0
	strace -c -f -p "$spid" -o "$work/sc-$name-server.txt" 2>/dev/null &
	tr=$!
	sleep 0.3
	peak_file="" record "sc-$name" 1 strace -c -f -o "$work/sc-$name-client.txt" \
		env DSM_SERVERS="${addrs[0]}" DSM_LOCAL_MEM="$budget" "$wl" \
		--backend dsm --size "$size_bytes" --pattern "$pat" --ops "$ops" \
		--warmup 0
	kill -INT "$tr" 2>/dev/null
	wait "$tr" 2>/dev/null || true # strace ends with SIGINT: 130
	$PY -B "$top/bench/strace_counts.py" "$name" \
		"$work/sc-$name-client.txt" "$work/sc-$name-server.txt" >>"$jsonl"
}

main() {
	build
	reserve_huge
	local main_pages=on
	[ -z "$huge_note" ] || main_pages=off
	for i in 1 2 3; do start_server "$i" "$main_pages"; done
	# server 4 is the 4 KiB side of the hugetlb comparison
	[ -n "$huge_note" ] || start_server 4 off
	setup_swap
	# Runs of all cases are interleaved rather than grouped, so a slow
	# minute on a shared machine hurts every case a little, not one a lot.
	for rep in $(seq "$REPS"); do
		# the floors are not placed: the TCP floor's two ends stand
		# for client and server, on two CPUs as dsm's are
		record floor "$rep" "$floor" --size "$size_bytes"
		record latency "$rep" "${on_client_cpus[@]}" "$lat" \
			--server "${addrs[0]}" \
			--samples "$lat_samples"
		run_probe_shape "$rep"
		for pat in seq uniform zipf rmw; do
			run_dsm "dsm-$pat" "$rep" 2q "$pat"
			[ $pat != seq ] || run_huge_seq "$rep"
			[ $pat != zipf ] || run_dsm dsm-fifo-zipf "$rep" fifo zipf
			run_swap "swap-$pat" "$rep" "$pat"
		done
		# the pool on 4 KiB pages (server 4), beside dsm-seq/-uniform
		for pat in seq uniform; do
			[ -n "$huge_note" ] ||
				run_dsm "small-$pat" "$rep" 2q "$pat" "${addrs[3]}"
		done
		# one client striped over 2 and 3 servers (1: dsm-seq, ...)
		for n in 2 3; do
			for pat in seq uniform; do
				run_dsm "srv$n-$pat" "$rep" 2q "$pat" "$n"
			done
		done
	done
	if [ -n "$short" ]; then
		log "short mode: no system call counts"
	elif command -v strace >/dev/null; then
		syscalls fill uniform 1
		for pat in seq uniform zipf rmw; do syscalls "$pat" "$pat"; done
	else
		log "SKIP system call counts: no strace"
	fi

	# The charts are drawn with the report, from the same figures, into
	# the scratch directory first: a report that fails leaves the kept
	# results as they were.
	$PY -B "$top/bench/report.py" "$jsonl" \
		--size "$SIZE" --budget "$(( budget >> 20 ))M" --reps "$REPS" \
		--ops "$OPS" --swap-skip "$swap_skip" --huge-note "$huge_note" \
		--placement "$placement" \
		--machine "$(nproc) cores, $(uname -sr), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM" \
		--plots "$work" --prefix latest- ${short:+--short} >"$work/latest.md"
	cp "$work/latest.md" "$out_dir/latest.md"
	cp "$jsonl" "$out_dir/latest.jsonl"
	# charts a run could not draw must not be left from an older one
	rm -f "$out_dir"/latest-*.png
	cp "$work"/latest-*.png "$out_dir/" 2>/dev/null || true
	cat "$work/latest.md"
	log "report in $out_dir/latest.md, raw runs in latest.jsonl, charts in latest-*.png"
	if (( failures )); then
		log "$failures run(s) FAILED: see the report"
		exit 1
	fi
}

main
