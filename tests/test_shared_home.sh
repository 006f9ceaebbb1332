#!/usr/bin/env bash
# One name, one home, even for processes that see different servers
# (issue 15): the registry records the first home of a shared region, and
# dsm_map_shared follows it.  A local cluster of redis and server S1;
# processes started then see S1 alone; S2 is started after them, and
# processes started later see both.  Names are picked so that rendezvous
# hashing puts them on S2 (the formula of client/shared.c).
#   1. B (sees both) creates NAME on S2.  A (sees S1 only) maps NAME: it
#      finds nothing on S1, creates it there, and finds the record naming
#      S2, which it does not reach: dsm_map_shared fails saying so, S1 is
#      left without a region, and the record still names S2, held by B.
#   2. C (sees both) creates NAME2 on S2 but waits before recording it
#      (DSM_TEST_SHARE_STALL_MS); meanwhile D (sees S1 only) creates it on
#      S1 and records it.  C then finds the record naming S1, attaches
#      there and lets S2's copy go: C finds D's increment, S2 holds no
#      region, and the record names S1 with both holders.
# Both are defeated by recording without comparing the home: A maps its
# own copy on S1 and C keeps its own on S2, each finding 0.
#   test_shared_home.sh BUILD_DIR   (exit 77: redis-server not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
hold=$build/tests/hold_shared
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=1 CAPACITY=64M CLUSTER=sharehome-$$
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
unset DSM_SERVERS

holders=()
trap 'for p in "${holders[@]}"; do kill -KILL "$p" 2>/dev/null; done; cleanup' EXIT

count_is() { [ "$("$dsmctl" --json "$1" 2>/dev/null | json_get 'len(d)' 2>/dev/null)" = "$2" ]; }
# said FILE LINE: FILE has the line
said() { grep -qx "$2" "$1" 2>/dev/null; }
# start NAME OUT [ENV...]: a hold_shared of NAME that maps at SIGUSR1
start() {
	local name=$1 out=$2
	shift 2
	env "$@" "$hold" "$name" 65536 --later >"$tmp/$out" 2>"$tmp/$out.err" &
	holder=$!
	holders+=("$holder")
	wait_for 15 said "$tmp/$out" ready || fatal "$out did not join: $(cat "$tmp/$out.err")"
}
regions_on() { "$dsmctl" --json servers | json_get "[s['regions'] for s in d if s['id'] == $1][0]"; }
# regions_are ID N: server ID holds N regions, as its record (refreshed
# every heartbeat) says; wait_for it
regions_are() { [ "$(regions_on "$1")" = "$2" ]; }
# a name that rendezvous hashing over server ids S1 and S2 puts on S2
name_on_second() {
	python3 - "$1" "$2" "$3" <<'PY'
import hashlib, struct, sys
prefix, s1, s2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def score(key, sid):
    h = hashlib.blake2b(key + struct.pack("<I", sid), digest_size=8).digest()
    return int.from_bytes(h, "little")
for i in range(1000):
    name = f"{prefix}-{i}"
    key = hashlib.blake2b(b"dsm shared region\0" + name.encode(), digest_size=32).digest()
    if score(key, s2) > score(key, s1):
        print(name)
        break
PY
}

