# cluster_env.sh - sourced by the tests that run a real local cluster
# (test_dsmctl.sh, test_cluster.sh, test_drain.sh): skips without redis,
# makes a private temporary directory, picks free loopback ports, and
# exports what deploy/cluster.sh and the clients read; and the helpers
# they share (json_get, server_field, shared_record, wait_for).  The
# sourcing script sets SERVERS, CAPACITY and CLUSTER first, and build and
# top.  On exit the cluster is taken down and anything it left is killed.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
	echo "SKIP: redis-server or redis-cli not installed (deploy/install-deps.sh installs them)"
	exit 77
fi

tmp=$(mktemp -d "/tmp/dsm-$CLUSTER.XXXXXX")
export RUN_DIR=$tmp/run BUILD=$build SERVERS CAPACITY CLUSTER
all_pids=()

# Whether pid is alive and runs prog (a zombie has no command line).
runs() {
	tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "$2"
}

cleanup() {
	"$top/deploy/cluster.sh" down >/dev/null 2>&1
	for pid in "${all_pids[@]}"; do # whatever down missed
		if runs "$pid" dsm-server || runs "$pid" redis-server; then
			kill -KILL "$pid" 2>/dev/null
		fi
	done
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP # so that cleanup runs then too

# Four free loopback ports in a row (redis, three servers), from a start
# that differs between concurrent runs.
ports_free() {
	python3 - "$@" <<'PY'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}
pick_ports() {
	local p=$((17000 + $$ % 1000 * 4))
	for _ in $(seq 200); do
		[ $p -gt 60000 ] && p=17000
		if ports_free $p $((p + 1)) $((p + 2)) $((p + 3)); then
			echo $p
			return 0
		fi
		p=$((p + 4))
	done
	return 1
}
p=$(pick_ports) || fatal "no four free loopback ports in a row"
export REDIS_PORT=$p BASE_PORT=$((p + 1))
registry=redis://127.0.0.1:$REDIS_PORT
export DSM_REGISTRY=$registry DSM_CLUSTER=$CLUSTER DSM_SECRET_FILE=$RUN_DIR/secret \
	DSM_REGISTRY_PASSWORD_FILE=$RUN_DIR/redis.pass

# redis-cli on the cluster's registry, with its password.
rcli() { REDISCLI_AUTH=$(cat "$RUN_DIR/redis.pass") redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# A field of dsmctl's JSON: jq-like, with python.
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# server_field ID FIELD: that field of server ID's record, from dsmctl
# (the sourcing script sets dsmctl).
server_field() {
	"$dsmctl" --json servers | json_get "[s['$2'] for s in d if s['id'] == $1][0]"
}

# shared_record NAME: "HOME HOLDERS" of the shared region NAME as
# `dsmctl --json regions` lists it, or "none" (the sourcing script sets
# dsmctl).
shared_record() {
	"$dsmctl" --json regions | python3 -c '
import json, sys
s = [r for r in json.load(sys.stdin) if r.get("shared") and r["name"] == sys.argv[1]]
print("%d %d" % (s[0]["home"], len(s[0]["holders"])) if s else "none")' "$1"
}

# wait_for SECONDS CMD...: until CMD succeeds; 1 if it never does.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.2
	done
}

# drain_empties ID WHAT: `dsmctl drain ID` must say it drained, and the
# server then hold no memory and no region (the sourcing script sets
# dsmctl and fail).  Its output, piped, is kept in drain_out: it must
# have no progress line (those are for terminals, redrawn with \r).
drain_empties() {
	local out rc

	out=$("$dsmctl" drain "$1" --timeout=60 2>&1)
	rc=$?
	echo "$out"
	drain_out=$out
	[ $rc = 0 ] && grep -q "server $1 drained in" <<<"$out" ||
		fail "$2: exit $rc: $out"
	[[ $out != *$'\r'* ]] ||
		fail "$2: a progress line (\\r) in dsmctl drain's output through a pipe"
	[ "$(server_field "$1" used)" = 0 ] || fail "drained server still uses memory"
	[ "$(server_field "$1" regions)" = 0 ] || fail "drained server still has regions"
}
