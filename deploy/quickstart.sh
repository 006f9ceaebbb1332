#!/usr/bin/env bash
# The README's one command: install what is missing, build, start a memory
# server on loopback, and run the far-memory hash table example with a local
# budget far below its working set, ending with the stats it produced.
#   deploy/quickstart.sh
# Knobs: MEM (table size, default 1G), LOCAL_MEM (resident budget, default
# 64M), CAPACITY (server pool, default 4G), LOOKUPS, THREADS.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
MEM=${MEM:-1G}
LOCAL_MEM=${LOCAL_MEM:-64M}
CAPACITY=${CAPACITY:-4G}
LOOKUPS=${LOOKUPS:-200000}
THREADS=${THREADS:-2}

deploy/install-deps.sh
echo "quickstart: building (build/)"
deploy/build.sh build

run="$top/run/quickstart"
mkdir -p "$run"
rm -f "$run/port"
build/server/dsm-server --listen 127.0.0.1:0 --capacity "$CAPACITY" \
  --port-file "$run/port" 2>"$run/server.log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$run/port" ] && break; sleep 0.1; done
[ -s "$run/port" ] || { echo "quickstart: server did not start:" >&2; cat "$run/server.log" >&2; exit 1; }
addr="127.0.0.1:$(cat "$run/port")"
echo "quickstart: memory server on $addr (capacity $CAPACITY, log $run/server.log)"
echo "quickstart: hash table of $MEM in far memory, $LOCAL_MEM resident"
echo

DSM_SERVERS=$addr DSM_LOCAL_MEM=$LOCAL_MEM \
  build/examples/dsm-example-kvstore --mem "$MEM" --lookups "$LOOKUPS" --threads "$THREADS"

kill -USR1 $server; sleep 0.2
echo
echo "server: $(tail -n 1 "$run/server.log")"
