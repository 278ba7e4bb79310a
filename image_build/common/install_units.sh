#!/usr/bin/env bash
# Put the box's systemd files into a root filesystem and enable them (no chroot needed:
# `systemctl --root` only makes the [Install] symlinks). Both images use it: the x86_64
# build (image_build/x86_64/build.sh) and the Jetson overlay (image_build/jetson/apply.sh).
#
# Usage: image_build/common/install_units.sh ROOT
#
# Installs systemd/footfall.service, footfall-firstboot.service and litestream.service into
# ROOT/etc/systemd/system, sysusers.d and tmpfiles.d into ROOT/usr/lib, and enables the box
# and its first boot. Litestream's restore drop-in (systemd/footfall.service.d/) is not
# installed: it needs /etc/footfall/litestream.yml, which a new box does not have yet
# (image_build/README.md says how to add it once a replica is chosen). The hub's unit is
# not a box's.
set -euo pipefail
root="${1:?usage: install_units.sh ROOT}"
[ -d "$root" ] || { echo "install_units: $root is not a folder" >&2; exit 2; }
units="$(cd "$(dirname "$0")/../../systemd" && pwd)"

install -d -m 0755 "$root/etc/systemd/system" "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d"
for unit in footfall.service footfall-firstboot.service litestream.service; do
  install -m 0644 "$units/$unit" "$root/etc/systemd/system/$unit"
done
install -m 0644 "$units/sysusers.d/footfall.conf" "$root/usr/lib/sysusers.d/footfall.conf"
install -m 0644 "$units/tmpfiles.d/footfall.conf" "$root/usr/lib/tmpfiles.d/footfall.conf"
# litestream.service is enabled too: it starts only once /etc/footfall/litestream.yml exists
# (ConditionPathExists=), so a box without a replica skips it
systemctl --root="$root" enable footfall-firstboot.service footfall.service litestream.service
