#!/usr/bin/env bash
# deploy/progress.sh, the progress lines of the guest image build, the
# guests' boot and the multinode suite: written to a terminal only (stderr,
# or the one a parent named with progress_share), never into a pipe or a
# log; the elapsed time and the ETA from the steps done.  The terminal is
# script(1)'s (util-linux); without it those checks are skipped.
#   test_progress.sh
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
lib=$top/deploy/progress.sh
failed=0
fail() { echo "FAIL: $*"; failed=1; }
tmp=$(mktemp -d /tmp/dsm-progress-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# shellcheck source=deploy/progress.sh
. "$lib"
for t in "45 45s" "185 3m05s" "3720 1h02m" "0 0s"; do
	got=$(progress_time "${t% *}")
	[ "$got" = "${t#* }" ] || fail "progress_time ${t% *}: '$got', want '${t#* }'"
done

# A step 2 of 5 begun 10 s after step 1: 10 s for one step, 4 steps left.
# shellcheck disable=SC2016 # expanded by the bash that runs it
step='. "$1"; progress_step "suite x" case 2 5 $((SECONDS - 10)); progress_say said'

# piped: nothing at all, also with a parent's terminal that is no terminal
out=$(unset DSM_PROGRESS_TTY; bash -c "$step" _ "$lib" 2>&1)
[ -z "$out" ] || fail "piped, progress lines were written: $out"
: >"$tmp/not-a-tty"
out=$(DSM_PROGRESS_TTY=$tmp/not-a-tty bash -c "$step" _ "$lib" 2>&1)
if [ -n "$out" ] || [ -s "$tmp/not-a-tty" ]; then
	fail "DSM_PROGRESS_TTY naming a plain file: written to"
fi

if ! command -v script >/dev/null; then
	echo "SKIP: progress on a terminal: no script(1) (util-linux) to make one"
	exit $failed
fi
# on a terminal: the line, elapsed and ETA (10 or 11 s, as the clock ticks)
out=$(unset DSM_PROGRESS_TTY
      script -qec "$(printf '%q ' bash -c "$step" _ "$lib")" /dev/null </dev/null)
grep -qE '^suite x: case 2 of 5, 1[01]s elapsed, ETA 4[04]s' <<<"$out" ||
	fail "on a terminal, no progress line: $(cat -v <<<"$out")"
grep -q '^said' <<<"$out" || fail "on a terminal, progress_say wrote nothing"
# a child whose stderr is not the terminal (a pipe to tee in the suites, a
# file here) writes to the terminal its parent shared, and nothing there
# shellcheck disable=SC2016 # expanded by the bash that runs it
share='. "$1"; progress_share; bash -c ". \"\$1\"; progress_say to-the-tty" _ "$1" 2>"$2"'
out=$(unset DSM_PROGRESS_TTY
      script -qec "$(printf '%q ' bash -c "$share" _ "$lib" "$tmp/pipe")" /dev/null </dev/null)
grep -q '^to-the-tty' <<<"$out" || fail "progress_share: the child's line did not reach the terminal: $(cat -v <<<"$out")"
[ ! -s "$tmp/pipe" ] || fail "progress_share: the child wrote into its stderr: $(cat "$tmp/pipe")"

[ $failed = 0 ] && echo "PASS: test_progress"
exit $failed
