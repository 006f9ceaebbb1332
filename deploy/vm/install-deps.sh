#!/usr/bin/env bash
# Install what deploy/vm/vmctl needs, from Debian 12's own packages.
# Idempotent: packages already present are not fetched again.  The guest
# kernel is not installed here: vmctl downloads it into DSM_VM_DIR.
#   deploy/vm/install-deps.sh
set -euo pipefail

pkgs=(
  qemu-system-x86                    # the guests (TCG where there is no KVM)
  vde2                               # vde_switch: the guests' private network
  busybox-static                     # the guests' initramfs
  kmod cpio gzip xz-utils            # module order, initramfs, vmlinux
  iproute2                           # rdma link add rxe0, inside the guests
  rdma-core ibverbs-providers        # librxe: soft-RoCE from user space
  ibverbs-utils rdmacm-utils perftest  # ibv_devinfo, rping, ib_read_lat
  procps util-linux                  # pgrep, the tests
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps (vm): all packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps (vm): missing packages: ${missing[*]}" >&2
  echo "install-deps (vm): run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps (vm): installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
