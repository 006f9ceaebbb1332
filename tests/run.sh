#!/usr/bin/env bash
# The one test command (README "Tests"; .ci/run calls exactly this).
#   tests/run.sh                 every stage
#   tests/run.sh STAGE...        only those (the others are reported
#                                skipped), e.g. tests/run.sh bench-short
# Its stages, in order:
#   dependencies  installs missing Debian packages
#   tests         builds (RelWithDebInfo) and runs the ctest suite
#   tests-asan    the same under AddressSanitizer + UBSan   (SKIP_ASAN=1 skips)
#   tests-tsan    the same under ThreadSanitizer            (SKIP_TSAN=1 skips)
#   fuzz          the protocol fuzzer for FUZZ_SECONDS s (default 60; 0 skips)
#   bench-short   bench/run.sh --short on the tests' build: its report and
#                 every chart it draws must be there, each a real PNG
#                 (build/bench-short/); nothing looks at the figures
#                 (SKIP_BENCH=1 skips; needs root, as CI runs)
#   multinode     dsm across qemu guests with soft-RoCE (tests/multinode/;
#                 SKIP_MULTINODE=1 skips; skipped with its reason where
#                 qemu cannot run)
#
# A failing stage does not stop the run: the stages after it still run, so
# that one run shows every failure, and then the run exits 1.  A stage is
# skipped by its knob, or by exiting 77 after a line "SKIP: reason"; a
# skipped stage does not fail the run, but it is never reported as passed.
# Inside the suites, tests and cases skipped on this machine are collected
# with their reasons (tests/CMakeLists.txt says how a test reports them).
#
# The run ends with a summary: every skipped test and case with its reason,
# the first FAIL lines of any suite that failed, then one line per stage
# (passed, FAILED and which tests, or skipped and why), then the verdict.
# To add a stage, add one line at the bottom:
#   stage NAME "$(knob VAR VALUE)" COMMAND [ARGS...]
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# Each stage's output goes through tee into its log: a stage that shows
# progress on a terminal (multinode) is told which one (deploy/progress.sh).
# shellcheck source=deploy/progress.sh
. deploy/progress.sh
progress_share

logs=$(mktemp -d /tmp/dsm-run.XXXXXX)
trap 'rm -rf "$logs"' EXIT
# Without this an interrupted stage would count as failed and the next
# one would start.
trap 'echo "run.sh: interrupted"; exit 130' INT TERM
skips=$logs/skips # "stage: what was skipped: why", one a line
: >"$skips"
results=()        # "status<TAB>stage<TAB>detail", one per stage
only=" $* "       # the stages named on the command line; "  " is all

# in_env VAR=VALUE... COMMAND [ARGS...]: COMMAND, which may be a function
# here, with those variables exported (inside its stage's subshell only).
in_env() {
	while [[ $1 == *=* ]]; do
		export "${1?}"
		shift
	done
	"$@"
}

# knob VAR VALUE: the reason not to run a stage ("VAR=VALUE") if the
# environment variable VAR is set to VALUE; nothing otherwise.
knob() {
	if [ "${!1:-}" = "$2" ]; then
		echo "$1=$2"
	fi
}

# stage NAME WHY_NOT COMMAND [ARGS...]: run COMMAND (with set -e) as stage
# NAME, unless WHY_NOT gives a reason not to.  Exit status 0 is passed, 77
# skipped (the reason is its last "SKIP:" line), anything else failed.
stage() {
	local name=$1 why_not=$2 rc reason t0=$SECONDS
	shift 2
	if [ -z "$why_not" ] && [ "$only" != "  " ] && [[ $only != *" $name "* ]]; then
		why_not="not named on the command line"
	fi
	if [ -n "$why_not" ]; then
		printf '\n=== %s: skipped (%s) ===\n' "$name" "$why_not"
		results+=("skipped	$name	$why_not")
		return
	fi
	printf '\n=== %s ===\n' "$name"
	export STAGE=$name
	( set -e; "$@" ) 2>&1 | tee "$logs/$name.log"
	rc=${PIPESTATUS[0]}
	reason=$(sed -n 's/^SKIP: *//p' "$logs/$name.log" | tail -n 1)
	if [ "$rc" = 0 ]; then
		results+=("passed	$name	$(elapsed $t0)$(skip_count "$name")")
	elif [ "$rc" = 77 ] && [ -n "$reason" ]; then
		results+=("skipped	$name	$reason")
	elif [ "$rc" = 77 ]; then
		results+=("FAILED	$name	exit status 77 (skipped) without a SKIP: line saying why")
	else
		results+=("FAILED	$name	exit status $rc after $(elapsed $t0)$(skip_count "$name")$(failed_tests "$name")")
	fi
}

