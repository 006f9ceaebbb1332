#!/usr/bin/env bash
# dsmctl against a real cluster.  deploy/cluster.sh brings up a redis and
# three dsm-servers on loopback ports of this test's own, with its own
# RUN_DIR and cluster name; then every dsmctl command is checked against
# what the cluster is (servers, capacities, pids, regions and clients
# written into the registry by hand as registry/record.h documents them), in
# tables and in JSON.  A server is SIGKILLed and must leave the listing
# within its TTL without a live one ever missing from it; redis is
# restarted empty and the servers must register again; exit statuses 0, 1
# and 2 are checked where dsmctl --help promises them.  Shared regions:
# records written by hand (a holder without a lease left out), then
# hold_shared processes mapping one name: listed with both holders, one
# leaving at unmap, the region moved off its home by a drain, one SIGKILLed leaving with its lease, the record going
# with its last holder, and written again after redis restarts.  Last,
# cluster.sh down must leave no process behind.  Every check runs; all
# failures are listed.
#   test_dsmctl.sh BUILD_DIR      (exit 77: redis-server is not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
cluster_sh=$top/deploy/cluster.sh
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=3 CAPACITY=64M CLUSTER=ctltest-$$
capacity=$((64 << 20))
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
addrs=("127.0.0.1:$BASE_PORT" "127.0.0.1:$((BASE_PORT + 1))" "127.0.0.1:$((BASE_PORT + 2))")
# logged in with the cluster's redis password (REDISCLI_AUTH: not in ps)
key() { echo "dsm:$CLUSTER:$1"; }

# run WANT_STATUS ARGS...: dsmctl's stdout in $out, stderr in $err.
run() {
	local want=$1 rc
	shift
	out=$("$dsmctl" "$@" 2>"$tmp/err")
	rc=$?
	err=$(cat "$tmp/err")
	if [ "$rc" != "$want" ]; then
		fail "dsmctl $*: exit $rc (want $want); stderr: $err"
		return 1
	fi
}

# The server rows of a table: "ID  127.0.0.1:PORT ...".
rows() { grep -cE '^ *[0-9]+ +127\.0\.0\.1:'; }

# json PYTHON ARGS...: asserts in PYTHON about doc, the JSON on stdin.
json() {
	python3 -c "import json, sys
doc = json.load(sys.stdin)
args = sys.argv[1:]
$1" "${@:2}"
}

# ---- up -------------------------------------------------------------------------

echo "cluster: redis on $REDIS_PORT, servers on $BASE_PORT-$((BASE_PORT + 2)), RUN_DIR $RUN_DIR"
up_out=$("$cluster_sh" up 2>"$tmp/up.err") ||
	fatal "cluster.sh up failed: $(cat "$tmp/up.err")"
for f in "$RUN_DIR"/redis.pid "$RUN_DIR"/server-{1,2,3}.pid; do
	[ -s "$f" ] || fatal "cluster.sh up left no $f"
	all_pids+=("$(cat "$f")")
done
grep -qxF "export DSM_REGISTRY=$registry DSM_CLUSTER=$CLUSTER DSM_SECRET_FILE=$RUN_DIR/secret DSM_REGISTRY_PASSWORD_FILE=$RUN_DIR/redis.pass" <<<"$up_out" ||
	fail "cluster.sh up printed no export line: '$up_out'"
[ "$(rcli config get bind | tail -n 1)" = 127.0.0.1 ] ||
	fail "redis binds '$(rcli config get bind | tail -n 1)', not 127.0.0.1 only"
[ "$(stat -c %a "$RUN_DIR/redis.pass")" = 600 ] ||
	fail "RUN_DIR/redis.pass has mode $(stat -c %a "$RUN_DIR/redis.pass"), not 600"
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>&1)" != PONG ] ||
	fail "the cluster's redis answers without its password"
# every command line on the machine (the password read inside python,
# so that no command line of ours holds it either)
python3 - "$RUN_DIR/redis.pass" <<'PY' || fail "the redis password shows in ps"
import glob, sys
pw = open(sys.argv[1], "rb").read().strip()
for f in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        if pw in open(f, "rb").read():
            sys.exit(1)
    except OSError:
        pass
PY
[ -z "$(rcli config get save | tail -n 1)" ] &&
	[ "$(rcli config get appendonly | tail -n 1)" = no ] ||
	fail "redis persists (save/appendonly set)"

