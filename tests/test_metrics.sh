#!/usr/bin/env bash
# dsm-server --metrics and dsmctl stats --prometheus against a real
# cluster: deploy/cluster.sh brings up a redis and one dsm-server serving
# metrics (METRICS_PORT), on loopback ports of this test's own.  Every
# scrape is parsed by tests/prom_check.py, which holds it to the
# exposition format (HELP and TYPE first, names, label escapes, one group
# per family, cumulative histograms whose +Inf is their _count), and by
# promtool's linter where Debian's prometheus package is installed.
#
# A client (metrics_load) writes and reads back a region eight times its
# resident budget, so pages are written back and fetched; the server's
# pages_written and pages_read counters must move by exactly what the
# client's own dsm_stats says it moved, and every request counted must be
# timed.  The endpoint's safeguards: 404, 405, 400 for malformed and
# oversized requests, slow peers closed after the timeout (shortened here
# to TIMEOUT_MS), connections past the cap closed at once with
# descriptors and memory bounded while the server goes on serving the
# client (its second round, counted exactly again).  Then, with a second
# client (hold_region), `dsmctl stats --prometheus` must list each by
# its labels with the counts the registry holds for it.  Last, the
# server stops promptly on SIGTERM with a metrics connection open.
#   test_metrics.sh BUILD_DIR      (exit 77: redis-server is not installed)
set -uo pipefail
build=$1
top=$(cd "$(dirname "$0")/.." && pwd)
dsmctl=$build/ctl/dsmctl
prom=$top/tests/prom_check.py
failed=0

fail() { echo "FAIL: $*"; failed=1; }
fatal() { echo "FATAL: $*"; exit 1; }

export SERVERS=1 CAPACITY=64M CLUSTER=metrics-$$
capacity=$((64 << 20))
# shellcheck source=cluster_env.sh
. "$top/tests/cluster_env.sh"
export METRICS_PORT=$((BASE_PORT + 1))
metrics=127.0.0.1:$METRICS_PORT
TIMEOUT_MS=4000 # long enough that "at once" means something on a loaded
                # machine under ThreadSanitizer (128 refusals took over 1.2 s)
CAP=16 # METRICS_MAX_CONNS
export DSM_TEST_METRICS_TIMEOUT_MS=$TIMEOUT_MS
region_pages=2048 budget_pages=256 # metrics_load's

# scrape NAME: the endpoint's text into $tmp/NAME.prom, checked.
scrape() {
	python3 "$prom" scrape "$metrics" >"$tmp/$1.prom" ||
		{ fail "scrape $1 failed"; return 1; }
	python3 "$prom" check "$tmp/$1.prom" ||
		{ fail "scrape $1 breaks the exposition format"; return 1; }
}
# val NAME METRIC [LABEL=VALUE...] [--sum]: a sample of scrape NAME.
val() { python3 "$prom" value "$tmp/$1.prom" "${@:2}"; }

# ---- up --------------------------------------------------------------------

echo "cluster: redis on $REDIS_PORT, server on $BASE_PORT, metrics on $METRICS_PORT"
"$top/deploy/cluster.sh" up >/dev/null 2>"$tmp/up.err" ||
	fatal "cluster.sh up failed: $(cat "$tmp/up.err")"
server_pid=$(cat "$RUN_DIR/server-1.pid")
all_pids+=("$(cat "$RUN_DIR/redis.pid")" "$server_pid")
server_id=$("$dsmctl" --json servers | json_get 'd[0]["id"]')

scrape before || fatal "no metrics to start from"
[ "$(val before dsm_server_capacity_bytes)" = $capacity ] ||
	fail "capacity: $(val before dsm_server_capacity_bytes), want $capacity"
[ "$(val before dsm_server_info server_id="$server_id")" = 1 ] ||
	fail "dsm_server_info does not name server $server_id"
[ "$(val before dsm_server_sessions)" = 0 ] || fail "sessions before any client"
[ "$(val before dsm_server_draining)" = 0 ] || fail "draining before any drain"
start=$(val before dsm_server_start_time_seconds)
python3 -c "import sys, time; sys.exit(not time.time() - 60 < $start <= time.time())" ||
	fail "start time $start is not within the last minute"

# ---- a client moving a known number of pages ---------------------------------

