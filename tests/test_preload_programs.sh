#!/usr/bin/env bash
# Real, unmodified programs from Debian packages under dsm-run, each with a
# local budget well below its working set.  Each one's output is compared
# byte for byte with a run without the shim, and its stats must show far
# memory really used (pages fetched and evicted > 0).
# Managed runtimes (node, java) must also show their heaps went far: at
# least half of it evicted, dsm-run's first line saying so, and they fail
# clearly with DSM_REQUIRE=1 and no server.  A perl of small strings
# (the C library's heap) has dsm-run note that its memory stayed local.
# A Go program (cgo) too, though Go drops pages behind the shim's back.
# A threaded C program of small blocks goes far with --threshold 16.
#   test_preload_programs.sh BUILD_DIR sort|python|redis|node|java|go|small
# Exit 77 (skipped) if the program is not installed, or in a sanitizer
# build (DSM_TEST_SANITIZED=1: the shim cannot be tested there, see
# docs/design.md, "Sanitizers").
set -uo pipefail
build=$1
what=$2
run=$build/preload/dsm-run
progs=$(dirname "$0")/programs # heap.js, Fill.java
server=$build/server/dsm-server

if [ "${DSM_TEST_SANITIZED:-0}" = 1 ]; then
	echo "SKIP: the shim replaces malloc, as the sanitizer runtime does; it cannot be tested under a sanitizer"
	exit 77
fi
need() {
	command -v "$1" >/dev/null || { echo "SKIP: $1 not installed (deploy/install-deps.sh)"; exit 77; }
}
need "$([ "$what" = python ] && echo /usr/bin/python3 || echo /usr/bin/sort)"
[ "$what" = redis ] && need redis-server && need redis-cli
[ "$what" = node ] && need node
[ "$what" = java ] && need java && need javac
[ "$what" = go ] && need go && need gcc

tmp=$(mktemp -d /tmp/dsm-preload-prog.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fail() { echo "FAIL: $*"; exit 1; }

"$server" --listen 127.0.0.1:0 --capacity 16G --port-file "$tmp/port" \
	2>"$tmp/server.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || fail "dsm-server did not start: $(cat "$tmp/server.log")"
unset DSM_REGISTRY DSM_REQUIRE LD_PRELOAD
far=("$run" --servers "127.0.0.1:$(cat "$tmp/port")" --stats-file "$tmp/stats")

# A counter summed over the processes of the run.
stat() { awk -F= -v k="$1" '$1 == k { s += $2 } END { print s + 0 }' "$tmp/stats"; }
check_paged() {
	local f e
	f=$(stat pages_fetched)
	e=$(stat pages_evicted)
	echo "$what: pages fetched $f, evicted $e, written back $(stat pages_written_back)"
	[ "$f" -gt 0 ] && [ "$e" -gt 0 ] || fail "$what: far memory not used (fetched $f, evicted $e)"
}
# evicted_at_least MIB: the heap went far, not a few buffers beside it
evicted_at_least() {
	local e
	e=$(stat pages_evicted)
	[ $((e / 256)) -ge "$1" ] ||
		fail "$what: only $((e / 256)) MiB evicted, want at least $1 (the heap stayed local?)"
}
# far_said MIB: dsm-run's first line says at least MIB of far memory and
# no note that the memory stayed local; far_said local: it has that note
far_said() {
	local line mib
	line=$(grep -m1 "^dsm-run: far memory: " "$tmp/err") ||
		fail "$what: dsm-run did not say how much went far: $(head -3 "$tmp/err")"
	echo "$line"
	if [ "$1" = local ]; then
		grep -q "^dsm-run: note: most of the program's memory stayed local" "$tmp/err" ||
			fail "$what: dsm-run did not say the memory stayed local"
		return
	fi
	mib=$(sed -E 's/^dsm-run: far memory: ([0-9.]+) (KiB|MiB|GiB).*/\1 \2/' <<<"$line" |
		awk '{ print int($1 * ($2 == "GiB" ? 1024 : $2 == "MiB" ? 1 : 1 / 1024)) }')
	[ "$mib" -ge "$1" ] || fail "$what: dsm-run says $mib MiB went far, want at least $1"
	! grep -q "^dsm-run: note:" "$tmp/err" || fail "$what: $(grep "^dsm-run: note:" "$tmp/err")"
}
# require_fails CMD...: with DSM_REQUIRE=1 and no server, an error, not a run
require_fails() {
	local rc=0
	"$run" --servers 127.0.0.1:1 --require --quiet -- "$@" >"$tmp/req.out" 2>"$tmp/req.err" || rc=$?
	[ $rc != 0 ] && grep -q "DSM_REQUIRE=1" "$tmp/req.err" ||
		fail "$what with DSM_REQUIRE=1 and no server: exit $rc: $(cat "$tmp/req.err")"
}

case $what in
sort)
	# ~10 MB of lines; sort's buffer (-S) and line table are larger
	# than the 4 MiB budget.
	/usr/bin/python3 -c '
