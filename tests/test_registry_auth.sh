#!/usr/bin/env bash
# The registry behind a Redis password (requirepass), for every component
# that uses it: dsm-server (registering, and logging in again after Redis
# restarts), dsmctl, and a client (test_integrity --cluster 1).  The right
# password, from a file or the URL, works; a wrong one, none, or one given
# to a Redis without a password each fail with a message saying which; a
# password file others may read is refused.  No message, log or output
# captured here may hold the password.
#   test_registry_auth.sh BUILD_DIR   (exit 77: redis-server not installed)
set -uo pipefail
build=$1
server=$build/server/dsm-server
dsmctl=$build/ctl/dsmctl
integrity=$build/tests/test_integrity
failed=0
cluster=authtest-$$

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
	echo "SKIP: redis-server or redis-cli not installed (deploy/install-deps.sh installs them)"
	exit 77
fi

tmp=$(mktemp -d /tmp/dsm-regauth.XXXXXX)
logs=$tmp/logs # everything we capture; none of it may hold the password
mkdir "$logs"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Hex, so that it needs no quoting; kept out of every command line: redis
# reads it from a config file, redis-cli from REDISCLI_AUTH.
pw=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077 && echo "$pw" >"$tmp/pass" && echo "not-$pw" >"$tmp/wrong" &&
	printf 'requirepass "%s"\n' "$pw" >"$tmp/redis.conf" &&
	printf 'requirepass "not-%s"\n' "$pw" >"$tmp/other.conf")

port_free() {
	python3 -c 'import socket, sys
s = socket.socket()
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}
pick_port() { # in 7600-7699, from a start that differs between runs
	local p
	for i in $(seq 0 99); do
		p=$((7600 + ($$ + i * 7) % 100))
		[ "$p" != "${port:-}" ] && port_free $p && { echo $p; return 0; }
	done
	return 1
}
port=$(pick_port) || fatal "no free loopback port in 7600-7699"
open_port=$(pick_port) || fatal "a second free port in 7600-7699"
url=redis://127.0.0.1:$port

# start_redis PORT CONF|"": a redis of ours, no persistence; its pid in
# redis_pid.
start_redis() {
	redis-server ${2:+"$2"} --bind 127.0.0.1 --port "$1" --save '' \
		--appendonly no --dir "$tmp" >"$logs/redis-$1.log" 2>&1 &
	redis_pid=$!
	pids+=("$redis_pid")
	for _ in $(seq 50); do
		[ -n "$(redis-cli -p "$1" ping 2>/dev/null)" ] && return 0
		sleep 0.1
	done
	fatal "redis on $1 did not start: $(tail -5 "$logs/redis-$1.log")"
}
stop_redis() {
	kill -TERM "$redis_pid"
	wait "$redis_pid" 2>/dev/null
}

