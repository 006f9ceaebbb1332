#!/usr/bin/env bash
# A local dsm cluster on loopback: one redis-server as the registry and
# SERVERS dsm-servers registered in it.
#   deploy/cluster.sh up|down|status|restart-redis
#     up             start redis and the servers, wait until every server is
#                    in `dsmctl servers`, print the variables to export
#                    (stdout; messages go to stderr, so eval "$(... up)"
#                    works); a cluster already up is left as it is
#     down           SIGTERM the servers (SIGKILL after 10 s), stop redis;
#                    nothing running is not an error
#     status         `dsmctl status` of the cluster, and its exit status
#     restart-redis  stop and start redis alone, on the same port and
#                    password, empty: the servers must register again by
#                    themselves
# Knobs (environment): SERVERS (default 2), CAPACITY per server (2G),
# REDIS_PORT (7379, not 6379: leaves a system redis alone), BASE_PORT (first
# server's port, 7400), CLUSTER (default), RUN_DIR ($top/run/cluster: logs,
# pid files), BUILD (build directory, $top/build), METRICS_PORT (unset:
# none; else server i serves Prometheus metrics on port METRICS_PORT+i-1,
# dsm-server --metrics).  down, status and restart-redis use the settings
# `up` recorded in RUN_DIR.
# Everything listens on 127.0.0.1 only.  Servers and clients share a secret
# made in RUN_DIR/secret (mode 0600), so only members get in; redis wants
# the password made in RUN_DIR/redis.pass (mode 0600), so only they, and
# whoever holds that file, read or write the registry.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
SERVERS=${SERVERS:-2}
CAPACITY=${CAPACITY:-2G}
REDIS_PORT=${REDIS_PORT:-7379}
BASE_PORT=${BASE_PORT:-7400}
CLUSTER=${CLUSTER:-default}
RUN_DIR=${RUN_DIR:-$top/run/cluster}
BUILD=${BUILD:-$top/build}
METRICS_PORT=${METRICS_PORT:-}
host=127.0.0.1
start_timeout=20   # seconds for every server to appear in the registry
stop_timeout=10    # seconds servers get to say goodbye before SIGKILL

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

# The settings a cluster was started with, so that down, status and
# restart-redis act on that cluster whatever the environment says now.
load_env() {
	if [ -f "$RUN_DIR/cluster.env" ]; then
		# shellcheck source=/dev/null
		. "$RUN_DIR/cluster.env"
	fi
	registry=redis://$host:$REDIS_PORT
}

save_env() {
	printf 'REDIS_PORT=%q\nCLUSTER=%q\nBASE_PORT=%q\nSERVERS=%q\nBUILD=%q\n' \
		"$REDIS_PORT" "$CLUSTER" "$BASE_PORT" "$SERVERS" "$BUILD" \
		>"$RUN_DIR/cluster.env"
}

# Whether process pid is alive and runs prog.  Checking the name keeps a
# stale pid file, whose pid now belongs to someone else, from sending them
# signals; a zombie has no command line and counts as dead.
runs() {
	local pid=$1 prog=$2
	[[ $pid =~ ^[0-9]+$ ]] &&
		tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$prog"
}

# Whether pid is a process that has not exited (a zombie has).
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]
}

# The pid in pidfile if that process is alive and runs prog.
live_pid() {
	local pid
	[ -s "$1" ] && pid=$(cat "$1") && runs "$pid" "$2" && echo "$pid"
}

# The servers' pid files, in pidfiles (an array: RUN_DIR may hold spaces).
list_pidfiles() {
	local f
	pidfiles=()
	for f in "$RUN_DIR"/server-*.pid; do
		[ -e "$f" ] && pidfiles+=("$f")
	done
	return 0
}

# redis-cli, logged in.  REDISCLI_AUTH, not -a: an argument shows in ps.
rcli() {
	REDISCLI_AUTH=$(cat "$RUN_DIR/redis.pass") redis-cli -h $host -p "$REDIS_PORT" "$@"
}

redis_ping() {
	[ "$(rcli ping 2>/dev/null)" = PONG ]
}

# Any redis at all on the port: one that wants another password answers
# PING with an error, but answers.
redis_answers() {
	[ -n "$(redis-cli -h $host -p "$REDIS_PORT" ping 2>/dev/null)" ]
}

need_tools() {
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		die "redis-server and redis-cli are needed (deploy/install-deps.sh installs them)"
	fi
	if ! [ -x "$BUILD/server/dsm-server" ] || ! [ -x "$BUILD/ctl/dsmctl" ]; then
		die "no dsm-server or dsmctl under $BUILD: build first (deploy/build.sh)"
	fi
}

