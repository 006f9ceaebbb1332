#!/bin/bash
# room: test harness, guest side - the agent that runs vmctl's commands in
# a guest.  PID 1 of the guest once deploy/vm/init has set the root up; it
# runs in the host's own root (read-only over 9p), with the host's bash.
#   agent.sh ID CTL
# CTL is this guest's control directory on the read-write share:
#   CTL/queue/JOB   empty file: "run job JOB" (the host writes it last)
#   CTL/jobs/JOB/   argv, env, cwd (NUL-separated), mode (exec or spawn);
#                   the agent adds out, err, pid and, at the end, rc
#   CTL/ready       written once the guest can take jobs; CTL/failed if
#                   it never will
set -u
id=$1
ctl=$2

fail() {
	echo "vmctl-agent: guest $id: $*" | tee "$ctl/failed"
	exit 1   # PID 1 exits: the kernel panics and qemu stops (-no-reboot)
}

# ---- set up soft-RoCE ---------------------------------------------------
# The modules are loaded by init; the link is added here because "rdma"
# comes from the host's iproute2.
rdma link add rxe0 type rxe netdev eth0 || fail "rdma link add rxe0 failed"
for _ in $(seq 100); do
	[ -e /sys/class/infiniband/rxe0 ] && [ -e /dev/infiniband/uverbs0 ] &&
		[ -e /dev/infiniband/rdma_cm ] && break
	sleep 0.1
done
[ -e /dev/infiniband/uverbs0 ] || fail "no /dev/infiniband/uverbs0"
[ -e /dev/infiniband/rdma_cm ] || fail "no /dev/infiniband/rdma_cm"

# ---- jobs ---------------------------------------------------------------
# Nothing below forks an external program per job (no rm, no mv): under
# TCG every exec of a dynamically linked program read over 9p costs
# 50-200 ms, and the job's own command pays that once already.

# put FILE VALUE: one write() of "VALUE\n".  The host takes the file only
# once it ends in a newline, so it never reads half a number.
put() {
	printf '%s\n' "$2" >"$1"
}

run_job() {
	local d="$ctl/jobs/$1" mode cwd pid rc
	local -a argv envv

	mapfile -d '' -t argv <"$d/argv"
	mapfile -d '' -t envv <"$d/env"
	IFS= read -r -d '' cwd <"$d/cwd"
	read -r mode <"$d/mode"
	# Monitor mode puts the command in a process group of its own whose
	# id is its pid: "kill -- -PID" then ends it and all it started.
	set -m
	if [ "$mode" = spawn ]; then
		start_cmd >>"$d/out" 2>&1 </dev/null &
	else
		start_cmd >>"$d/out" 2>>"$d/err" </dev/null &
	fi
	pid=$!
	put "$d/pid" "$pid"
	wait "$pid"
	rc=$?
	put "$d/rc" "$rc"
}

# Runs in the job's subshell (argv, envv and cwd are run_job's locals).
start_cmd() {
	local kv
	cd -- "$cwd" 2>/dev/null || {
		echo "vmctl: guest $id: no directory $cwd here" \
			"(the guest has its own /tmp, /run and /var/tmp)" >&2
		exit 125
	}
	for kv in "${envv[@]}"; do
		export "${kv?}" || exit 125
	done
	if ! command -v -- "${argv[0]}" >/dev/null; then
		echo "vmctl: guest $id: ${argv[0]}: command not found" >&2
		exit 127
	fi
	exec -- "${argv[@]}"
}

mkdir -p "$ctl/queue" "$ctl/jobs"
# Sleep without forking: a read with a timeout on a FIFO nobody writes.
# The loop runs ten times a second for as long as the guest is up.
mkfifo /run/vmctl-tick || fail "no FIFO in /run"
exec 9<>/run/vmctl-tick
shopt -s nullglob
# The host removes a job's token once the job has a pid; until then this
# remembers which tokens were started.
declare -A started=()
put "$ctl/ready" "$(cut -d' ' -f1 /proc/uptime)"
echo "vmctl-agent: guest $id ready"
while :; do
	for token in "$ctl"/queue/*; do
		job=${token##*/}
		[ -z "${started[$job]+x}" ] || continue
		started[$job]=1
		[ -d "$ctl/jobs/$job" ] && run_job "$job" &
	done
	read -r -t 0.1 -u 9 _
done