import random
r = random.Random(7)
with open("'"$tmp"'/in", "w") as f:
    for i in range(250000):
        f.write("%016x %x %s\n" % (r.getrandbits(64), i, "z" * (i % 13)))
'
	LC_ALL=C sort -S 32M "$tmp/in" >"$tmp/plain" || fail "sort failed"
	LC_ALL=C "${far[@]}" --local-mem 4M -- sort -S 32M "$tmp/in" \
		>"$tmp/far" 2>"$tmp/err" || fail "sort under dsm-run: $(cat "$tmp/err")"
	cmp "$tmp/plain" "$tmp/far" || fail "sort output differs"
	# perl's ~300 MB of small strings come from the C library's heap
	# (brk), which the shim does not see: dsm-run says the memory
	# stayed local.  (python3's small objects do go far: its allocator
	# takes 1 MiB arenas with mmap.)
	if [ -x /usr/bin/perl ]; then
		"$run" --servers "127.0.0.1:$(cat "$tmp/port")" --local-mem 32M -- \
			/usr/bin/perl -e '@a = map { "x" x 40 } 1..3000000; print scalar(@a), "\n"' \
			>/dev/null 2>"$tmp/err" || fail "perl under dsm-run: $(cat "$tmp/err")"
		far_said local
	fi
	;;
python)
	# lists, bytearrays and dicts of ~150 MB, checksummed; budget 32 MiB.
	cat >"$tmp/work.py" <<'PY'
import hashlib, random
r = random.Random(3)
h = hashlib.sha256()
blobs = [bytearray(r.randbytes(1 << 20)) for _ in range(64)]
for b in blobs:
    b[::4096] = bytes(len(b[::4096]))
    h.update(b)
nums = [r.random() for _ in range(2_000_000)]
h.update(repr(sum(nums)).encode())
d = {i: str(i * 7919) for i in range(500_000)}
h.update(repr(sum(len(v) for v in d.values())).encode())
for b in reversed(blobs):
    h.update(hashlib.sha256(b).digest())
print(h.hexdigest(), len(nums), len(d))
PY
	/usr/bin/python3 "$tmp/work.py" >"$tmp/plain" || fail "python3 failed"
	"${far[@]}" --local-mem 32M -- /usr/bin/python3 "$tmp/work.py" \
		>"$tmp/far" 2>"$tmp/err" || fail "python3 under dsm-run: $(cat "$tmp/err")"
	cmp "$tmp/plain" "$tmp/far" || fail "python3 output differs: $(cat "$tmp/plain" "$tmp/far")"
	;;
redis)
	# 600 values of 300 KB (~180 MB) against a 32 MiB budget, loaded
	# through redis-cli --pipe; then the dataset's digest and every value.
	port_of() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
	load() { /usr/bin/python3 -c '
import sys
out = sys.stdout.buffer
for i in range(600):
    k = b"key:%d" % i
    v = (b"%07d" % i) * (300000 // 7)
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
'; }
	one_run() { # OUT [dsm-run args...]: load, digest, dump, shut down
		local out=$1 port
		shift
		port=$(port_of)
		"$@" redis-server --port "$port" --bind 127.0.0.1 --save '' \
			--appendonly no --enable-debug-command yes \
			--logfile "$tmp/redis.log" &
		local rp=$!
		pids+=($rp)
		for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
		load | redis-cli -p "$port" --pipe >"$tmp/pipe" || fail "load: $(cat "$tmp/pipe")"
		{
			redis-cli -p "$port" dbsize
			redis-cli -p "$port" debug digest
			for i in $(seq 0 37 599); do redis-cli -p "$port" get "key:$i" | sha256sum; done
		} >"$out"
		redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
		wait "$rp"
	}
	one_run "$tmp/plain" env
	one_run "$tmp/far" "${far[@]}" --local-mem 32M --
	[ "$(head -1 "$tmp/plain")" = 600 ] || fail "redis did not load the dataset"
	cmp "$tmp/plain" "$tmp/far" || fail "redis contents differ"
	;;
node)
	# V8 reserves its heap PROT_NONE and commits it with mprotect: a
	# heap of ~450 MB of objects, checksummed, with a budget of 64 MiB.
	node "$progs/heap.js" >"$tmp/plain" || fail "node failed"
	"${far[@]}" --local-mem 64M -- node "$progs/heap.js" \
		>"$tmp/far" 2>"$tmp/err" || fail "node under dsm-run: $(cat "$tmp/err")"
	cmp "$tmp/plain" "$tmp/far" || fail "node output differs: $(cat "$tmp/plain" "$tmp/far")"
	evicted_at_least 200
	far_said 200
	require_fails node -e 'console.log(1)'
	;;
java)
	# The JVM reserves the Java heap and commits it with mmap(MAP_FIXED):
	# 512 MB of arrays filled and summed, -Xmx1g, G1 then Parallel, with
	# a budget of 128 MiB.
	javac -d "$tmp" "$progs/Fill.java" || fail "javac failed"
	for gc in G1 Parallel; do
		java -Xmx1g -XX:+Use${gc}GC -cp "$tmp" Fill >"$tmp/plain" || fail "java ($gc) failed"
		"${far[@]}" --local-mem 128M -- java -Xmx1g -XX:+Use${gc}GC -cp "$tmp" Fill \
			>"$tmp/far" 2>"$tmp/err" || fail "java ($gc) under dsm-run: $(cat "$tmp/err")"
		cmp "$tmp/plain" "$tmp/far" || fail "java ($gc) output differs: $(cat "$tmp/plain" "$tmp/far")"
		echo "java ($gc): $(cat "$tmp/far")"
		far_said 400
	done
	evicted_at_least 400
	require_fails java -Xmx64m -cp "$tmp" Fill
	;;
