#!/usr/bin/env bash
# Install what dsm needs to build, test and benchmark, from Debian 12's own
# packages.  Idempotent: packages already present are not fetched again.
#   deploy/install-deps.sh            build + test dependencies
#   deploy/install-deps.sh --vm       also the multinode guests' (qemu,
#                                     vde2, busybox, soft-RoCE tools; the
#                                     guest kernel itself is downloaded by
#                                     deploy/vm/vmctl into its cache)
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config   # toolchain
  libuv1-dev                         # server event loop
  libhiredis-dev redis-server        # cluster registry
  libsodium-dev                      # cluster secret: HMAC, random nonces
  libibverbs-dev librdmacm-dev       # RDMA transport
  clang libclang-rt-14-dev           # libFuzzer and sanitizer runtimes
  python3 procps util-linux          # test and benchmark scripts
  strace                             # bench/run.sh: system calls per page
  python3-matplotlib                 # bench/plots.py: the benchmarks' charts
  nodejs default-jdk-headless golang-go # managed runtimes under the shim (tests)
)
vm_pkgs=(
  qemu-system-x86                    # the guests (TCG where there is no KVM)
  vde2                               # vde_switch: the guests' private network
  busybox-static                     # the guests' initramfs
  kmod cpio gzip xz-utils            # module order, initramfs, vmlinux
  iproute2                           # rdma link add rxe0, inside the guests
  rdma-core ibverbs-providers        # librxe: soft-RoCE from user space
  ibverbs-utils rdmacm-utils perftest  # ibv_devinfo, rping, ib_read_lat
)
case "${1:-}" in
  "") ;;
  --vm) pkgs+=("${vm_pkgs[@]}") ;;
  *) echo "usage: $0 [--vm]" >&2; exit 2 ;;
esac

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