# ---- redis ------------------------------------------------------------------

start_redis() {
	local pid
	if redis_answers; then
		die "something already answers on $host:$REDIS_PORT; set REDIS_PORT to a free port"
	fi
	rm -f "$RUN_DIR/redis.pid"
	# the password from a config file, not the command line (ps); an
	# index of live memory, nothing to keep: no RDB, no AOF
	(umask 077 && printf 'requirepass "%s"\n' "$(cat "$RUN_DIR/redis.pass")" \
		>"$RUN_DIR/redis.conf")
	redis-server "$RUN_DIR/redis.conf" --bind $host --port "$REDIS_PORT" --protected-mode yes \
		--save '' --appendonly no --dir "$RUN_DIR" \
		--logfile "$RUN_DIR/redis.log" --pidfile "$RUN_DIR/redis.pid" \
		--daemonize yes ||
		die "redis-server did not start; see $RUN_DIR/redis.log"
	for _ in $(seq 50); do
		if redis_ping && pid=$(live_pid "$RUN_DIR/redis.pid" redis-server); then
			say "redis on $host:$REDIS_PORT (pid $pid, log $RUN_DIR/redis.log)"
			return 0
		fi
		sleep 0.1
	done
	tail -n 20 "$RUN_DIR/redis.log" >&2 2>/dev/null || true
	die "redis did not answer on $host:$REDIS_PORT within 5 s"
}

stop_redis() {
	local pid
	if ! pid=$(live_pid "$RUN_DIR/redis.pid" redis-server); then
		rm -f "$RUN_DIR/redis.pid"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 100); do
		runs "$pid" redis-server || break
		sleep 0.1
	done
	if runs "$pid" redis-server; then
		say "redis (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$RUN_DIR/redis.pid"
	say "redis stopped"
}

# ---- servers -----------------------------------------------------------------

# The cluster's shared secret: servers and clients prove they know it when
# they connect (docs/design.md, "Security").  Made once per RUN_DIR, mode
# 0600 from the start (umask), and kept across up/down.
make_secret() {
	[ -s "$RUN_DIR/secret" ] && return 0
	(umask 077 && head -c 32 /dev/urandom | base64 >"$RUN_DIR/secret.tmp" &&
		mv "$RUN_DIR/secret.tmp" "$RUN_DIR/secret")
}

# Redis's password (requirepass), made and kept like the secret: so that
# another user of this machine can neither read the registry nor list
# false servers in it.  Hex, so that it needs no quoting anywhere.
make_redis_pass() {
	[ -s "$RUN_DIR/redis.pass" ] && return 0
	(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' \
		>"$RUN_DIR/redis.pass.tmp" && echo >>"$RUN_DIR/redis.pass.tmp" &&
		mv "$RUN_DIR/redis.pass.tmp" "$RUN_DIR/redis.pass")
}

# setsid: a server belongs to the cluster, not to the shell that ran `up`;
# Ctrl-C there must not reach it.  Not a group leader here, setsid execs
# in place, so $! is the server's own pid once it has exec'd: wait for that,
# or a pid file could name a process that is not dsm-server (yet), which
# live_pid and so `down` would leave alone.
start_server() {
	local i=$1 port pid metrics=()
	port=$((BASE_PORT + i - 1))
	[ -z "$METRICS_PORT" ] ||
		metrics=(--metrics "$host:$((METRICS_PORT + i - 1))")
	setsid "$BUILD/server/dsm-server" --listen "$host:$port" \
		--capacity "$CAPACITY" --registry "$registry" \
		--cluster "$CLUSTER" --secret-file "$RUN_DIR/secret" \
		--registry-password-file "$RUN_DIR/redis.pass" "${metrics[@]}" \
		</dev/null >/dev/null \
		2>"$RUN_DIR/server-$i.log" &
	pid=$!
	for _ in $(seq 200); do
		runs "$pid" dsm-server || ! alive "$pid" && break
		sleep 0.01
	done
	echo "$pid" >"$RUN_DIR/server-$i.pid"
}