go)
	# Go commits its heap with mmap through the C library (cgo) and
	# gives freed heap back with raw madvise calls the shim never sees
	# (design.md, "Reservations"): 400 MB kept live and checksummed with
	# a budget of 64 MiB, and heaps freed round after round, each given
	# back at once.  Both ways Go gives memory back: MADV_DONTNEED
	# (madvdontneed=1) and MADV_FREE (=0).  Go exits without exit
	# handlers, so its figures come from the shim's last snapshot.
	cp "$progs/gochurn/main.go" "$progs/gochurn/go.mod" "$tmp/" &&
		(cd "$tmp" && GOCACHE=$tmp/gocache GOFLAGS=-mod=mod CGO_ENABLED=1 \
			go build -o gochurn .) >"$tmp/err" 2>&1 || fail "go build: $(cat "$tmp/err")"
	"$tmp/gochurn" >"$tmp/plain" || fail "the Go program failed"
	for madv in 1 0; do
		: >"$tmp/stats"
		GODEBUG=madvdontneed=$madv timeout -k 10 300 "${far[@]}" --local-mem 64M -- \
			"$tmp/gochurn" >"$tmp/far" 2>"$tmp/err" ||
			fail "the Go program under dsm-run (madvdontneed=$madv): exit $?: $(cat "$tmp/err")"
		cmp "$tmp/plain" "$tmp/far" ||
			fail "Go output differs (madvdontneed=$madv): $(cat "$tmp/plain" "$tmp/far")"
		grep -q "^dsm-run: 1 process ended without exit handlers" "$tmp/err" ||
			fail "dsm-run did not take the Go process's snapshot: $(head -3 "$tmp/err")"
		echo "go (madvdontneed=$madv): $(head -1 "$tmp/far")"
		far_said 300
		evicted_at_least 300
	done
	require_fails "$tmp/gochurn"
	;;
small)
	# A threaded C program whose heap is 400 MB of small blocks: the C
	# library serves them from per-thread arenas it reserves and commits
	# with calls no preloaded library sees, so with the default
	# threshold nothing goes far, and dsm-run says so.  With
	# --threshold 16 the shim serves them itself, from slabs of far
	# memory, with a budget of 64 MiB.
	prog=$build/tests/small_threads
	"$prog" >"$tmp/plain" || fail "small_threads failed"
	"${far[@]}" --local-mem 64M -- "$prog" >"$tmp/far" 2>"$tmp/err" ||
		fail "small_threads under dsm-run: $(cat "$tmp/err")"
	cmp "$tmp/plain" "$tmp/far" || fail "small_threads output differs (default threshold)"
	grep -q "^dsm-run: no far-memory stats from the run: no process used far memory" "$tmp/err" ||
		fail "dsm-run did not say nothing went far: $(head -3 "$tmp/err")"
	: >"$tmp/stats"
	timeout -k 10 400 "${far[@]}" --threshold 16 --local-mem 64M -- "$prog" \
		>"$tmp/far" 2>"$tmp/err" ||
		fail "small_threads under dsm-run --threshold 16: exit $?: $(cat "$tmp/err")"
	cmp "$tmp/plain" "$tmp/far" ||
		fail "small_threads output differs: $(cat "$tmp/plain" "$tmp/far")"
	far_said 200
	evicted_at_least 200
	DSM_PRELOAD_THRESHOLD=16 require_fails "$prog" 1000
	;;
*)
	fail "unknown program $what"
	;;
esac
check_paged
echo "PASS: $what"
