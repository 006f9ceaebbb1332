#!/usr/bin/env bash
# Install what dsm needs to build, test and benchmark, from Debian 12's own
# packages.  Idempotent: packages already present are not fetched again.
#   deploy/install-deps.sh            build + test dependencies
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config   # toolchain
  libuv1-dev                         # server event loop
  libhiredis-dev redis-server        # cluster registry
  libsodium-dev                      # cluster secret: HMAC, random nonces
  libibverbs-dev librdmacm-dev       # RDMA transport (next milestone)
  clang libclang-rt-14-dev           # libFuzzer and sanitizer runtimes
  python3 procps util-linux          # test and benchmark scripts
  strace                             # bench/run.sh: system calls per page
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
