#!/usr/bin/env bash
# The image recipe's CI check (`make lint`): everything of image_build/ that can be checked
# without building the image (CI never builds it: `make image` does, as root).
#
#  - shellcheck on every script of image_build/ and this one (skipped, said, if absent);
#  - every script is executable, the first-boot script included;
#  - the package lists parse: one Debian package name a line, no duplicate;
#  - the Jetson overlay and the box's units applied onto an empty root (apply.sh
#    --files-only): the files land, the units are enabled, and the units with the
#    overlay's drop-ins pass scripts/check_units.sh (systemd-analyze verify, exposure);
#  - the x86_64 image's repart.d definition is one systemd-repart accepts.
#
# Usage: scripts/check_image.sh   (exit 1 naming each failure)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
image="$repo/image_build"
failed=0
fail() {
  echo "check_image: $*" >&2
  failed=1
}
work="$(mktemp -d "${TMPDIR:-/tmp}/footfall-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT

mapfile -t scripts < <(find "$image" -name '*.sh' | sort)
scripts+=("$repo/scripts/check_image.sh")
for script in "${scripts[@]}"; do
  [ -x "$script" ] || fail "${script#"$repo"/}: not executable"
done
if command -v shellcheck >/dev/null; then
  shellcheck -x "${scripts[@]}" || fail "shellcheck found problems (above)"
else
  echo "check_image: shellcheck not installed (apt-get install shellcheck): scripts not linted"
fi

for list in "$image"/*/packages.txt; do
  names="$(sed 's/#.*//; s/[[:space:]]*$//; /^$/d' "$list")"
  [ -n "$names" ] || fail "${list#"$repo"/}: no package"
  bad="$(grep -nvE '^[a-z0-9][a-z0-9+.-]+$' <<<"$names" || true)"
  [ -z "$bad" ] || fail "${list#"$repo"/}: not a Debian package name: $bad"
  dupes="$(sort <<<"$names" | uniq -d)"
  [ -z "$dupes" ] || fail "${list#"$repo"/}: listed twice: $dupes"
done

root="$work/rootfs"
mkdir -p "$root"
if out="$("$image/jetson/apply.sh" --files-only "$root" 2>&1)"; then
  for path in etc/systemd/system/footfall.service etc/systemd/system/footfall-firstboot.service \
    etc/systemd/system/multi-user.target.wants/footfall.service \
    etc/systemd/system/multi-user.target.wants/footfall-firstboot.service \
    usr/lib/sysusers.d/footfall.conf usr/lib/tmpfiles.d/footfall.conf \
    usr/lib/footfall/jetson-firstboot.sh; do
    # the [Install] links point into the box's root, not this machine's: -L, not -e
    [ -e "$root/$path" ] || [ -L "$root/$path" ] || fail "jetson overlay: /$path missing after apply.sh --files-only"
  done
  [ -x "$root/usr/lib/footfall/jetson-firstboot.sh" ] || fail "jetson overlay: the first-boot script is not executable"
  # the units as the Jetson runs them: with the overlay's drop-ins
  units="$work/units"
  mkdir -p "$units"
  cp "$root"/etc/systemd/system/*.service "$units/"
  cp -r "$root"/etc/systemd/system/*.d "$units/"
  "$repo/scripts/check_units.sh" "$units" >"$work/units.log" 2>&1 \
    || fail "jetson units (with the overlay's drop-ins): $(cat "$work/units.log")"
else
  fail "jetson/apply.sh --files-only: $out"
fi

if command -v systemd-repart >/dev/null; then
  if ! out="$(systemd-repart --definitions="$image/x86_64/rootfs/usr/lib/repart.d" \
    --empty=create --size=64M --dry-run=yes --no-pager "$work/disk.raw" 2>&1)"; then
    fail "x86_64 repart.d: systemd-repart: $out"
  fi
fi

[ "$failed" -eq 0 ] || exit 1
echo "check_image: ${#scripts[@]} scripts, the package lists, the Jetson overlay and its units, repart.d: OK"