mkfifo "$tmp/load.in"
"$build/tests/metrics_load" <"$tmp/load.in" >"$tmp/load.out" 2>"$tmp/load.err" &
load_pid=$!
all_pids+=("$load_pid")
exec 7>"$tmp/load.in" # its stdin: a line asks for a round, EOF ends it

# wait_round N: metrics_load's line for round N, as "FETCHED WRITTEN".
wait_round() {
	local line
	wait_for 120 grep -q "^round $1 " "$tmp/load.out" ||
		fatal "metrics_load printed no round $1: $(cat "$tmp/load.err")"
	line=$(grep "^round $1 " "$tmp/load.out")
	[[ $line =~ ^round\ $1\ fetched\ ([0-9]+)\ written_back\ ([0-9]+)$ ]] ||
		fatal "metrics_load: '$line'"
	echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}

# counted NAME FETCHED WRITTEN: the server's pages_read and pages_written
# moved by exactly the client's counts since scrape "before" (a last
# write-back may still be on its way: a few tries).
counted() {
	local r w
	for _ in $(seq 50); do
		scrape "$1" || return 1
		r=$(($(val "$1" dsm_server_pages_read_total) - $(val before dsm_server_pages_read_total)))
		w=$(($(val "$1" dsm_server_pages_written_total) - $(val before dsm_server_pages_written_total)))
		[ "$r $w" = "$2 $3" ] && return 0
		sleep 0.1
	done
	fail "$1: the server counted $r pages read, $w written; the client $2 fetched, $3 written back"
}

read -r fetched written < <(wait_round 1)
echo "round 1: the client fetched $fetched pages, wrote back $written"
# not vacuous: all of it was written back, the part not resident fetched
[ "$written" -ge $region_pages ] || fail "the client wrote back only $written pages"
[ "$fetched" -ge $((region_pages - budget_pages)) ] || fail "the client fetched only $fetched pages"
counted round1 "$fetched" "$written"
[ "$(val round1 dsm_server_sessions)" = 1 ] || fail "sessions with one client: $(val round1 dsm_server_sessions)"
[ "$(val round1 dsm_server_used_bytes)" -ge $((region_pages * 4096)) ] ||
	fail "used bytes with the client's region: $(val round1 dsm_server_used_bytes)"
[ "$(val round1 dsm_server_regions)" -ge 1 ] || fail "no region counted"
for t in write read alloc hello; do
	[ "$(val round1 dsm_server_requests_total type=$t status=ok)" -ge 1 ] ||
		fail "no $t counted as ok"
	[ "$(val round1 dsm_server_request_duration_seconds_count type=$t)" -ge 1 ] ||
		fail "no $t timed"
done
python3 "$prom" timed "$tmp/round1.prom" || fail "requests counted and timed disagree"

# ---- the endpoint's safeguards, the client served meanwhile ----------------

python3 "$prom" hostile "$metrics" "$server_pid" $CAP $TIMEOUT_MS \
	"$tmp/load.in" "$tmp/load.out" || fail "the endpoint's safeguards"
read -r fetched written < <(wait_round 2)
echo "round 2: the client has fetched $fetched pages, written back $written"
counted round2 "$fetched" "$written"
python3 "$prom" timed "$tmp/round2.prom" || fail "requests counted and timed disagree"

# ---- dsmctl stats --prometheus, with a second client --------------------------

# A second client, holding 8 MiB written: each is listed, with its labels.
# (Its pages go to the same server: after the counting above.)
"$build/tests/hold_region" >"$tmp/hold.out" 2>"$tmp/hold.err" &
hold_pid=$!
trap 'kill -KILL "$hold_pid" 2>/dev/null; cleanup' EXIT
wait_for 60 grep -q holding "$tmp/hold.out" ||
	fatal "hold_region did not start: $(cat "$tmp/hold.err")"

# published PID WRITTEN: the client's record in the registry says it wrote
# back WRITTEN pages (clients publish with their lease, every second)
published() {
	"$dsmctl" --json stats | python3 -c '
import json, sys
c = [c for c in json.load(sys.stdin)["clients"] if c["pid"] == int(sys.argv[1])]
sys.exit(not (c and c[0]["pages_written_back"] >= int(sys.argv[2])))' "$1" "$2"
}
wait_for 10 published "$load_pid" "$written" ||
	fail "metrics_load's counters never reached the registry"