pids_before=$(cat "$RUN_DIR"/*.pid)
"$cluster_sh" up >/dev/null 2>"$tmp/up2.err" || fail "second cluster.sh up: exit $?"
grep -q "already up" "$tmp/up2.err" || fail "second up did not say it is up: $(cat "$tmp/up2.err")"
[ "$(cat "$RUN_DIR"/*.pid)" = "$pids_before" ] || fail "second up started processes"

# ---- servers and status ------------------------------------------------------

if run 0 servers; then
	[ "$(rows <<<"$out")" = 3 ] || fail "servers lists not 3: $out"
	for a in "${addrs[@]}"; do
		grep -wF "$a" <<<"$out" | grep -qF "64.0 MiB" ||
			fail "servers: no $a with 64.0 MiB: $out"
	done
fi

server_pids=$(cat "$RUN_DIR"/server-{1,2,3}.pid)
if run 0 --json servers; then
	# shellcheck disable=SC2086 # one argument per pid
	json '
fields = {"id", "addr", "host", "pid", "capacity", "used", "regions",
          "clients", "started_ms", "heartbeat_ms", "state", "transports"}
assert isinstance(doc, list) and len(doc) == 3, doc
for s in doc:
    assert set(s) == fields, s
    assert all(isinstance(s[f], int) for f in fields - {"addr", "host", "state", "transports"}), s
    assert s["transports"] in ("tcp", "tcp,rdma"), s
    assert s["state"] == "serving", s
    assert s["capacity"] == int(args[0]), s
assert sorted(s["addr"] for s in doc) == sorted(args[1:4]), doc
assert sorted(s["pid"] for s in doc) == sorted(map(int, args[4:])), doc
assert [s["id"] for s in doc] == sorted(s["id"] for s in doc), "not by id"
' $capacity "${addrs[@]}" $server_pids <<<"$out" || fail "--json servers: $out"
	servers_json=$out
fi

if run 0 status; then
	for want in "cluster   $CLUSTER" "registry  $registry" "servers   3 live" \
		    "capacity  192.0 MiB, 0 B used, 192.0 MiB free"; do
		grep -qF "$want" <<<"$out" || fail "status lacks '$want': $out"
	done
	[ "$(rows <<<"$out")" = 3 ] || fail "status table: $out"
fi
run 0 --json status && json '
assert doc["cluster"] == args[0] and doc["registry"] == args[1], doc
assert doc["capacity"] == 3 * int(args[2]) and doc["free"] == doc["capacity"], doc
assert len(doc["servers"]) == 3, doc
' "$CLUSTER" "$registry" $capacity <<<"$out" || fail "--json status: $out"

run 0 --cluster other-$$ servers &&
	! grep -q 127.0.0.1 <<<"$out" || fail "cluster other-$$ shows our servers: $out"

# ---- regions and clients, written as registry.h documents them ----------------

# The victim, killed below, is the server with the lowest id: a set of
# integer ids lists it first, so its expired record is met before live ones.
read -r victim victim_pid victim_addr live live_addr < <(json '
s = sorted(doc, key=lambda s: s["id"])
print(s[0]["id"], s[0]["pid"], s[0]["addr"], s[1]["id"], s[1]["addr"])
' <<<"${servers_json:-[]}") || fatal "no server ids"
now=$(date +%s%3N)
name=$'t "q"\tn\xc3\xa9\xff'   # quote, tab, UTF-8, a byte that is not UTF-8
extents="0+4194304@$live/11/0,4194304+4194304@$victim/12/1048576,8388608+4194304@$victim/13/5242880"
rcli hset "$(key region:42)" id 42 name "$name" size 12582912 owner 7 \
	created_ms "$now" extents "$extents" >/dev/null
rcli hset "$(key region:43)" id 43 name "" size 4096 owner 9 \
	created_ms "$now" extents "" >/dev/null
rcli sadd "$(key regions)" 42 43 >/dev/null
rcli hset "$(key client:5)" id 5 host testhost pid 4242 \
	started_ms $((now - 90000)) heartbeat_ms "$now" >/dev/null
rcli pexpire "$(key client:5)" 60000 >/dev/null
rcli sadd "$(key clients)" 5 >/dev/null

if run 0 regions; then
	grep -aE '^ *42 ' <<<"$out" | grep -aF "12.0 MiB" | grep -aE ' 7 +3 ' |
		grep -aqF "$live,$victim" || fail "regions: region 42 wrong: $out"
	# control characters escaped, bytes that are not UTF-8 shown as '?'
	grep -qF 't "q"\u0009né?' <<<"$out" || fail "regions: name of 42 shown as: $out"
	grep -E '^ *43 +- +4.0 KiB +9 +0 +-$' <<<"$out" >/dev/null ||
		fail "regions: region 43 wrong: $out"
fi
expect_ext='[{"off": 0, "len": 4194304, "server": %s, "region_id": 11, "pool_off": 0},
 {"off": 4194304, "len": 4194304, "server": %s, "region_id": 12, "pool_off": 1048576},
 {"off": 8388608, "len": 4194304, "server": %s, "region_id": 13, "pool_off": 5242880}]'
# shellcheck disable=SC2059
expect_ext=$(printf "$expect_ext" "$live" "$victim" "$victim")
run 0 --json regions && json '
assert [r["id"] for r in doc] == [42, 43], doc
r = doc[0]
assert r["name"] == "t \"q\"\tn\u00e9\ufffd", r["name"]
assert (r["size"], r["owner"], r["created_ms"]) == (12582912, 7, int(args[1])), r
assert r["extents"] == json.loads(args[0]), r["extents"]
assert doc[1]["name"] == "" and doc[1]["extents"] == [], doc[1]
' "$expect_ext" "$now" <<<"$out" || fail "--json regions: $out"

check_region_show() { # check_region_show REGEX_OF_VICTIM_ADDR
	if run 0 region show 42; then
		grep -qF "size     12.0 MiB (12582912 bytes)" <<<"$out" ||
			fail "region show: size: $out"
		grep -E "^ +0 +4194304 +$live +$live_addr +11 +0$" <<<"$out" >/dev/null &&
		grep -E "^ *4194304 +4194304 +$victim +$1 +12 +1048576$" <<<"$out" >/dev/null &&
		grep -E "^ *8388608 +4194304 +$victim +$1 +13 +5242880$" <<<"$out" >/dev/null ||
			fail "region show 42: extents (victim at '$1'): $out"
	fi
}
check_region_show "${victim_addr//./\\.}"
run 0 --json region show 42 && json '
assert [e["server_addr"] for e in doc["extents"]] == args[0:3], doc
' "$live_addr" "$victim_addr" "$victim_addr" <<<"$out" ||
	fail "--json region show 42: $out"

if run 0 clients; then
	grep -E '^ *5 +testhost +4242 +1m3[0-4]s +[0-9.]+s +-$' <<<"$out" >/dev/null ||
		fail "clients: $out"
fi
run 0 --json clients && json '
assert doc == [{"id": 5, "host": "testhost", "pid": 4242,
                "started_ms": int(args[0]) - 90000, "heartbeat_ms": int(args[0]),
                "transports": {}}], doc
' "$now" <<<"$out" || fail "--json clients: $out"
run 0 status && grep -qF "regions   2" <<<"$out" && grep -qF "clients   1" <<<"$out" ||
	fail "status does not count 2 regions and 1 client: $out"

# A region with replicas (DSM_REPLICAS=2): each extent names a second copy
# after ';'; region show has a row per copy and --json a replicas list.
# A record naming one server for two copies of an extent is refused.
rcli hset "$(key region:44)" id 44 name rep size 2097152 owner 7 \
	created_ms "$now" extents "0+1048576@$live/21/0;$victim/22/4096,1048576+1048576@$victim/23/0;$live/24/8192" >/dev/null
rcli sadd "$(key regions)" 44 >/dev/null
if run 0 region show 44; then
	grep -qF "extents  2, 2 copies of each on distinct servers" <<<"$out" &&
	grep -E "^ +0 +1048576 +$live +$live_addr +21 +0$" <<<"$out" >/dev/null &&
	grep -E "^ +0 +1048576 +$victim +${victim_addr//./\\.} +22 +4096$" <<<"$out" >/dev/null &&
	grep -E "^ *1048576 +1048576 +$live +$live_addr +24 +8192$" <<<"$out" >/dev/null ||
		fail "region show 44: copies: $out"
fi
run 0 --json region show 44 && json '
e = doc["extents"]
assert [x["server_addr"] for x in e] == [args[0], args[1]], doc
assert e[0]["replicas"] == [{"server": int(args[3]), "region_id": 22, "pool_off": 4096,
                             "server_addr": args[1]}], e[0]
assert e[1]["replicas"][0]["server"] == int(args[2]), e[1]
' "$live_addr" "$victim_addr" "$live" "$victim" <<<"$out" || fail "--json region show 44: $out"
run 0 regions && { grep -aE '^ *44 ' <<<"$out" | grep -aqF "$live,$victim" ||
	fail "regions: the servers of 44 should count its replicas': $out"; }
rcli hset "$(key region:45)" id 45 name bad size 1048576 owner 7 \
	created_ms "$now" extents "0+1048576@$live/21/0;$live/22/0" >/dev/null
rcli sadd "$(key regions)" 45 >/dev/null
run 1 regions && { grep -qF "region:45 is a malformed record" <<<"$err" ||
	fail "regions: two copies on one server not refused: $err"; }
rcli del "$(key region:44)" "$(key region:45)" >/dev/null
rcli srem "$(key regions)" 44 45 >/dev/null

# ---- shared regions: records written by hand ------------------------------------------

# A holder whose client record is gone (6) is left out by every reader
# and dropped from the record by the first; a record named by a key that
# is not 64 hex digits is malformed.
skey=$(printf 'ab%.0s' $(seq 32))
rcli hset "$(key share:$skey)" key "$skey" name handmade size 8192 home "$live" \
	region_id 5 pool_off 4096 holder:5 "$now" holder:6 "$now" >/dev/null
rcli sadd "$(key shares)" "$skey" >/dev/null
run 0 --json regions && json '
s = [r for r in doc if r.get("shared")]
assert s == [{"shared": True, "key": args[0], "name": "handmade", "size": 8192,
              "home": int(args[1]), "region_id": 5, "pool_off": 4096,
              "holders": [{"client": 5, "host": "testhost", "pid": 4242,
                           "attached_ms": int(args[2])}]}], s
assert [r["id"] for r in doc if not r.get("shared")] == [42, 43], doc
' "$skey" "$live" "$now" <<<"$out" || fail "--json regions: hand-written shared region: $out"
[ "$(rcli hexists "$(key share:$skey)" holder:6)" = 0 ] ||
	fail "a holder without a lease is still in the record after a listing"
if run 0 regions; then
	grep -qx "shared regions" <<<"$out" &&
	grep -E "^handmade +8\.0 KiB +$live +5 +1 +5@testhost$" <<<"$out" >/dev/null ||
		fail "regions: hand-written shared region: $out"
fi
run 0 status && { grep -qx "shared    1 held by 1" <<<"$out" ||
	fail "status does not count 1 shared region held by 1: $out"; }
rcli hset "$(key share:$skey)" key nothex >/dev/null
run 1 regions && { grep -qF "dsm:$CLUSTER:share:$skey is a malformed record" <<<"$err" ||
	fail "regions: a malformed shared region record not named: $err"; }
run 1 --json regions && json '
assert [r for r in doc if "error" in r] == [
    {"key": "dsm:%s:share:%s" % (args[0], args[1]), "error": "malformed record"}], doc
' "$CLUSTER" "$skey" <<<"$out" || fail "--json regions: malformed shared region: $out"
rcli del "$(key share:$skey)" >/dev/null
rcli srem "$(key shares)" "$skey" >/dev/null

# ---- shared regions: held by clients ---------------------------------------------------

# Two hold_shared processes map one name.  Both are listed as its holders
# as soon as dsm_map_shared returns; one unmapping leaves at once (its
# client still lives); a holder SIGKILLed leaves once its lease is gone,
# with nobody listing (the servers' pruning) while the other keeps the
# record alive past its TTL; the last holder leaving deletes the record.
hold_shared=$build/tests/hold_shared
holders=()
kill_holders() {
	local p
	for p in "${holders[@]}"; do kill -KILL "$p" 2>/dev/null; done
}
trap 'kill_holders; cleanup' EXIT
# start_holder FILE: a hold_shared of $share, 1 MiB; its pid in $holder
start_holder() {
	"$hold_shared" "$share" 1048576 >"$1" 2>"$1.err" &
	holder=$!
	holders+=("$holder")
}
# said FILE WORD N: FILE has at least N lines WORD (hold_shared's steps)
said() { [ "$(grep -cx "$2" "$1")" -ge "$3" ]; }
client_of() { "$dsmctl" --json clients | json_get "[c['id'] for c in d if c['pid'] == $1][0]"; }
# the client ids holding $share, by id, as dsmctl --json regions lists them
share_holders() {
	"$dsmctl" --json regions | python3 -c '
import json, sys
doc = json.load(sys.stdin)
print(" ".join(str(h["client"]) for r in doc if r.get("shared") and r["name"] == sys.argv[1]
               for h in r["holders"]))' "$share"
}
ids() { printf '%s\n' "$@" | sort -n | xargs; }

share=$'job 42/c\xc3\xb6unt\tx'   # a space, UTF-8 and a tab
host=$(hostname)
start_holder "$tmp/a.out"
pid_a=$holder
start_holder "$tmp/b.out"
pid_b=$holder
wait_for 30 said "$tmp/a.out" mapped 1 && wait_for 30 said "$tmp/b.out" mapped 1 ||
	fatal "hold_shared did not map: $(cat "$tmp"/a.out* "$tmp"/b.out*)"
id_a=$(client_of $pid_a)
id_b=$(client_of $pid_b)
both=$(ids "$id_a" "$id_b")
[ "$(share_holders)" = "$both" ] ||
	fail "holders of the shared region: '$(share_holders)', not '$both'"
run 0 --json regions && json '
import hashlib
s = [r for r in doc if r.get("shared")]
assert len(s) == 1, s
s = s[0]
# the key servers know the name by: BLAKE2b-256 of a tag and the name
key = hashlib.blake2b(b"dsm shared region\0" + args[0].encode(), digest_size=32).hexdigest()
assert (s["name"], s["key"], s["size"]) == (args[0], key, 1048576), s
assert s["home"] in [v["id"] for v in json.loads(args[3])], s
assert sorted((h["client"], h["pid"], h["host"]) for h in s["holders"]) == sorted(
    [(int(args[1]), int(args[4]), args[6]), (int(args[2]), int(args[5]), args[6])]), s
' "$share" "$id_a" "$id_b" "${servers_json:-[]}" "$pid_a" "$pid_b" "$host" <<<"$out" ||
	fail "--json regions: the shared region: $out"
share_key=$(json 'print([r["key"] for r in doc if r.get("shared")][0])' <<<"$out")
home=$(json 'print([r["home"] for r in doc if r.get("shared")][0])' <<<"$out")
home_addr=$(json 'print([s["addr"] for s in doc if s["id"] == int(sys.argv[1])][0])' \
	"$home" <<<"$servers_json")
if run 0 regions; then
	row=$(grep -aF 'job 42/cöunt\u0009x' <<<"$out")
	grep -qE " 1\.0 MiB +$home +[0-9]+ +2 +" <<<"$row" &&
		grep -qF " ${both% *}@$host,${both#* }@$host" <<<"$row" ||
		fail "regions: the shared region's row: $out"
	grep -qE '^ *42 ' <<<"$out" || fail "regions: region 42 not listed with a shared region: $out"
fi
run 0 status && { grep -qx "shared    1 held by 2" <<<"$out" ||
	fail "status does not count 1 shared region held by 2: $out"; }
run 0 --json status && json '
assert (doc["shared_regions"], doc["shared_holders"]) == (1, 2), doc
' <<<"$out" || fail "--json status: shared regions: $out"
if run 0 shared show "$share"; then
	grep -qF "home     server $home at $home_addr, its region" <<<"$out" &&
		grep -qE "^ *$id_a +$host +$pid_a +[0-9.]+s$" <<<"$out" &&
		grep -qE "^ *$id_b +$host +$pid_b +[0-9.]+s$" <<<"$out" ||
		fail "shared show: $out"
fi
run 0 --json shared show "$share" && json '
assert doc["home_addr"] == args[0] and len(doc["holders"]) == 2, doc
' "$home_addr" <<<"$out" || fail "--json shared show: $out"
run 1 shared show nosuch && { grep -qF "no shared region 'nosuch'" <<<"$err" ||
	fail "shared show nosuch: $err"; }
run 2 shared

# A unmaps: it leaves the holders at once, though its lease lives on
kill -USR1 $pid_a
wait_for 10 said "$tmp/a.out" unmapped 1 || fail "hold_shared did not unmap"
[ "$(share_holders)" = "$id_b" ] &&
	"$dsmctl" --json clients | json 'assert int(args[0]) in [c["id"] for c in doc]' "$id_a" ||
	fail "after A unmapped: holders '$(share_holders)', not '$id_b' (A still a client)"
# ...and maps it again: both hold it
kill -USR1 $pid_a
wait_for 10 said "$tmp/a.out" mapped 2 || fail "hold_shared did not map again"
mapped_at=$SECONDS
[ "$(share_holders)" = "$both" ] ||
	fail "after A mapped again: holders '$(share_holders)', not '$both'"

# A drain of the home moves the region with its holders' help: dsmctl
# says so at the start, the drain ends, and the record names another home,
# held by both.  On a terminal (script(1) makes one) dsmctl draws its
# progress line meanwhile, in place (\r, the line, erase to the end of the
# line: ESC [K), and erases it before the outcome.
if command -v script >/dev/null; then
	out=$(script -qec "$(printf '%q ' "$dsmctl" drain --timeout=30 "$home")" \
		/dev/null </dev/null)
	rc=$?
	err=""
	[ $rc = 0 ] || fail "dsmctl drain on a terminal: exit $rc: $(cat -v <<<"$out")"
	grep -q $'\r  copied [^\r]* of [^\r]*([^\r]*\(elapsed\|ETA\)[^\r]*\033\[K' <<<"$out" &&
		grep -q $'\r\033\[K  moved .* off server' <<<"$out" ||
		fail "dsmctl drain on a terminal: no progress line drawn, then erased: $(cat -v <<<"$out")"
else
	echo "SKIP: dsmctl drain on a terminal: no script(1) (util-linux) to make one"
	run 0 drain --timeout=30 "$home"
	[[ $out$err != *$'\r'* ]] || fail "dsmctl drain, piped: a progress line (\\r): $out"
fi
grep -qF "of it in 1 shared regions, moved by their holders" <<<"$out" &&
	grep -q "drained in" <<<"$out" ||
	fail "drain of a shared region's home: $out / $err"
run 0 --json regions && json '
s = [r for r in doc if r.get("shared")]
assert len(s) == 1 and s[0]["home"] != int(args[0]), s
assert len(s[0]["holders"]) == 2, s
' "$home" <<<"$out" || fail "after the drain, the shared region: $out"
run 0 drain --cancel "$home"

# B is SIGKILLed.  With nobody listing, its field leaves the record once its
# lease is gone (the servers prune every 10 s); A keeps the record alive,
# more than a TTL after it last mapped it.
kill -KILL $pid_b
b_gone() { [ "$(rcli hexists "$(key share:$share_key)" holder:$id_b)" = 0 ]; }
wait_for 25 b_gone ||
	fail "the SIGKILLed holder is still in the record after 25 s"
while [ $SECONDS -lt $((mapped_at + 7)) ]; do sleep 0.5; done
[ "$(share_holders)" = "$id_a" ] ||
	fail "after B was killed: holders '$(share_holders)', not '$id_a'"

# A, the last holder, leaves: the record and its index entry go with it
kill -TERM $pid_a
wait_for 10 said "$tmp/a.out" unmapped 2 || fail "hold_shared did not unmap at SIGTERM"
[ "$(rcli exists "$(key share:$share_key)")" = 0 ] &&
	[ "$(rcli sismember "$(key shares)" "$share_key")" = 0 ] ||
	fail "the record outlives its last holder: $(rcli hgetall "$(key share:$share_key)")"
run 0 regions && { ! grep -q "shared regions" <<<"$out" ||
	fail "regions: a shared region listed with no holder: $out"; }
wait $pid_a || fail "hold_shared exited with status $?: $(cat "$tmp/a.out.err")"

# ---- a server dies ------------------------------------------------------------------

# Within the TTL (5 s) and a beat it must leave the listing; meanwhile, and
# after, the two live servers must be in every listing.
kill -KILL "$victim_pid"
survivors=$(printf '%s\n' "${addrs[@]}" | grep -vxF "$victim_addr" | tr '\n' ' ')
listed_addrs() {
	"$dsmctl" --json servers | json 'print(" ".join(sorted(s["addr"] for s in doc)))'
}
deadline=$((SECONDS + 10))
left=0 missing=""
while [ $SECONDS -lt $deadline ]; do
	now_listed=$(listed_addrs)
	for a in $survivors; do
		grep -qwF "$a" <<<"$now_listed" || missing+=" [$now_listed]"
	done
	if ! grep -qwF "$victim_addr" <<<"$now_listed"; then
		left=$((left + 1))
		[ $left -ge 8 ] && break # and stays gone, with the others listed
	fi
	sleep 0.25
done
[ $left -ge 1 ] || fail "the killed server $victim_addr is still listed after 10 s"
[ -z "$missing" ] || fail "live servers missing from listings after a server died:$missing"
run 0 servers && [ "$(rows <<<"$out")" = 2 ] ||
	fail "servers does not list 2 after the kill: $out"
check_region_show '\(gone\)'
run 0 status && grep -qF "regions   2, 1 degraded (a copy on a server no longer live)" <<<"$out" ||
	fail "status does not count region 42 degraded after the kill: $out"
run 0 --json status && json 'assert doc["degraded_regions"] == 1, doc' <<<"$out" ||
	fail "--json status: degraded_regions after the kill: $out"
run 0 --json region show 42 && json '
assert [e["server_addr"] for e in doc["extents"]] == [args[0], None, None], doc
' "$live_addr" <<<"$out" || fail "--json region show 42 after the kill: $out"

# ---- exit statuses ---------------------------------------------------------------------

run 1 region show 999 && { grep -qF "no region 999 in cluster $CLUSTER" <<<"$err" ||
	fail "region show 999 says: $err"; }
run 2 bogus && { grep -qF "unknown command 'bogus'" <<<"$err" || fail "bogus: $err"; }
run 2 region show abc
run 2 region show
run 2 region
run 2 --frobnicate servers
# dsmctl's own options after the command too, as kubectl's and git's
run 0 servers --json && json 'assert len(doc) == 2, doc' <<<"$out" ||
	fail "servers --json (after the command): $out"
run 0 region show 42 --json --cluster "$CLUSTER" && json 'assert doc["id"] == 42, doc' <<<"$out" ||
	fail "region show 42 --json --cluster NAME: $out"
run 1 servers --registry=redis://127.0.0.1:1 && { grep -qF "127.0.0.1:1" <<<"$err" ||
	fail "servers --registry=URL after the command: $err"; }
run 2 servers --cluster && { grep -qF -- "--cluster needs a value" <<<"$err" ||
	fail "servers --cluster: $err"; }
run 0 --version && { grep -qx "dsmctl [0-9]*\.[0-9]*\.[0-9]*" <<<"$out" || fail "--version: $out"; }
# bash completion (deploy/completion/dsmctl.bash): commands, subcommands,
# options before or after the command, drain's server ids from the registry
complete_line() { # complete_line WORDS...: the completions of the last word
	PATH=$build/ctl:$PATH bash -c 'source "$1"; shift; COMP_WORDS=("$@");
		COMP_CWORD=$(($# - 1)); _dsmctl; echo "${COMPREPLY[*]}"' _ \
		"$top/deploy/completion/dsmctl.bash" "$@"
}
[ "$(complete_line dsmctl se)" = servers ] || fail "completion of 'dsmctl se': $(complete_line dsmctl se)"
[ "$(complete_line dsmctl region "")" = show ] || fail "completion of 'dsmctl region '"
[ "$(complete_line dsmctl servers --j)" = --json ] || fail "completion of 'dsmctl servers --j'"
[ "$(complete_line dsmctl --cluster "$CLUSTER" dr)" = drain ] || fail "completion after --cluster NAME"
live_id=$("$dsmctl" --json servers | json_get 'd[0]["id"]')
[ "$(complete_line dsmctl drain "$live_id")" = "$live_id" ] ||
	fail "completion of drain's server id $live_id: $(complete_line dsmctl drain "$live_id")"
run 2 stats --watch=0 && { grep -qF "bad --watch '0'" <<<"$err" || fail "stats --watch=0: $err"; }
run 2 stats --watch=x
run 2 servers --watch # only stats watches
run 1 --registry redis://127.0.0.1:1 status && { grep -qF "127.0.0.1:1" <<<"$err" ||
	fail "unreachable registry: message names no address: $err"; }
out=$(env -u DSM_REGISTRY "$dsmctl" status 2>&1)
rc=$?
[ $rc = 2 ] && grep -q "DSM_REGISTRY" <<<"$out" && grep -q -- "--registry" <<<"$out" ||
	fail "no registry given: exit $rc (want 2), '$out'"
run 0 --help && { grep -q "^Exit status:" <<<"$out" || fail "--help documents no exit status"; }
for cmd in status servers regions clients "region show" stats; do
	# shellcheck disable=SC2086
	run 0 $cmd --help && { grep -q "^usage: dsmctl .*$cmd" <<<"$out" ||
		fail "$cmd --help: $out"; }
done

# ---- defects an earlier review found -------------------------------------------------

# the argument named is the one typed, also inside a cluster of short options
run 2 --json -xy servers && { grep -qF "unknown option '-x' in '-xy'" <<<"$err" ||
	fail "-xy: $err"; }
run 2 -q servers && { grep -qF "unknown option '-q'" <<<"$err" || fail "-q: $err"; }

# C1 controls (U+0080..U+009F: two bytes in UTF-8) escaped once, like C0
rcli hset "$(key region:44)" id 44 name $'a\xc2\x85b\x7f' size 4096 owner 9 \
	created_ms "$now" extents "" >/dev/null
rcli sadd "$(key regions)" 44 >/dev/null
if run 0 regions; then
	grep -E '^ *44 ' <<<"$out" | grep -qF 'a\u0085b\u007f' ||
		fail "regions: a C1 control shown as: $(grep -E '^ *44 ' <<<"$out" | od -c | head -3)"
fi
run 0 region show 44 && { grep -qF 'name     a\u0085b\u007f' <<<"$out" ||
	fail "region show 44: name: $out"; }
run 0 --json regions && { grep -qF '"name":"a\u0085b\u007f"' <<<"$out" ||
	fail "--json regions: C1 not escaped: $out"; }

# a malformed record: named on stderr, the rest listed, exit status 1
rcli hset "$(key region:45)" id 45 name bad size lots owner 9 \
	created_ms "$now" extents "" >/dev/null
rcli sadd "$(key regions)" 45 >/dev/null
if run 1 regions; then
	grep -qF "dsm:$CLUSTER:region:45 is a malformed record" <<<"$err" ||
		fail "regions: no warning for the malformed record: $err"
	grep -qE '^ *42 ' <<<"$out" && grep -qE '^ *44 ' <<<"$out" ||
		fail "regions: the well-formed ones not listed with a malformed one: $out"
fi
run 1 --json regions && json '
assert [r["id"] for r in doc if "id" in r] == [42, 43, 44], doc
assert [r for r in doc if "error" in r] == [
    {"key": "dsm:%s:region:45" % args[0], "error": "malformed record"}], doc
' "$CLUSTER" <<<"$out" || fail "--json regions with a malformed record: $out"
run 1 status && { grep -qF "region:45 is a malformed record" <<<"$err" ||
	fail "status: no warning for the malformed record: $err"; }
rcli del "$(key region:45)" >/dev/null
rcli srem "$(key regions)" 45 >/dev/null

# out of memory while building a table: an error, not success
fail_malloc=$build/tests/libfail_malloc.so
if [ -e "$fail_malloc" ]; then
	# escaping a 57-byte name takes malloc(57 * 6 + 1): only that fails
	rcli hset "$(key region:44)" name "$(printf 'n%.0s' $(seq 57))" >/dev/null
	LD_PRELOAD=$fail_malloc FAIL_MALLOC_SIZE=343 run 1 regions &&
		{ grep -qF "out of memory" <<<"$err" || fail "regions out of memory: $err"; }
	[ -z "$out" ] || fail "regions printed a table it could not build whole: $out"
else
	echo "SKIP: dsmctl out of memory: no $(basename "$fail_malloc") in a sanitizer build (its runtime owns malloc)"
fi
rcli del "$(key region:44)" >/dev/null
rcli srem "$(key regions)" 44 >/dev/null

# ---- redis restarts empty: the servers register again -------------------------------

# and a holder of a shared region writes its holding again
share=after-restart
start_holder "$tmp/h.out"
pid_h=$holder
wait_for 30 said "$tmp/h.out" mapped 1 || fail "hold_shared did not map: $(cat "$tmp"/h.out*)"
id_h=$(client_of $pid_h)

"$cluster_sh" restart-redis 2>"$tmp/restart.err" ||
	fail "cluster.sh restart-redis: $(cat "$tmp/restart.err")"
all_pids+=("$(cat "$RUN_DIR/redis.pid" 2>/dev/null)")
back=0
for _ in $(seq 40); do
	[ "$(listed_addrs)" = "$(tr ' ' '\n' <<<"$survivors" | LC_ALL=C sort | xargs)" ] && { back=1; break; }
	sleep 0.25
done
[ $back = 1 ] || fail "servers not back in the registry 10 s after redis restarted: $(listed_addrs)"
out=$("$cluster_sh" status 2>&1) && grep -qF "servers   2 live" <<<"$out" ||
	fail "cluster.sh status: $out"
holder_back() { [ "$(share_holders)" = "$id_h" ]; }
wait_for 10 holder_back ||
	fail "the shared region's holder not recorded again 10 s after redis restarted: '$(share_holders)'"
kill -TERM $pid_h
wait $pid_h || fail "hold_shared exited with status $?: $(cat "$tmp/h.out.err")"

# ---- down ------------------------------------------------------------------------------

"$cluster_sh" down 2>"$tmp/down.err" || fail "cluster.sh down: exit $?: $(cat "$tmp/down.err")"
for pid in "${all_pids[@]}"; do
	if runs "$pid" dsm-server || runs "$pid" redis-server; then
		fail "pid $pid still runs after down: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
	fi
done
rcli ping >/dev/null 2>&1 && fail "redis still answers on $REDIS_PORT after down"
"$cluster_sh" down 2>/dev/null || fail "a second cluster.sh down: exit $?"
"$cluster_sh" status >/dev/null 2>&1
rc=$?
[ $rc = 1 ] || fail "cluster.sh status of a cluster that is down: exit $rc (want 1)"

[ $failed = 0 ] && echo "dsmctl: ok"
exit $failed