n=0
# ctl WANT ARGS...: dsmctl with cluster; stdout in $out, stderr in $err.
ctl() {
	local want=$1 rc
	shift
	n=$((n + 1))
	out=$("$dsmctl" --cluster "$cluster" "$@" 2>"$logs/ctl-$n.err")
	rc=$?
	err=$(cat "$logs/ctl-$n.err")
	echo "$out" >"$logs/ctl-$n.out"
	[ "$rc" = "$want" ] || { fail "dsmctl $*: exit $rc (want $want): $err"; return 1; }
}
listed() { "$dsmctl" --cluster "$cluster" --registry-password-file "$tmp/pass" \
	--registry "$url" --json servers 2>/dev/null |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# srv_fails PATTERN ARGS...: dsm-server must exit 1 at start, saying PATTERN.
srv_fails() {
	local pattern=$1 rc
	shift
	n=$((n + 1))
	timeout 10 "$server" --listen 127.0.0.1:0 --capacity 16M \
		--cluster "$cluster" "$@" >/dev/null 2>"$logs/srv-$n.err"
	rc=$?
	[ $rc = 1 ] && grep -qF -- "$pattern" "$logs/srv-$n.err" ||
		fail "dsm-server $*: exit $rc (want 1), stderr: $(cat "$logs/srv-$n.err") (want '$pattern')"
}

start_redis "$port" "$tmp/redis.conf"
[ "$(redis-cli -p "$port" ping 2>&1)" != PONG ] || fatal "redis wants no password"

echo "--- dsm-server"
"$server" --listen 127.0.0.1:0 --capacity 64M --registry "$url" \
	--cluster "$cluster" --registry-password-file "$tmp/pass" \
	2>"$logs/server.log" &
srv=$!
pids+=("$srv")
for _ in $(seq 50); do [ "$(listed)" = 1 ] && break; sleep 0.1; done
[ "$(listed)" = 1 ] || fail "the server with the password is not registered: $(cat "$logs/server.log")"

srv_fails "registry $url: password refused; check --registry-password-file" \
	--registry "$url" --registry-password-file "$tmp/wrong"
srv_fails "registry $url requires a password" --registry "$url"
srv_fails "password refused; check the password in the URL" \
	--registry "redis://:not-$pw@127.0.0.1:$port"
cp "$tmp/pass" "$tmp/pass.640" && chmod 640 "$tmp/pass.640"
srv_fails "registry password file $tmp/pass.640 may be read by others (mode 0640): chmod 600" \
	--registry "$url" --registry-password-file "$tmp/pass.640"
srv_fails "a password in the URL and another in --registry-password-file" \
	--registry "redis://:$pw@127.0.0.1:$port" --registry-password-file "$tmp/pass"
[ "$(listed)" = 1 ] || fail "a refused server registered anyway: $(listed) listed"

echo "--- dsmctl"
if ctl 0 --registry "$url" --registry-password-file "$tmp/pass" servers; then
	grep -q "127.0.0.1:" <<<"$out" || fail "dsmctl servers with the password: $out"
fi
DSM_REGISTRY_PASSWORD_FILE=$tmp/pass ctl 0 --registry "$url" servers
ctl 1 --registry "$url" servers &&
	{ grep -qF "registry $url requires a password" <<<"$err" &&
	  grep -qF -- "--registry-password-file" <<<"$err" || fail "dsmctl without a password: $err"; }
ctl 1 --registry "$url" --registry-password-file "$tmp/wrong" servers &&
	{ grep -qF "password refused; check --registry-password-file" <<<"$err" ||
	  fail "dsmctl, wrong password: $err"; }
DSM_REGISTRY_PASSWORD_FILE=$tmp/wrong ctl 1 --registry "$url" servers &&
	{ grep -qF "password refused; check DSM_REGISTRY_PASSWORD_FILE" <<<"$err" ||
	  fail "dsmctl, wrong password from the environment: $err"; }
ctl 1 --registry "$url" --registry-password-file "$tmp/pass.640" servers &&
	{ grep -qF "may be read by others" <<<"$err" || fail "dsmctl, mode 0640: $err"; }
# in the URL: works, and is shown redacted
if ctl 0 --registry "redis://:$pw@127.0.0.1:$port" status; then
	grep -qF "registry  redis://:***@127.0.0.1:$port" <<<"$out" ||
		fail "dsmctl status shows the URL as: $out"
fi
ctl 0 --registry "redis://default:$pw@127.0.0.1:$port" --json status &&
	{ grep -qF "\"registry\":\"redis://default:***@127.0.0.1:$port\"" <<<"$out" ||
	  fail "dsmctl --json status shows the URL as: $out"; }
ctl 0 --registry "redis://default@127.0.0.1:$port" \
	--registry-password-file "$tmp/pass" servers # an ACL user's password
ctl 2 --registry "redis://:$pw@127.0.0.1:x" servers &&
	{ grep -qF "redis://:***@127.0.0.1:x" <<<"$err" || fail "bad URL shown as: $err"; }

echo "--- a password for a Redis that has none"
main_redis=$redis_pid
start_redis "$open_port" ""
open_redis=$redis_pid
redis_pid=$main_redis
ctl 1 --registry "redis://127.0.0.1:$open_port" --registry-password-file "$tmp/pass" servers &&
	{ grep -qF "has no password set, but --registry-password-file gives one" <<<"$err" ||
	  fail "dsmctl, password for an open redis: $err"; }
srv_fails "has no password set" --registry "redis://127.0.0.1:$open_port" \
	--registry-password-file "$tmp/pass"
kill -TERM "$open_redis"; wait "$open_redis" 2>/dev/null

echo "--- a client"
export DSM_REGISTRY=$url DSM_CLUSTER=$cluster
unset DSM_SERVERS DSM_SECRET_FILE
DSM_REGISTRY_PASSWORD_FILE=$tmp/pass "$integrity" --cluster 1 >"$logs/client.log" 2>&1 ||
	fail "a client with the password: $(tail -5 "$logs/client.log")"
DSM_REGISTRY_PASSWORD_FILE=$tmp/wrong "$integrity" --cluster 1 >"$logs/client-wrong.log" 2>&1 &&
	fail "a client with a wrong password ran"
grep -qF "registry $url: password refused; check DSM_REGISTRY_PASSWORD_FILE" "$logs/client-wrong.log" ||
	fail "a client with a wrong password says: $(tail -3 "$logs/client-wrong.log")"
env -u DSM_REGISTRY_PASSWORD_FILE "$integrity" --cluster 1 >"$logs/client-none.log" 2>&1 &&
	fail "a client without a password ran"
grep -qF "registry $url requires a password" "$logs/client-none.log" ||
	fail "a client without a password says: $(tail -3 "$logs/client-none.log")"
DSM_REGISTRY_PASSWORD_FILE=$tmp/pass.640 "$integrity" --cluster 1 >"$logs/client-640.log" 2>&1 &&
	fail "a client with a password file of mode 0640 ran"
grep -qF "may be read by others" "$logs/client-640.log" ||
	fail "a client with a password file of mode 0640 says: $(tail -3 "$logs/client-640.log")"

echo "--- dsm-run --registry-password-file"
# The shim is tested in the plain build only (see test_preload_programs.sh).
if [ "${DSM_TEST_SANITIZED:-0}" = 1 ]; then
	echo "SKIP: dsm-run --registry-password-file: the shim cannot be tested under a sanitizer"
else
	far_prog=(python3 -c 'b = bytearray(8 << 20); b[-1] = 1')
	env -u DSM_REGISTRY_PASSWORD_FILE "$build/preload/dsm-run" --registry "$url" \
		--cluster "$cluster" --registry-password-file "$tmp/pass" --require \
		--quiet -- "${far_prog[@]}" >"$logs/run.log" 2>&1 ||
		fail "dsm-run with --registry-password-file: $(tail -3 "$logs/run.log")"
	env -u DSM_REGISTRY_PASSWORD_FILE "$build/preload/dsm-run" --registry "$url" \
		--cluster "$cluster" --registry-password-file "$tmp/wrong" --require \
		--quiet -- "${far_prog[@]}" >"$logs/run-wrong.log" 2>&1 &&
		fail "dsm-run with a wrong --registry-password-file ran"
	grep -qF "Permission denied) and DSM_REQUIRE=1" "$logs/run-wrong.log" ||
		fail "dsm-run with a wrong password says: $(tail -3 "$logs/run-wrong.log")"
fi

echo "--- redis restarted: the server logs in again"
# first with another password: the server must say so, and keep serving.
# It retries once a heartbeat (1 s); 15 s leaves room for a loaded machine
# (5 s was missed once, with a second test suite building beside it).
stop_redis
start_redis "$port" "$tmp/other.conf"
for _ in $(seq 150); do
	grep -qF "password refused" "$logs/server.log" && break
	sleep 0.1
done
grep -qF "registry $url: password refused; check --registry-password-file" "$logs/server.log" ||
	fail "server did not say a restarted redis refused its password: $(tail -3 "$logs/server.log")"
kill -0 $srv 2>/dev/null || fail "the server exited when redis refused its password"
stop_redis
start_redis "$port" "$tmp/redis.conf"
back=0
for _ in $(seq 150); do [ "$(listed)" = 1 ] && { back=1; break; }; sleep 0.1; done
[ $back = 1 ] || fail "server not registered again 15 s after redis restarted: $(tail -3 "$logs/server.log")"

kill -TERM $srv
wait $srv 2>/dev/null
stop_redis
if grep -rlF -- "$pw" "$logs"; then
	fail "the password appears in the output above"
fi
[ $failed = 0 ] && echo "registry_auth: ok"
exit $failed