# hold_region wrote 8 MiB with 1 MiB resident: at least 7 MiB written back
wait_for 10 published "$hold_pid" $((7 << 8)) ||
	fail "hold_region's counters never reached the registry"

# client_id PID: its id, as dsmctl clients lists it
client_id() { "$dsmctl" --json clients | json_get "[c['id'] for c in d if c['pid'] == $1][0]"; }
# held_back: hold_region's pages written back, as the registry has them
held_back() {
	"$dsmctl" --json stats | json_get "[c['pages_written_back'] for c in d['clients'] if c['pid'] == $hold_pid][0]"
}
# A write-back of hold_region's may still be on its way: the registry's
# count the same before and after dsmctl's output.
for _ in $(seq 5); do
	held=$(held_back)
	"$dsmctl" stats --prometheus >"$tmp/clients.prom" 2>"$tmp/ctl.err"
	rc=$?
	[ "$(held_back)" = "$held" ] && break
	sleep 1
done
if [ $rc = 0 ]; then
	python3 "$prom" check "$tmp/clients.prom" || fail "dsmctl stats --prometheus breaks the format"
	who=(cluster="$CLUSTER" client="$(client_id "$load_pid")" host="$(hostname)" pid="$load_pid")
	[ "$(val clients dsm_client_pages_written_back_total "${who[@]}")" = "$written" ] ||
		fail "dsmctl stats --prometheus: metrics_load's pages written back, want $written"
	[ "$(val clients dsm_client_pages_fetched_total "${who[@]}")" = "$fetched" ] ||
		fail "dsmctl stats --prometheus: metrics_load's pages fetched, want $fetched"
	who=(cluster="$CLUSTER" client="$(client_id "$hold_pid")" host="$(hostname)" pid="$hold_pid")
	[ "$(val clients dsm_client_pages_written_back_total "${who[@]}")" = "$held" ] ||
		fail "dsmctl stats --prometheus: hold_region's pages written back, want $held"
	[ "$(val clients dsm_clients cluster="$CLUSTER")" = 2 ] || fail "dsm_clients is not 2"
	[ "$(grep -c '^dsm_client_fault_latency_p99_seconds{' "$tmp/clients.prom")" = 2 ] ||
		fail "not two clients' p99 fault latency"
else
	fail "dsmctl stats --prometheus: exit $rc: $(cat "$tmp/ctl.err")"
fi
kill -KILL "$hold_pid"
wait "$hold_pid" 2>/dev/null
for args in "stats --prometheus --json" "--json stats --prometheus" \
	    "stats --prometheus --watch" "servers --prometheus"; do
	# shellcheck disable=SC2086 # the words of args
	"$dsmctl" $args >/dev/null 2>&1
	rc=$?
	[ $rc = 2 ] || fail "dsmctl $args: exit $rc, want 2"
done

# Prometheus's own linter, where installed (Debian's prometheus package):
# naming conventions besides the grammar.
if command -v promtool >/dev/null; then
	for f in round2 clients; do
		promtool check metrics <"$tmp/$f.prom" >"$tmp/lint" 2>&1 ||
			fail "promtool check metrics $f: $(cat "$tmp/lint")"
	done
else
	echo "SKIP: promtool lint: promtool not installed (Debian's prometheus)"
fi

# ---- the client leaves, the server stops -------------------------------------

exec 7>&- # EOF: metrics_load ends
wait "$load_pid" || fail "metrics_load exited $?: $(cat "$tmp/load.err")"
sessions_gone() { scrape gone && [ "$(val gone dsm_server_sessions)" = 0 ]; }
wait_for 10 sessions_gone || fail "sessions after the client left: $(val gone dsm_server_sessions)"
[ "$(val gone dsm_server_used_bytes)" = 0 ] || fail "used bytes after the client left"

# a metrics connection held open must not keep the server from stopping
exec 8<>/dev/tcp/127.0.0.1/$METRICS_PORT
kill -TERM "$server_pid"
wait_for 5 eval '! kill -0 "$server_pid" 2>/dev/null' ||
	fail "the server did not stop within 5 s of SIGTERM with a metrics connection open"
exec 8<&-
grep -E "Sanitizer|runtime error" "$RUN_DIR/server-1.log" &&
	fail "the sanitizers found something in the server"

[ $failed = 0 ] && echo "metrics: ok"
exit $failed
