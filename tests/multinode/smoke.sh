#!/usr/bin/env bash
# tests/multinode/smoke.sh - the multi-node guest harness (deploy/vm/vmctl)
# end to end: two guests, soft-RoCE between them (ibv_devinfo, rping,
# ib_read_lat), the exec channel's exit status, quoting, output streams,
# environment and timeout, spawn/log/kill, and a down that leaves nothing
# running.
#   tests/multinode/smoke.sh
# Exit 0 if every check passed, 1 if any failed, 77 (with the reason on
# stderr) if qemu cannot run on this machine at all.
# shellcheck disable=SC2317 # the check functions run through check()
set -uo pipefail
# shellcheck source=tests/multinode/lib.sh
. "$(dirname "$0")/lib.sh" smoke

require_qemu
guests_up 2
ip1=$("$vmctl" ip 1)

# ---- RDMA ------------------------------------------------------------------
rxe_active() {
	local out

	out=$(run "$vmctl" exec "$1" -- ibv_devinfo -d rxe0) || return 1
	grep -E 'hca_id|state:' <<<"$out"
	grep -q 'hca_id:.*rxe0' <<<"$out" && grep -q PORT_ACTIVE <<<"$out"
}
check "guest 1 has rxe0, port active" rxe_active 1
check "guest 2 has rxe0, port active" rxe_active 2

rping_test() {
	local pid

	pid=$(run "$vmctl" spawn 1 -- rping -s -a "$ip1" -C 3 -v) || return 1
	retry 5 "$vmctl" exec 2 -- rping -c -a "$ip1" -C 3 -v || return 1
	wait_exit 1 "$pid" 0 || return 1
	[ "$(grep -c 'server ping data' <<<"$("$vmctl" log 1)")" = 3 ]
}
check "rping, 3 iterations, guest 2 -> guest 1" rping_test

read_lat_test() {
	local pid out

	pid=$(run "$vmctl" spawn 1 -- ib_read_lat -d rxe0 -n 20) || return 1
	out=$(retry 5 "$vmctl" exec 2 -- ib_read_lat -d rxe0 -n 20 "$ip1") || return 1
	grep -A1 '#bytes' <<<"$out"
	wait_exit 1 "$pid" 0 || return 1
	grep -qE '^ *2 +20 +[0-9.]+' <<<"$out"
}
check "ib_read_lat -n 20, guest 2 -> guest 1" read_lat_test

# ---- the exec channel -------------------------------------------------------
status_is() { # status_is WANT CMD...
	local want=$1 rc

	shift
	run "$@"
	rc=$?
	echo "exit status $rc, want $want"
	[ "$rc" = "$want" ]
}
check "exit status 7 comes back" status_is 7 "$vmctl" exec 1 -- sh -c 'exit 7'
check "exit status 0 comes back" status_is 0 "$vmctl" exec 2 -- true
check "a missing command exits 127" status_is 127 "$vmctl" exec 1 -- no-such-command-here
check "a signal exits 128+9" status_is 137 "$vmctl" exec 1 -- sh -c 'kill -9 $$'

quoting_test() {
	local a1="it's a \"quoted\"  arg with \$HOME, \\ and *" a2='' a3=$'two\nlines' out want

	out=$(run "$vmctl" exec 2 -- printf '<%s>\n' "$a1" "$a2" "$a3") || return 1
	want=$(printf '<%s>\n' "$a1" "$a2" "$a3")
	printf '%s\n' "$out"
	[ "$out" = "$want" ]
}
check "arguments with spaces, quotes, \$, * and newlines round-trip" quoting_test

streams_test() {
	local out err

	echo "+ $vmctl exec 1 -- sh -c 'echo to-stdout; echo to-stderr >&2'"
	out=$("$vmctl" exec 1 -- sh -c 'echo to-stdout; echo to-stderr >&2' 2>"$DSM_VM_DIR/share/smoke.err")
	err=$(<"$DSM_VM_DIR/share/smoke.err")
	echo "stdout: $out / stderr: $err"
	[ "$out" = to-stdout ] && [ "$err" = to-stderr ]
}
check "stdout and stderr arrive separately" streams_test

env_test() {
	local out

	# shellcheck disable=SC2016 # expanded in the guest
	out=$(SMOKE_FROM_HOST="x y" run "$vmctl" exec 1 --env SMOKE_FROM_HOST \
		--env SMOKE_SET='a=b c' -- sh -c 'echo "$SMOKE_FROM_HOST|$SMOKE_SET|$PWD"')
	echo "$out"
	[ "$out" = "x y|a=b c|$top" ]
}
check "--env passes variables; the working directory is the host's" env_test

check "userfaultfd and RDMA devices exist in the guest" \
	run "$vmctl" exec 2 -- sh -c \
	'test -c /dev/userfaultfd && test -c /dev/infiniband/uverbs0 && test -c /dev/infiniband/rdma_cm && ls /dev/infiniband'

# shellcheck disable=SC2016 # expanded in the guest
check "the host's root is read-only in the guest" \
	status_is 1 "$vmctl" exec 1 -- sh -c 'touch "$0"/smoke-must-fail 2>/dev/null' "$top"

timeout_test() {
	local t0=$SECONDS rc

	VMCTL_TIMEOUT=3 run "$vmctl" exec 1 -- sleep 120
	rc=$?
	echo "exit status $rc after $((SECONDS - t0)) s, want 124 within 10 s"
	[ "$rc" = 124 ] || return 1
	[ $((SECONDS - t0)) -le 10 ] || return 1
	# and the command is gone
	sleep 1
	! grep -q '^sleep 120' <<<"$("$vmctl" exec 1 -- ps -e -o args)"
}
check "VMCTL_TIMEOUT ends exec with 124 and kills the command" timeout_test

spawn_test() {
	local pid

	pid=$(run "$vmctl" spawn 2 -- sh -c 'echo spawned-hello; echo spawned-err >&2; sleep 300')
	echo "guest pid: $pid"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	sleep 1
	run "$vmctl" log 2
	grep -q "^=== guest 2 pid $pid (running)" <<<"$("$vmctl" log 2)" || return 1
	grep -q '^spawned-hello$' <<<"$("$vmctl" log 2)" || return 1
	grep -q '^spawned-err$' <<<"$("$vmctl" log 2)" || return 1
	run "$vmctl" exec 2 -- kill -9 -- "-$pid" || return 1
	wait_exit 2 "$pid" 137
}
check "spawn prints the guest pid, log shows its output, kill ends it" spawn_test

# ---- down ------------------------------------------------------------------
down_test() {
	local k

	run "$vmctl" down || return 1
	for ((k = 0; k < 50; k++)); do
		pgrep -f -- "$DSM_VM_DIR/state" >/dev/null || break
		sleep 0.1
	done
	if pgrep -af -- "$DSM_VM_DIR/state"; then
		echo "still running after down (above)"
		return 1
	fi
	# and none at all by name, where this run was the only user
	pgrep -a 'qemu-system|vde_switch' || true
}
check "down leaves no qemu or vde_switch of ours running" down_test
trap - EXIT

echo "smoke: vmctl up 2 took ${up_s} s; the whole smoke test $((SECONDS - t_start)) s"
finish
