#!/usr/bin/env bash
# Fuzz the protocol decoders and the server's request handler.
#   tests/run-fuzz.sh BUILD_DIR SECONDS
# Configures a clang build with -DDSM_FUZZ=ON in BUILD_DIR, builds the
# fuzz_proto target, seeds a corpus from the built-in seeds and runs
# libFuzzer for SECONDS.  Exits non-zero if it finds a crash, a leak or a
# failed check; the reproducer is left in BUILD_DIR/fuzz-artifacts/.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
secs=$2
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac

cmake -S "$top" -B "$dir" -DCMAKE_C_COMPILER=clang -DDSM_FUZZ=ON \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" --target fuzz_proto fuzz_proto_replay -j"$(nproc)"

# The corpus lives in the build tree: libFuzzer adds to it as it runs.
corpus="$dir/fuzz-corpus"
artifacts="$dir/fuzz-artifacts"
mkdir -p "$corpus" "$artifacts"
"$dir/tests/fuzz_proto_replay" --write-seeds "$corpus"

ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$dir/tests/fuzz_proto" -max_total_time="$secs" -max_len=16384 \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$corpus"
