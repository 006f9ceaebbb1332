#!/usr/bin/env bash
# tests/multinode/tcp_basic.sh - the host-built dsm binaries work in the
# guests: a dsm-server in guest 1 and a client in guest 2, over the TCP
# transport across the guests' network.
#
# The client is dsm-example-kvstore (DSM_TRANSPORT=tcp: the guests have
# RDMA, which it would otherwise choose): a 64 MiB hash table in far memory
# with 16 MiB resident, so three quarters of it is evicted and fetched
# back; it compares every record it reads against the value its key and
# version must hold and exits 1 on any mismatch.  (tests/test_integrity
# cannot be used: it starts its own server on loopback, or needs a Redis
# registry.)  Also: a client without the cluster secret is refused, and
# userfaultfd works in the guest kernel (build/tests/test_uffd).
#   tests/multinode/tcp_basic.sh
# Exit 0 if every check passed, 1 if any failed, 77 (with the reason on
# stderr) if qemu cannot run on this machine at all.
# shellcheck disable=SC2317 # the check functions run through check()
set -uo pipefail
# shellcheck source=tests/multinode/lib.sh
. "$(dirname "$0")/lib.sh" tcp_basic

port=7400
table=64M      # --mem: the table
local_mem=16M  # DSM_LOCAL_MEM: a quarter of it
lookups=2000   # each costs ~2 ms under TCG: most are far faults

require_qemu
echo "--- build"
deploy/install-deps.sh >&2 || { echo "FAIL: deploy/install-deps.sh"; exit 1; }
run deploy/build.sh build >/dev/null || { echo "FAIL: deploy/build.sh build"; exit 1; }
for b in build/server/dsm-server build/examples/dsm-example-kvstore build/tests/test_uffd; do
	[ -x "$b" ] || { echo "FAIL: $b was not built"; exit 1; }
done

guests_up 2
ip1=$("$vmctl" ip 1)

# The secret lives on the share: the guests see it at the same path.  A
# server that listens on anything but loopback refuses to start without.
secret=$DSM_VM_DIR/share/tcp_basic.secret
rm -f "$secret"
(umask 077 && head -c 32 /dev/urandom | base64 >"$secret")

check "userfaultfd works in the guest kernel (test_uffd)" \
	run "$vmctl" exec 2 -- build/tests/test_uffd

server_up() {
	server_pid=$(run "$vmctl" spawn 1 -- build/server/dsm-server \
		--listen "$ip1:$port" --capacity 256M --secret-file "$secret") || return 1
	echo "server: guest 1 pid $server_pid"
	wait_log 1 "info: listening on $ip1:$port"
}
check "dsm-server listens on guest 1's address" server_up

kvstore_test() {
	local out rc evicted fetched

	out=$(run "$vmctl" exec 2 --env DSM_SERVERS="$ip1:$port" --env DSM_TRANSPORT=tcp \
		--env DSM_LOCAL_MEM="$local_mem" --env DSM_SECRET_FILE="$secret" -- \
		build/examples/dsm-example-kvstore --mem "$table" --lookups "$lookups")
	rc=$?
	printf '%s\n' "$out" | grep -vE '^kvstore: +(build|lookups) +[0-9]+%'
	echo "exit status $rc"
	[ "$rc" = 0 ] || return 1
	grep -q 'all OK, 0 failed' <<<"$out" || return 1
	grep -qx 'kvstore: PASS' <<<"$out" || return 1
	# the data really left the guest and came back
	evicted=$(sed -n 's/.*evicted \([0-9]*\).*/\1/p' <<<"$out")
	fetched=$(sed -n 's/.*fetched \([0-9]*\).*/\1/p' <<<"$out")
	echo "pages evicted ${evicted:-?}, fetched ${fetched:-?}"
	[ "${evicted:-0}" -gt 8192 ] && [ "${fetched:-0}" -gt 8192 ]
}
check "kvstore in guest 2 on guest 1's server: every record right after eviction" kvstore_test

no_secret_test() {
	local rc

	run "$vmctl" exec 2 --env DSM_SERVERS="$ip1:$port" --env DSM_LOCAL_MEM="$local_mem" -- \
		build/examples/dsm-example-kvstore --mem 1M --lookups 1
	rc=$?
	echo "exit status $rc, want 2 (could not start)"
	[ "$rc" = 2 ]
}
check "a client without the secret is refused" no_secret_test

server_down() {
	run "$vmctl" exec 1 -- kill -TERM "$server_pid" || return 1
	wait_exit 1 "$server_pid" 0
}
check "dsm-server ends cleanly on SIGTERM" server_down

"$vmctl" down
trap - EXIT
rm -f "$secret"
echo "tcp_basic: vmctl up 2 took ${up_s} s; the whole test $((SECONDS - t_start)) s"
finish