elapsed() {
	local s=$((SECONDS - $1))
	printf '%dm%02ds' $((s / 60)) $((s % 60))
}

# ", N skipped inside (listed above)" if the stage's suite skipped anything.
skip_count() {
	local n
	n=$(grep -c "^$1: " "$skips")
	[ "$n" = 0 ] || echo ", $n skipped inside (listed above)"
}

# "; failed: A B" naming the ctest tests that failed in the stage, if it ran
# a suite: the summary is often all of a CI log anyone sees.
failed_tests() {
	local names
	[ -f "$logs/$1.ctest" ] || return 0
	names=$(sed -n '/^The following tests FAILED:/,$s/^[[:space:]]*[0-9]* - \([^ ]*\) .*/\1/p' \
		"$logs/$1.ctest" | tr '\n' ' ')
	[ -z "$names" ] || echo "; failed: ${names% }"
}

# suite DIR TIMEOUT [CMAKE_ARGS...]: build a flavour in DIR, run its ctest
# suite and collect what it skipped.
suite() {
	local dir=$1 timeout=$2 rc=0
	shift 2
	deploy/build.sh "$dir" "$@"
	(cd "$dir" && ctest --output-on-failure --timeout "$timeout") |
		tee "$logs/$STAGE.ctest" || rc=$?
	if ! collect_skips "$dir/Testing/Temporary/LastTest.log" \
		"$logs/$STAGE.ctest" && [ "$rc" = 0 ]; then
		rc=1
	fi
	return "$rc"
}

# collect_skips LASTTEST_LOG CTEST_OUTPUT: append to $skips, and show, every
# test ctest skipped and every case a test skipped, with the reason from
# its "SKIP:" lines (ctest keeps every test's output in LastTest.log, but
# says which tests it skipped only in its own output).  1 if a test was
# skipped without saying why.
collect_skips() {
	local log=$1 out=$2 name why bad=0
	local found=$logs/$STAGE.skip-lines whole=$logs/$STAGE.skipped
	local mine=$logs/$STAGE.skips
	[ -f "$log" ] || return 0
	# every "SKIP:" line of every test's output, as "test<TAB>reason"
	awk '/^[0-9]+\/[0-9]+ Test: / { name = $3 }
	     /^Output:$/ { out = 1; next }
	     /^<end of output>$/ { out = 0 }
	     out && sub(/^SKIP: */, "") { print name "\t" $0 }' "$log" >"$found"
	sed -n 's/^[[:space:]]*[0-9]* - \(.*\) (Skipped)$/\1/p' "$out" >"$whole"
	: >"$mine"
	while read -r name; do
		why=$(awk -F'\t' -v n="$name" '$1 == n { print $2 }' "$found" |
			paste -sd ';')
		if [ -z "$why" ]; then
			why="FAILED: no SKIP: line says why (tests/CMakeLists.txt)"
			bad=1
		fi
		echo "$STAGE: test $name skipped: $why" >>"$mine"
	done <"$whole"
	# cases skipped inside tests that ran
	awk -F'\t' -v stage="$STAGE" 'NR == FNR { skipped[$0]; next }
	     !($1 in skipped) {
		print stage ": test " $1 " ran, skipped a case: " $2 }' \
		"$whole" "$found" >>"$mine"
	if [ -s "$mine" ]; then
		printf '\nSkipped on this machine:\n'
		tee -a "$skips" <"$mine"
	fi
	return $bad
}

