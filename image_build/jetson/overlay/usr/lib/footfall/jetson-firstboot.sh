#!/bin/sh
# footfall-firstboot.service's first step on a Jetson (image_build/jetson/README): once per
# box, the full power mode (the detector's frame rate depends on it) and no oem-config
# (NVIDIA's first-boot wizard asks for a user and a password: a box has neither; the
# dashboard's setup wizard replaces it). A marker keeps it to the first boot.
set -eu
marker=/var/lib/footfall/.jetson-firstboot-done
[ -e "$marker" ] && exit 0
if command -v nvpmodel >/dev/null 2>&1; then
  nvpmodel -m 0 || echo "jetson-firstboot: nvpmodel -m 0 failed; the power mode stays" >&2
fi
systemctl disable nv-oem-config.service nv-oem-config-gui.service 2>/dev/null || true
mkdir -p "$(dirname "$marker")"
: >"$marker"
