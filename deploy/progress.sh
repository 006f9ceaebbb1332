# deploy/progress.sh - progress lines for work an operator waits on (the
# guests' kernel and initramfs, their boot, the multinode suite);
# sourced, not run.
#
# A line is written only to a terminal: stderr if it is one, else the
# terminal a parent named in DSM_PROGRESS_TTY.  tests/run.sh and
# tests/multinode/run.sh pass what they run through tee (into their
# logs), so its stderr is a pipe even when a person is watching; they
# call progress_share first.  With no terminal anywhere above (CI, a log,
# a pipe) nothing is written: the scripts' own output says what happened.
# The lines are whole lines, never redrawn in place: other output comes
# between them.
# shellcheck shell=bash

# progress_share: name this terminal to the children, whose stderr will
# be a pipe.  Nothing if stderr is not a terminal.
progress_share() {
	local tty

	[ -z "${DSM_PROGRESS_TTY:-}" ] && [ -t 2 ] || return 0
	tty=$(readlink /proc/self/fd/2) && [ -c "$tty" ] &&
		export DSM_PROGRESS_TTY=$tty
	return 0
}

# progress_on: status 0 if progress lines go anywhere.
progress_on() {
	[ -t 2 ] || { [ -n "${DSM_PROGRESS_TTY:-}" ] && [ -c "$DSM_PROGRESS_TTY" ] &&
		[ -w "$DSM_PROGRESS_TTY" ]; }
}

# progress_say TEXT...: one line to the terminal, if there is one.
progress_say() {
	if [ -t 2 ]; then
		printf '%s\n' "$*" >&2
	elif progress_on; then
		printf '%s\n' "$*" 2>/dev/null >"$DSM_PROGRESS_TTY" || true
	fi
}

# progress_time SECONDS: "45s", "3m05s", "1h02m".
progress_time() {
	local s=$1

	if [ "$s" -lt 60 ]; then
		printf '%ds' "$s"
	elif [ "$s" -lt 3600 ]; then
		printf '%dm%02ds' $((s / 60)) $((s % 60))
	else
		printf '%dh%02dm' $((s / 3600)) $((s / 60 % 60))
	fi
}

# progress_step WHAT NOUN I N T0: "WHAT: NOUN I of N, 3m10s elapsed, ETA
# 5m20s" as step I (1-based) begins, T0 being $SECONDS when step 1 began.
# The ETA is the mean time of the steps done so far times the steps left;
# N may be empty (not known): "WHAT: NOUN I, 3m10s elapsed".
progress_step() {
	local what=$1 noun=$2 i=$3 n=$4 t0=$5 el line

	progress_on || return 0
	el=$((SECONDS - t0))
	line="$what: $noun $i${n:+ of $n}, $(progress_time "$el") elapsed"
	if [ -n "$n" ] && [ "$i" -gt 1 ] && [ "$n" -ge "$i" ]; then
		line+=", ETA $(progress_time $((el * (n - i + 1) / (i - 1))))"
	fi
	progress_say "$line"
}