# The first FAIL lines of each stage that failed, so that the last lines
# of a run say what went wrong and not only where: from its ctest log
# where it ran a suite, from its own output otherwise (multinode).
fail_lines() {
	local log stage line status detail
	for line in "${results[@]}"; do
		IFS=$'\t' read -r status stage detail <<<"$line"
		[ "$status" = FAILED ] || continue
		log=$logs/$stage.ctest
		[ -f "$log" ] || log=$logs/$stage.log
		[ -f "$log" ] || continue
		echo "First failures in $stage:"
		grep -E '^FAIL|FAIL:|^diag: |\*\*\*(Failed|Timeout|Exception)|^  FAILED ' "$log" |
			grep -v '^The following' | head -n 12 | cut -c1-200 | sed 's/^/  /'
	done
}

summary() {
	local ran=0 failed=() skipped=() line status name detail
	printf '\n=== summary ===\n'
	if [ -s "$skips" ]; then
		echo "Skipped inside the suites:"
		sed 's/^/  /' "$skips"
	fi
	fail_lines
	echo "Stages:"
	for line in "${results[@]}"; do
		IFS=$'\t' read -r status name detail <<<"$line"
		printf '  %-8s %-13s %s\n' "$status" "$name" "$detail"
		case $status in
		skipped) skipped+=("$name") ;;
		FAILED) failed+=("$name"); ran=$((ran + 1)) ;;
		*) ran=$((ran + 1)) ;;
		esac
	done
	if [ ${#failed[@]} -gt 0 ]; then
		echo "FAILED: ${#failed[@]} of the $ran stages that ran: ${failed[*]}${skipped[*]:+; skipped: ${skipped[*]}}"
		return 1
	elif [ ${#skipped[@]} -gt 0 ]; then
		echo "The $ran stages that ran passed; skipped: ${skipped[*]}"
	else
		echo "All $ran stages passed"
	fi
}

# is_png FILE: FILE is there, not empty, and starts as every PNG does.
is_png() {
	if [ ! -s "$1" ]; then
		echo "bench-short: $1 missing or empty"
		return 1
	fi
	if [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
		echo "bench-short: $1 is not a PNG"
		return 1
	fi
	echo "bench-short: $1: PNG, $(stat -c %s "$1") bytes"
}

# bench_short DIR: the benchmark command's short mode, as CI runs it, on
# the build the tests stage made (no Release build of its own), into DIR.
# Its report and charts must be there; the swap chart only if the swap
# baseline ran (the report says when it was skipped).
bench_short() {
	local out=$1 chart bad=0

	rm -rf "$out"
	in_env BUILD="$top/build" SKIP_BUILD=1 bench/run.sh --short --out "$out" \
		>"$out.log" || { tail -n 30 "$out.log"; return 1; }
	echo "bench-short: the report ($out/latest.md, its output in $out.log):"
	sed -n '/^## Targets/,/^## Streaming/p' "$out/latest.md" | head -n 25
	[ -s "$out/latest.md" ] || { echo "bench-short: no report"; return 1; }
	for chart in latency-cdf servers swap; do
		if [ $chart = swap ] && grep -q '^- kernel swap: .*SKIPPED' "$out/latest.md"; then
			echo "bench-short: no swap chart: $(grep -o 'SKIPPED: .*' "$out/latest.md")"
			continue
		fi
		is_png "$out/latest-$chart.png" || bad=1
		grep -qF "(latest-$chart.png)" "$out/latest.md" ||
			{ echo "bench-short: the report does not link latest-$chart.png"; bad=1; }
	done
	return $bad
}

fuzz_seconds=${FUZZ_SECONDS:-60}
stage dependencies "" deploy/install-deps.sh
stage tests "" suite build 300
stage tests-asan "$(knob SKIP_ASAN 1)" \
	in_env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	suite build-asan 600 -DDSM_SANITIZE=ON
stage tests-tsan "$(knob SKIP_TSAN 1)" \
	in_env TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	suite build-tsan 900 -DDSM_TSAN=ON
stage fuzz "$(knob FUZZ_SECONDS 0)" \
	tests/run-fuzz.sh "$top/build-fuzz" "$fuzz_seconds"
stage bench-short "$(knob SKIP_BENCH 1)" bench_short "$top/build/bench-short"
stage multinode "$(knob SKIP_MULTINODE 1)" tests/multinode/run.sh
for name in "$@"; do
	printf '%s\n' "${results[@]}" | cut -f2 | grep -qxF -- "$name" ||
		{ echo "run.sh: no stage named $name (the header lists them)"; exit 2; }
done
summary