# Each server's address in `dsmctl servers`, or its log tail and failure.
wait_servers() {
	local deadline=$((SECONDS + start_timeout)) listed i missing
	while :; do
		listed=$("$BUILD/ctl/dsmctl" --registry "$registry" \
			--registry-password-file "$RUN_DIR/redis.pass" \
			--cluster "$CLUSTER" servers 2>/dev/null || true)
		missing=""
		for i in $(seq "$SERVERS"); do
			grep -qwF "$host:$((BASE_PORT + i - 1))" <<<"$listed" ||
				missing+=" $i"
		done
		[ -z "$missing" ] && return 0
		for i in $missing; do
			live_pid "$RUN_DIR/server-$i.pid" dsm-server >/dev/null ||
				server_failed "$i" "exited"
		done
		[ $SECONDS -lt $deadline ] ||
			server_failed "${missing# }" "is not in the registry after ${start_timeout} s"
		sleep 0.2
	done
}

server_failed() {
	local i=${1%% *}
	say "server $i ($host:$((BASE_PORT + i - 1))) $2; the end of $RUN_DIR/server-$i.log:"
	tail -n 20 "$RUN_DIR/server-$i.log" >&2 || true
	say "stopping what was started"
	do_down
	exit 1
}

stop_servers() {
	local f pid pids=() deadline
	list_pidfiles
	for f in "${pidfiles[@]}"; do
		if pid=$(live_pid "$f" dsm-server); then
			pids+=("$pid")
			kill -TERM "$pid" 2>/dev/null || true
		fi
	done
	deadline=$((SECONDS + stop_timeout))
	for pid in "${pids[@]}"; do
		while runs "$pid" dsm-server; do
			if [ $SECONDS -ge $deadline ]; then
				say "server pid $pid still running after ${stop_timeout} s: SIGKILL"
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.1
		done
	done
	rm -f "${pidfiles[@]}"
	[ ${#pids[@]} -eq 0 ] || say "stopped ${#pids[@]} dsm-server(s)"
}

# ---- commands ------------------------------------------------------------------

# What of a cluster in RUN_DIR is running: "none", "all" or "some".
running() {
	local f n=1 up=0
	live_pid "$RUN_DIR/redis.pid" redis-server >/dev/null && up=1
	list_pidfiles
	for f in "${pidfiles[@]}"; do
		n=$((n + 1))
		live_pid "$f" dsm-server >/dev/null && up=$((up + 1))
	done
	if [ $up -eq 0 ]; then echo none
	elif [ $up -eq $n ]; then echo all
	else echo some
	fi
}

# Clients find the servers through the registry; DSM_SERVERS is left
# unset on purpose, since an explicit server list would override it.
print_exports() {
	echo "export DSM_REGISTRY=$registry DSM_CLUSTER=$CLUSTER DSM_SECRET_FILE=$RUN_DIR/secret DSM_REGISTRY_PASSWORD_FILE=$RUN_DIR/redis.pass"
	echo "unset DSM_SERVERS"
}

do_up() {
	local i
	need_tools
	[[ $SERVERS =~ ^[1-9][0-9]*$ ]] || die "SERVERS=$SERVERS: want a positive number"
	mkdir -p "$RUN_DIR"
	case $(running) in
	all)
		load_env
		say "already up ($RUN_DIR): redis on $host:$REDIS_PORT, cluster $CLUSTER; not starting another"
		print_exports
		return 0 ;;
	some)
		die "partly running in $RUN_DIR; run '$0 down' first" ;;
	esac
	registry=redis://$host:$REDIS_PORT
	list_pidfiles
	rm -f "${pidfiles[@]}" # stale: nothing runs
	save_env
	make_secret
	make_redis_pass
	start_redis
	for i in $(seq "$SERVERS"); do start_server "$i"; done
	wait_servers
	say "$SERVERS server(s) of $CAPACITY in cluster $CLUSTER on $host:$BASE_PORT..$((BASE_PORT + SERVERS - 1)) (logs in $RUN_DIR)"
	[ -z "$METRICS_PORT" ] ||
		say "metrics at http://$host:PORT/metrics, PORT $METRICS_PORT..$((METRICS_PORT + SERVERS - 1))"
	print_exports
}

do_down() {
	stop_servers
	stop_redis
}

case ${1:-} in
up) do_up ;;
down) load_env; do_down ;;
status)
	load_env
	[ -x "$BUILD/ctl/dsmctl" ] || die "no dsmctl under $BUILD: build first (deploy/build.sh)"
	exec "$BUILD/ctl/dsmctl" --registry "$registry" --cluster "$CLUSTER" \
		--registry-password-file "$RUN_DIR/redis.pass" status ;;
restart-redis)
	load_env
	live_pid "$RUN_DIR/redis.pid" redis-server >/dev/null ||
		die "no redis of ours running in $RUN_DIR; use '$0 up'"
	stop_redis
	start_redis ;;
*)
	echo "usage: $0 up|down|status|restart-redis" >&2
	exit 2 ;;
esac
