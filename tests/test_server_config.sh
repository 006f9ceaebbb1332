#!/usr/bin/env bash
# dsm-server --config (room: tests): a config file's settings start a
# server that listens where the file says, with the capacity it says (a
# client's 8 MiB region fits in 16 MiB, not in 4), and serves metrics
# where DSM_METRICS says (an option the parser has no word of); flags on
# the command line override the file, before --config or after it; every
# malformed file, key or value is refused with exit status 2, a message
# naming PATH:LINE and the key, and no server started;
# deploy/dsm.conf.example parses, every key of it.  tests/test_config.c
# covers the parser's rules one by one.
#   test_server_config.sh BUILD_DIR
set -uo pipefail
build=$1
server=$build/server/dsm-server
top=$(cd "$(dirname "$0")/.." && pwd)
failed=0
pids=()

fail() { echo "FAIL: $*"; failed=1; }

tmp=$(mktemp -d)
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# wait_file PATH: up to 10 s for PATH to hold something.
wait_file() {
	for _ in $(seq 100); do
		[ -s "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# start NAME ARGS...: a server in the background, its log in $tmp/NAME.log.
start() {
	local name=$1
	shift
	"$server" "$@" >"$tmp/$name.log" 2>&1 &
	pids+=($!)
}

stop_all() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	pids=()
}

# client PORT: what hold_region said once it held its 8 MiB region
# through the server at PORT, or gave up (it holds until killed).
client() {
	local log=$tmp/client.log p
	DSM_SERVERS=127.0.0.1:$1 DSM_LOG=warn "$build/tests/hold_region" \
		>"$log" 2>&1 &
	p=$!
	for _ in $(seq 100); do
		grep -q holding "$log" && break
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	cat "$log"
}

# --- a server from the file ------------------------------------------------
conf=$tmp/dsm.conf
cat >"$conf" <<EOF
# the settings of a test server
DSM_LISTEN=127.0.0.1:0
DSM_CAPACITY=4M

  DSM_PORT_FILE = "$tmp/port"
DSM_POLL_US='0'
# unset: the default
DSM_MAX_REGIONS=
DSM_LOG=info
DSM_METRICS=127.0.0.1:0
EOF
start file --config "$conf"
wait_file "$tmp/port" || fail "no port file from DSM_PORT_FILE: $(cat "$tmp/file.log")"
port=$(cat "$tmp/port" 2>/dev/null)
grep -q "listening on 127.0.0.1:$port capacity 4.0 MiB" "$tmp/file.log" ||
	fail "not listening as the file says: $(cat "$tmp/file.log")"
out=$(client "$port")
grep -q "lack 8388608 bytes of free capacity" <<<"$out" ||
	fail "an 8 MiB region fit in DSM_CAPACITY=4M: '$out'"
mport=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$tmp/file.log")
if [ -z "$mport" ]; then
	fail "no metrics endpoint from DSM_METRICS: $(cat "$tmp/file.log")"
else
	out=$(python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
		"http://127.0.0.1:$mport/metrics" 2>&1)
	grep -qx "dsm_server_capacity_bytes 4194304" <<<"$out" ||
		fail "the metrics at DSM_METRICS do not show DSM_CAPACITY=4M: $out"
fi

# --- flags override it, before --config and after -------------------------
start flags --capacity 16M --config "$conf" --port-file "$tmp/port2"
wait_file "$tmp/port2" || fail "--port-file did not override DSM_PORT_FILE: $(cat "$tmp/flags.log")"
port2=$(cat "$tmp/port2" 2>/dev/null)
[ "$port2" != "$port" ] || fail "the second server's port file is the first's"
grep -q "listening on 127.0.0.1:$port2 capacity 16.0 MiB" "$tmp/flags.log" ||
	fail "--capacity 16M did not override DSM_CAPACITY=4M: $(cat "$tmp/flags.log")"
out=$(client "$port2")
grep -q "holding 8388608 bytes" <<<"$out" ||
	fail "no 8 MiB region in --capacity 16M over DSM_CAPACITY=4M: '$out'"
stop_all

settings=$("$server" --config "$conf" --check-config --capacity 16M 2>&1)
rc=$?
[ $rc = 0 ] || fail "--check-config exited $rc: $settings"
grep -qx "DSM_CAPACITY=16M" <<<"$settings" || fail "--check-config: no DSM_CAPACITY=16M in: $settings"
grep -A1 -x "# the command line" <<<"$settings" | grep -qx "DSM_CAPACITY=16M" ||
	fail "--check-config does not say DSM_CAPACITY came from the command line: $settings"
grep -A1 -x "# $conf:2" <<<"$settings" | grep -qx "DSM_LISTEN=127.0.0.1:0" ||
	fail "--check-config does not say DSM_LISTEN came from $conf:2: $settings"
grep -qx "DSM_POLL_US=0" <<<"$settings" || fail "--check-config: quotes not taken off DSM_POLL_US: $settings"
grep -qx "# DSM_MAX_REGIONS unset: the default" <<<"$settings" ||
	fail "--check-config: an empty DSM_MAX_REGIONS is not unset: $settings"

# --- refusals: exit 2, PATH:LINE and the key, no server --------------------
# refused PATTERN [ARGS...]: dsm-server --config $tmp/bad.conf ARGS fails
# with status 2, PATTERN in its message, and writes no port file (the
# file's first line names one).
refused() {
	local pattern=$1 out rc
	shift
	rm -f "$tmp/badport"
	out=$(timeout 10 "$server" --config "$tmp/bad.conf" "$@" 2>&1 >/dev/null)
	rc=$?
	if [ $rc != 2 ] || ! grep -qF -- "$pattern" <<<"$out"; then
		fail "$(head -c 300 "$tmp/bad.conf" | tr '\n' '|') $*: exit $rc (want 2), '$out' (want '$pattern')"
	fi
	[ -e "$tmp/badport" ] && fail "a server started on a refused file: $(tr '\n' '|' <"$tmp/bad.conf")"
}
# bad LINES...: $tmp/bad.conf is a valid start, then LINES (from line 4).
bad() {
	printf '%s\n' "DSM_PORT_FILE=$tmp/badport" "DSM_LISTEN=127.0.0.1:0" \
		"DSM_CAPACITY=4M" "$@" >"$tmp/bad.conf"
}
b=$tmp/bad.conf
bad "DSM_BOGUS=1";                  refused "$b:4: DSM_BOGUS: unknown key: there is no option --bogus"
bad "LISTEN=127.0.0.1:0";           refused "$b:4: LISTEN: unknown key"
bad "DSM_POLL_US 5";                refused "$b:4: DSM_POLL_US: no '=': want KEY=VALUE"
bad "DSM_POLL_US=fast";             refused "$b:4: DSM_POLL_US: bad --poll-us 'fast': want an integer"
bad "" "DSM_MAX_CONNECTIONS=0";     refused "$b:5: DSM_MAX_CONNECTIONS: bad --max-connections '0'"
bad "DSM_HUGEPAGES=maybe";          refused "$b:4: DSM_HUGEPAGES: bad --hugepages 'maybe': want auto, on or off"
bad "DSM_TRANSPORT=ib";             refused "$b:4: DSM_TRANSPORT: bad --transport 'ib'"
bad "DSM_LOG=loud";                 refused "$b:4: DSM_LOG: unknown log level 'loud'"
bad "DSM_SERVER_ID=-1";             refused "$b:4: DSM_SERVER_ID: bad --server-id '-1'"
printf '%s\n' "DSM_PORT_FILE=$tmp/badport" "DSM_CAPACITY=4097" >"$b"
refused "$b:2: DSM_CAPACITY: bad --capacity '4097': want a positive multiple of 4K"
printf '%s\n' "DSM_PORT_FILE=$tmp/badport" "DSM_LISTEN=nowhere" >"$b"
refused "$b:2: DSM_LISTEN: bad --listen 'nowhere': want HOST:PORT" --capacity 4M
bad "DSM_REGISTRY=http://x";        refused "$b:4: DSM_REGISTRY: bad --registry 'http://x'"
bad "DSM_METRICS=x";                refused "$b:4: DSM_METRICS: bad --metrics 'x': want PORT or HOST:PORT"
bad "DSM_REGISTRY=redis://127.0.0.1:1" "DSM_CLUSTER=a b"
refused "$b:5: DSM_CLUSTER: bad cluster name 'a b'"
bad "DSM_LISTEN=127.0.0.1:1";       refused "$b:4: DSM_LISTEN: set already, at line 2"
bad "DSM_SECRET_FILE=\"$tmp/x";     refused "$b:4: DSM_SECRET_FILE: a quote that does not close"
bad "DSM_CONFIG=$conf";             refused "$b:4: DSM_CONFIG: --config is for the command line only"
bad "DSM_HELP=yes";                 refused "$b:4: DSM_HELP: --help is for the command line only"
bad "DSM_CHECK_CONFIG=yes";         refused "$b:4: DSM_CHECK_CONFIG: --check-config is for the command line only"
# a password never goes in the file, nor back out in a message
bad "DSM_REGISTRY=redis://:hunter2@127.0.0.1:1"
refused "$b:4: DSM_REGISTRY: a password in the URL: put it in a file of its own, named by DSM_REGISTRY_PASSWORD_FILE"
out=$("$server" --config "$b" 2>&1)
grep -q hunter2 <<<"$out" && fail "the registry's password was repeated: $out"
# nor out of --check-config, given on the command line
out=$("$server" --config "$conf" --registry redis://:hunter2@127.0.0.1:1 --check-config 2>&1)
{ grep -qx 'DSM_REGISTRY=redis://:\*\*\*@127.0.0.1:1' <<<"$out" && ! grep -q hunter2 <<<"$out"; } ||
	fail "--check-config did not hide the registry's password: $out"
# the file refused even where the command line would set the same key
bad "DSM_POLL_US=fast";             refused "$b:4: DSM_POLL_US: bad --poll-us 'fast'" --poll-us 5
# a malformed command line is reported before the file is read
bad "DSM_BOGUS=1";                  refused "unknown option '--nope'" --nope
# the file itself
for args in "--config $tmp/none.conf" "--config $tmp"; do
	rm -f "$tmp/badport"
	# shellcheck disable=SC2086 # two words, on purpose
	out=$(timeout 10 "$server" $args --port-file "$tmp/badport" --listen 127.0.0.1:0 --capacity 4M 2>&1)
	rc=$?
	want="${args#--config }: cannot read the config file"
	{ [ $rc = 2 ] && grep -qF "$want" <<<"$out"; } || fail "$args: exit $rc (want 2), '$out' (want '$want')"
	[ -e "$tmp/badport" ] && fail "a server started without its config file ($args)"
done
out=$(timeout 10 "$server" --config "$conf" --config "$conf" 2>&1); rc=$?
{ [ $rc = 2 ] && grep -qF -- "--config given twice" <<<"$out"; } || fail "--config twice: exit $rc, '$out'"
out=$(timeout 10 "$server" --config 2>&1); rc=$?
{ [ $rc = 2 ] && grep -qF -- "--config needs a value" <<<"$out"; } || fail "--config alone: exit $rc, '$out'"

# --- the documented example: every key parses ------------------------------
# as it is, and with the settings it leaves commented out taken in
example=$top/deploy/dsm.conf.example
sed -E 's/^#(DSM_[A-Z_]+=)/\1/' "$example" >"$tmp/example-all.conf"
for f in "$example" "$tmp/example-all.conf"; do
	settings=$("$server" --config "$f" --check-config 2>&1)
	rc=$?
	[ $rc = 0 ] || fail "--config $f --check-config exited $rc: $settings"
	keys=$(grep -E '^DSM_[A-Z_]+=' "$f" | cut -d= -f1)
	[ -n "$keys" ] || fail "no keys found in $f"
	for k in $keys; do
		want=$(grep -E "^$k=" "$f")
		grep -qxF "$want" <<<"$settings" || fail "$f's $want is not in effect: $settings"
	done
done
[ "$(grep -cE '^DSM_' "$tmp/example-all.conf")" -gt "$(grep -cE '^DSM_' "$example")" ] ||
	fail "no commented-out setting (#DSM_METRICS=...) found in $example"
help=$("$server" --help)
grep -q -- "--config PATH" <<<"$help" || fail "--help lacks --config"
grep -q -- "--check-config" <<<"$help" || fail "--help lacks --check-config"

[ $failed = 0 ] && echo "server_config: ok"
exit $failed
