#!/usr/bin/env bash
# dsm-server's command line: --help succeeds, and every malformed option is
# refused before anything starts, with exit status 2 and a message that
# names the option.
#   test_server_cli.sh PATH_TO_DSM_SERVER
set -uo pipefail
server=$1
failed=0

# expect STATUS PATTERN ARGS...: run the server, check status and stderr.
expect() {
	local want=$1 pattern=$2 out rc
	shift 2
	out=$(timeout 10 "$server" "$@" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" != "$want" ] || ! grep -q -- "$pattern" <<<"$out"; then
		echo "FAIL: dsm-server $*: exit $rc (want $want), stderr:" \
		     "'$out' (want /$pattern/)"
		failed=1
	fi
}

help=$(timeout 10 "$server" --help) || { echo "FAIL: --help exited $?"; failed=1; }
grep -q -- "--poll-us" <<<"$help" || { echo "FAIL: --help lacks --poll-us"; failed=1; }

ok=(--listen 127.0.0.1:0 --capacity 16M)
expect 2 "--listen HOST:PORT is required" --capacity 16M
expect 2 "--capacity SIZE is required" --listen 127.0.0.1:0
expect 2 "bad --capacity '4097'" --listen 127.0.0.1:0 --capacity 4097
expect 2 "bad --capacity 'lots'" --listen 127.0.0.1:0 --capacity lots
expect 2 "bad --poll-us 'x'" "${ok[@]}" --poll-us x
expect 2 "bad --poll-us '-5'" "${ok[@]}" --poll-us -5
expect 2 "bad --poll-us '10001'" "${ok[@]}" --poll-us 10001
expect 2 "bad --server-id '4294967296'" "${ok[@]}" --server-id 4294967296
expect 2 "unknown log level 'loud'" "${ok[@]}" --log loud
expect 2 "bad --hugepages 'yes': want auto, on or off" "${ok[@]}" --hugepages yes
# far more huge pages than any machine here reserves: a clear refusal
expect 1 "on hugetlb pages: 524288 of 2 MiB needed" --listen 127.0.0.1:0 \
	--capacity 1T --hugepages on
expect 2 "bad --transport 'ib': want tcp, rdma or both" "${ok[@]}" --transport ib
# RDMA alone where there is none (the machines running this suite have no
# RDMA device; the multinode tests cover the rest)
if [ -z "$(ls /sys/class/infiniband 2>/dev/null)" ]; then
	expect 1 "--transport rdma: this machine has no RDMA device" "${ok[@]}" --transport rdma
fi
grep -q -- "--transport" <<<"$help" || { echo "FAIL: --help lacks --transport"; failed=1; }
expect 2 "unknown option '--bogus'" "${ok[@]}" --bogus
expect 2 "unknown option '-x' in '-xh'" "${ok[@]}" -xh
expect 2 "--poll-us needs a value" "${ok[@]}" --poll-us
expect 2 "unexpected argument 'extra'" "${ok[@]}" extra
expect 2 "--cluster and --advertise need --registry" "${ok[@]}" --cluster c
expect 2 "bad cluster name 'a b'" "${ok[@]}" --registry redis://127.0.0.1:1 --cluster "a b"
# Redis down at start: a clear error naming the address, exit 1
expect 1 "cannot reach the registry at redis://127.0.0.1:1" "${ok[@]}" --registry redis://127.0.0.1:1
expect 2 "bad --registry 'redis://x:port'" "${ok[@]}" --registry "redis://x:port"
expect 2 "bad --registry 'http://x'" "${ok[@]}" --registry "http://x"
# a password in a bad URL is not repeated back
expect 2 "bad --registry 'redis://:\*\*\*@x:port'" "${ok[@]}" --registry "redis://:hunter2@x:port"
expect 2 "--registry-password-file needs --registry" "${ok[@]}" --registry-password-file /dev/null
grep -q -- "--registry-password-file" <<<"$help" ||
	{ echo "FAIL: --help lacks --registry-password-file"; failed=1; }
# the limits: positive integers in range
expect 2 "bad --max-connections '0': want an integer from 1 to" "${ok[@]}" --max-connections 0
expect 2 "bad --max-handshakes 'x': want an integer from 1 to" "${ok[@]}" --max-handshakes x
expect 2 "bad --handshake-timeout-ms '0': want an integer from 1 to 3600000" "${ok[@]}" --handshake-timeout-ms 0
expect 2 "bad --tcp-timeout-ms '999': want an integer from 1000 to 3600000" "${ok[@]}" --tcp-timeout-ms 999
expect 2 "bad --max-regions '-1': want an integer from 1 to" "${ok[@]}" --max-regions -1
expect 2 "bad --max-client-sessions '0': want an integer from 1 to" "${ok[@]}" --max-client-sessions 0
# the secret file: private, long enough, readable
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 32 /dev/urandom | base64 >"$tmp/secret"
chmod 644 "$tmp/secret"
expect 1 "may be read by others (mode 0644): chmod 600" "${ok[@]}" --secret-file "$tmp/secret"
expect 1 "cannot read secret file $tmp/none" "${ok[@]}" --secret-file "$tmp/none"
# the metrics endpoint's address; one already taken is a clear error
expect 2 "bad --metrics 'x': want PORT or HOST:PORT" "${ok[@]}" --metrics x
expect 2 "bad --metrics '65536': want PORT or HOST:PORT" "${ok[@]}" --metrics 65536
expect 2 "--metrics needs a value" "${ok[@]}" --metrics
grep -q -- "--metrics \[HOST:\]PORT" <<<"$help" || { echo "FAIL: --help lacks --metrics"; failed=1; }
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(30)' >"$tmp/busy" &
holder=$!
for _ in $(seq 50); do [ -s "$tmp/busy" ] && break; sleep 0.1; done
busy=$(cat "$tmp/busy")
expect 1 "cannot serve metrics on 127.0.0.1:$busy: address already in use" \
	"${ok[@]}" --metrics "127.0.0.1:$busy"
kill "$holder"
# without a secret, loopback only
expect 1 "refusing to listen on 0.0.0.0:0 without --secret-file" --listen 0.0.0.0:0 --capacity 16M
# a wildcard address means nothing to clients
chmod 600 "$tmp/secret"
expect 1 "say which address clients should use with --advertise" \
	--listen 0.0.0.0:0 --capacity 16M --registry redis://127.0.0.1:1 \
	--secret-file "$tmp/secret"

if [ $failed = 0 ]; then
	echo "server_cli: ok"
fi
exit $failed