"$top/deploy/cluster.sh" up >"$tmp/up.log" 2>&1 || { cat "$tmp/up.log"; fatal "cluster.sh up failed"; }
for f in "$RUN_DIR"/*.pid; do all_pids+=("$(cat "$f")"); done
wait_for 15 count_is servers 1 || fatal "S1 did not register"
s1=$("$dsmctl" --json servers | json_get 'd[0]["id"]')
s2=4000000007 # fixed, so that the names can be picked before S2 starts
name1=$(name_on_second one "$s1" "$s2")
name2=$(name_on_second two "$s1" "$s2")
echo "S1 is server $s1, S2 server $s2; names '$name1' and '$name2'"

# A and D join while S1 is the only server
start "$name1" a; pid_a=$holder
start "$name2" d; pid_d=$holder

setsid "$build/server/dsm-server" --listen "127.0.0.1:$((BASE_PORT + 1))" \
	--capacity "$CAPACITY" --registry "$registry" --cluster "$CLUSTER" \
	--server-id "$s2" --secret-file "$RUN_DIR/secret" \
	--registry-password-file "$RUN_DIR/redis.pass" \
	</dev/null >/dev/null 2>"$tmp/s2.log" &
all_pids+=("$!")
echo "$!" >"$RUN_DIR/server-s2.pid"
wait_for 15 count_is servers 2 || fatal "S2 did not register: $(cat "$tmp/s2.log")"

# ---- 1. the recorded home is one that A does not reach -----------------------
"$hold" "$name1" 65536 >"$tmp/b" 2>"$tmp/b.err" &
holders+=("$!")
wait_for 15 said "$tmp/b" mapped || fatal "B did not map: $(cat "$tmp/b.err")"
said "$tmp/b" "found 0" || fail "B found $(grep found "$tmp/b")"
[ "$(shared_record "$name1")" = "$s2 1" ] || fail "after B: record '$(shared_record "$name1")', not '$s2 1'"
wait_for 5 regions_are "$s2" 1 || fail "B's region is not on S2: S2 holds $(regions_on "$s2")"
kill -USR1 "$pid_a"
wait_for 15 sh -c "! kill -0 $pid_a 2>/dev/null || grep -qx mapped '$tmp/a'"
if said "$tmp/a" mapped; then
	fail "A mapped '$name1' on S1, which the registry says lives on S2 ($(grep found "$tmp/a"))"
else
	wait "$pid_a"
	rc=$?
	[ $rc = 1 ] || fail "A exited $rc, not 1"
	grep -qF "shared region $name1 lives on server $s2, which this process does not reach" \
		"$tmp/a.err" || fail "A's error does not say where '$name1' lives: $(cat "$tmp/a.err")"
fi
sleep 1.5 # a heartbeat: S1's record would count what A left
regions_are "$s1" 0 || fail "A left $(regions_on "$s1") regions on S1"
[ "$(shared_record "$name1")" = "$s2 1" ] || fail "after A: record '$(shared_record "$name1")', not '$s2 1'"

# ---- 2. two creators race: the first to record wins, the other moves ---------
start "$name2" c DSM_TEST_SHARE_STALL_MS=4000; pid_c=$holder
kill -USR1 "$pid_c"
wait_for 10 regions_are "$s2" 2 ||
	fail "C did not create '$name2' on S2 ($(regions_on "$s2") regions there)"
kill -USR1 "$pid_d"
wait_for 10 said "$tmp/d" mapped || fail "D did not map: $(cat "$tmp/d.err")"
said "$tmp/d" "found 0" || fail "D found $(grep found "$tmp/d")"
wait_for 15 said "$tmp/c" mapped || fail "C did not map: $(cat "$tmp/c.err")"
said "$tmp/c" "found 1" ||
	fail "C did not see D's increment: it $(grep found "$tmp/c") (its own copy on S2?)"
grep -qF "shared region $name2: created on 127.0.0.1:$((BASE_PORT + 1)) while 127.0.0.1:$BASE_PORT had it: moved there" \
	"$tmp/c.err" || fail "C does not say it moved: $(cat "$tmp/c.err")"
wait_for 5 regions_are "$s2" 1 ||
	fail "S2 holds $(regions_on "$s2") regions, not B's alone"
[ "$(shared_record "$name2")" = "$s1 2" ] || fail "record of '$name2': '$(shared_record "$name2")', not '$s1 2'"

"$top/deploy/cluster.sh" down >/dev/null 2>&1 || fail "cluster.sh down"
if [ $failed = 0 ]; then
	echo "shared_home: ok"
fi
exit $failed
