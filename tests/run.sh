#!/usr/bin/env bash
# The one test command (README "Tests"; .ci/run calls exactly this).
#   tests/run.sh
# 1. installs missing Debian packages, 2. builds and runs the suite,
# 3. builds and runs it again under AddressSanitizer + UBSan, 4. and under
# ThreadSanitizer, 5. runs the protocol fuzzer for a short while.  Exits
# non-zero if anything fails.
# Knobs: FUZZ_SECONDS (default 60; 0 skips the fuzz run), SKIP_ASAN=1,
# SKIP_TSAN=1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

step() { printf '\n=== %s ===\n' "$*"; }

step "dependencies"
deploy/install-deps.sh

step "build (RelWithDebInfo)"
deploy/build.sh build
step "tests"
(cd build && ctest --output-on-failure --timeout 300)

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  step "build (AddressSanitizer + UBSan)"
  deploy/build.sh build-asan -DDSM_SANITIZE=ON
  step "tests under AddressSanitizer + UBSan"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure --timeout 600)
fi

if [ "${SKIP_TSAN:-0}" != 1 ]; then
  step "build (ThreadSanitizer)"
  deploy/build.sh build-tsan -DDSM_TSAN=ON
  step "tests under ThreadSanitizer"
  (cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
     ctest --output-on-failure --timeout 900)
fi

if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
  step "fuzz the protocol decoder and request handler (${FUZZ_SECONDS:-60} s)"
  tests/run-fuzz.sh "$top/build-fuzz" "${FUZZ_SECONDS:-60}"
fi
step "all test stages passed"
