#!/usr/bin/env bash
# tests/multinode/run.sh - the multi-node suite: every test of
# tests/multinode/ in qemu guests (deploy/vm/vmctl), one after the other.
#   tests/multinode/run.sh            (tests/run.sh's multinode stage)
# Installs the guests' packages first.  Each test boots the guests it
# needs and takes them down again.  The last lines list what ran, what
# failed and what was skipped, with the reasons.  Exit 0 if every test
# passed, 1 if any failed, 77 after a "SKIP:" line if none could run
# (qemu cannot run on this machine).  On a terminal, lines say which test
# of how many runs, and which case of it, with the time elapsed and an
# ETA (deploy/progress.sh); piped, only the tests' own output.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
# shellcheck source=deploy/progress.sh
. deploy/progress.sh
progress_share   # the tests' output goes through tee: name the terminal

# In order: the harness itself, then dsm across guests.
tests=(smoke tcp_basic rdma)

deploy/install-deps.sh --vm || { echo "multinode: installing the guests' packages failed"; exit 1; }
deploy/build.sh build >/dev/null || { echo "multinode: build failed"; exit 1; }

results=() failed=0 skipped=0 i=0 suite_t0=$SECONDS
for t in "${tests[@]}"; do
	i=$((i + 1))
	progress_step "multinode ($t)" test "$i" "${#tests[@]}" "$suite_t0"
	t0=$SECONDS
	printf '\n--- multinode: %s\n' "$t"
	tests/multinode/$t.sh 2>&1 | tee "/tmp/dsm-multinode-$t.$$.log"
	rc=${PIPESTATUS[0]}
	why=$(sed -n 's/^.*SKIP: *//p' "/tmp/dsm-multinode-$t.$$.log" | tail -n 1)
	rm -f "/tmp/dsm-multinode-$t.$$.log"
	case $rc in
	0) results+=("passed   $t ($((SECONDS - t0)) s)") ;;
	77) results+=("skipped  $t: ${why:-no reason given}"); skipped=$((skipped + 1)) ;;
	*) results+=("FAILED   $t (exit $rc)"); failed=$((failed + 1)) ;;
	esac
done

printf '\nmultinode summary:\n'
printf '  %s\n' "${results[@]}"
if [ "$failed" -gt 0 ]; then
	exit 1
elif [ "$skipped" = "${#tests[@]}" ]; then
	echo "SKIP: no multinode test could run here (${why:-see above})"
	exit 77
fi
exit 0
