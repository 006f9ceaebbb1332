# tests/multinode/lib.sh - what the multi-node tests share; sourced, not
# run.  Sets top, vmctl and DSM_VM_DIR, and cds to the repo top (the
# guests take the host's working directory as theirs).
#   . "$(dirname "$0")/lib.sh" NAME      NAME prefixes the summary lines
# shellcheck shell=bash

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$top" || exit 1
vmctl=$top/deploy/vm/vmctl
export DSM_VM_DIR=${DSM_VM_DIR:-$top/build/vm}
case "$DSM_VM_DIR" in /*) ;; *) DSM_VM_DIR=$top/$DSM_VM_DIR ;; esac
test_name=${1:-multinode}
passed=0 failed=0
# shellcheck disable=SC2034 # for the test's closing figures
t_start=$SECONDS
# shellcheck source=deploy/progress.sh
. "$top/deploy/progress.sh"
# On a terminal each check starts with "multinode NAME: case I of N, ...
# elapsed, ETA ...".  N is how many checks the last whole run of the test
# made (finish records it): counting them in the script would miss those
# in loops and functions, and a plan written by hand goes stale.
cases_file=$DSM_VM_DIR/progress/$test_name.cases
cases_known=$(cat "$cases_file" 2>/dev/null) || true
[[ $cases_known =~ ^[1-9][0-9]*$ ]] || cases_known=""
case_no=0 case_t0=$SECONDS

skip() {
	echo "$test_name: SKIP: $*" >&2
	exit 77
}

# check NAME CMD...: runs CMD, counts it, says what ran.
check() {
	local name=$1

	shift
	case_no=$((case_no + 1))
	[ "$case_no" != 1 ] || case_t0=$SECONDS
	progress_step "multinode $test_name" case "$case_no" "$cases_known" "$case_t0"
	echo "--- $name"
	if "$@"; then
		passed=$((passed + 1))
		echo "ok: $name"
	else
		failed=$((failed + 1))
		echo "FAIL: $name"
		[ "$failed" != 1 ] || consoles
	fi
}

# consoles: the last kernel lines of every guest's console and the state
# of its network, after a run's first failure: a guest's network or
# memory trouble shows there, and the guests are gone when anyone reads
# the log.  A "diag:" line per guest sums it up for tests/run.sh's
# summary, often all of a CI log anyone sees.
consoles() {
	local i n c net

	n=$(cat "$DSM_VM_DIR/state/guests" 2>/dev/null) || return 0
	for ((i = 1; i <= n; i++)); do
		c=$DSM_VM_DIR/state/g$i.console
		[ -f "$c" ] || continue
		echo "--- the last lines of guest $i's console:"
		tail -n 12 "$c" | cut -c1-160 | sed 's/^/  /'
		# the agent answers over the share, not the network
		net=$(timeout 30 "$vmctl" exec "$i" -- sh -c '
			cd /sys/class/net/eth0/statistics &&
			echo "rx $(cat rx_packets)/$(cat rx_errors)/$(cat rx_dropped)" \
				"tx $(cat tx_packets)/$(cat tx_errors)/$(cat tx_dropped)" \
				"(packets/errors/dropped);" \
				$(ip neigh show dev eth0 | awk "{ print \$1, \$NF \";\" }")' 2>&1 |
			tr '\n' ' ')
		echo "diag: guest $i: $net| console: $(grep -v '^[[:space:]]*$' "$c" | tail -n 1 | cut -c1-80)" |
			cut -c1-240
	done
}

# run CMD...: prints the command (on stderr, out of the way of what
# callers capture), then runs it.
run() {
	{
		printf '+'
		printf ' %q' "$@"
		printf '\n'
	} >&2
	"$@"
}

# retry N CMD...: the peer may not be listening yet.
retry() {
	local n=$1 k

	shift
	for ((k = 1; k <= n; k++)); do
		run "$@" && return 0
		echo "(attempt $k of $n failed; retrying in 1 s)"
		sleep 1
	done
	return 1
}

# wait_exit I PID STATUS: the spawned PID in guest I ends, with STATUS.
wait_exit() {
	local i=$1 pid=$2 want=$3 k log

	for ((k = 0; k < 100; k++)); do
		log=$("$vmctl" log "$i")
		if grep -q "^=== guest $i pid $pid (exit" <<<"$log"; then
			grep "^=== guest $i pid $pid (exit" <<<"$log"
			grep -q "^=== guest $i pid $pid (exit $want)" <<<"$log"
			return
		fi
		sleep 0.2
	done
	echo "guest $i pid $pid still running after 20 s"
	return 1
}

# mark_log I: remember how long guest I's log is now; log_new I prints
# only what it said since (a test that runs something twice must not
# mistake the first run's lines for the second's).
declare -A log_mark
mark_log() {
	log_mark[$1]=$("$vmctl" log "$1" | wc -l)
}
log_new() {
	"$vmctl" log "$1" | tail -n +$(( ${log_mark[$1]:-0} + 1 ))
}

# wait_log I PATTERN [SECONDS]: waits up to SECONDS (30) for PATTERN in
# what guest I said since mark_log I (or ever, without a mark).
wait_log() {
	local i=$1 pattern=$2 k

	for ((k = 0; k < ${3:-30} * 5; k++)); do
		grep -qE -- "$pattern" <<<"$(log_new "$i")" && return 0
		sleep 0.2
	done
	echo "guest $i's log never showed /$pattern/:"
	"$vmctl" log "$i"
	return 1
}

# Exits 77 if qemu cannot run guests here at all.
require_qemu() {
	deploy/install-deps.sh --vm >&2 ||
		skip "cannot install qemu and the other guest packages (deploy/install-deps.sh --vm failed)"
	command -v qemu-system-x86_64 >/dev/null ||
		skip "no qemu-system-x86_64 after installing qemu-system-x86"
	grep -qx tcg <<<"$(qemu-system-x86_64 -accel help 2>/dev/null)" ||
		skip "this qemu has no TCG accelerator, so it cannot run guests without KVM"
}

# guests_up N: boots N guests (down again when the test exits); sets up_s.
guests_up() {
	local t0=$SECONDS

	trap '"$vmctl" down >/dev/null 2>&1' EXIT
	"$vmctl" down >/dev/null 2>&1   # left over from an interrupted run
	echo "--- up $1"
	if ! run "$vmctl" up "$1"; then
		echo "FAIL: up $1"
		echo "$test_name: 0 passed, 1 failed"
		exit 1
	fi
	# shellcheck disable=SC2034 # for the test's closing figures
	up_s=$((SECONDS - t0))
}

# finish: the summary line; exit 0 only if every check passed.
finish() {
	mkdir -p "${cases_file%/*}" && echo "$case_no" >"$cases_file"
	echo "$test_name: $passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}
