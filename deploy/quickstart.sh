#!/usr/bin/env bash
# The README's one command: install what is missing, build, bring up a local
# cluster (redis as the registry and two memory servers, on loopback), and
# run the far-memory hash table example through it with a local budget far
# below its working set.  Shows `dsmctl status` while the table is live and
# once more at the end, after the example's own stats; then takes the
# cluster down.
#   deploy/quickstart.sh
# Knobs: MEM (table size, default 1G), LOCAL_MEM (resident budget, default
# 64M), SERVERS (default 2), CAPACITY (per server, default 2G), LOOKUPS,
# THREADS; REDIS_PORT and BASE_PORT as in deploy/cluster.sh.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
MEM=${MEM:-1G}
LOCAL_MEM=${LOCAL_MEM:-64M}
LOOKUPS=${LOOKUPS:-200000}
THREADS=${THREADS:-2}
export SERVERS=${SERVERS:-2} CAPACITY=${CAPACITY:-2G}
export RUN_DIR=$top/run/quickstart CLUSTER=quickstart

deploy/install-deps.sh
echo "quickstart: building (build/)"
deploy/build.sh build

deploy/cluster.sh down >/dev/null 2>&1 || true # a previous run's leftovers
eval "$(deploy/cluster.sh up)"
trap 'deploy/cluster.sh down >/dev/null 2>&1 || true' EXIT
dsmctl=build/ctl/dsmctl
echo "quickstart: cluster '$CLUSTER' up: registry $DSM_REGISTRY, $SERVERS servers of $CAPACITY (logs in $RUN_DIR)"
echo "quickstart: hash table of $MEM in far memory, $LOCAL_MEM resident"
echo

DSM_LOCAL_MEM=$LOCAL_MEM build/examples/dsm-example-kvstore \
	--mem "$MEM" --lookups "$LOOKUPS" --threads "$THREADS" &
kv=$!
# once the table's region is in the registry and the servers have
# published what they hold (they do every second), show the cluster
for _ in $(seq 50); do
	n=$("$dsmctl" --json regions 2>/dev/null |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null) || n=0
	[ "$n" -gt 0 ] && break
	sleep 0.2
done
sleep 1.5
echo
echo "quickstart: the cluster while the table is live (dsmctl status):"
"$dsmctl" status | sed 's/^/  /'
"$dsmctl" regions | sed 's/^/  /'
echo
wait $kv
sleep 1.2 # the servers' next heartbeat publishes what they hold now

echo
echo "quickstart: the cluster afterwards (dsmctl status):"
"$dsmctl" status
