#!/usr/bin/env bash
# The systemd units' CI check (`make lint`): every unit must pass `systemd-analyze verify`
# with no warning at all, every service must score an exposure of at most 2.0 in
# `systemd-analyze security --offline=true`, and the sysusers.d / tmpfiles.d files must
# apply to an empty root.
#
# Usage: scripts/check_units.sh [UNIT_DIR]   (default: the checkout's systemd/)
# Exits 1 naming each unit and what failed; the exposure threshold is
# FOOTFALL_UNIT_EXPOSURE_MAX (default 2.0, the scale `systemd-analyze security` prints).
#
# The units start /opt/footfall/.venv/bin/…, which does not exist on CI, and systemd 252's
# verify wants every target a unit names: so the units are checked inside a throw-away
# root (--root=) holding this machine's own unit tree, the units (and their drop-ins)
# and an executable stub at each path an Exec*= line names.
set -euo pipefail
unit_dir="$(cd "${1:-$(dirname "$0")/../systemd}" && pwd)"
max="${FOOTFALL_UNIT_EXPOSURE_MAX:-2.0}"
# --threshold= counts in tenths of the printed level (100 is the worst, printed 10.0)
threshold="$(awk -v m="$max" 'BEGIN { printf "%d", m * 10 + 0.5 }')"
command -v systemd-analyze >/dev/null || { echo "check_units: systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }

root="$(mktemp -d "${TMPDIR:-/tmp}/footfall-units.XXXXXX")"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
shopt -s nullglob
units=()
for path in "$unit_dir"/*.service "$unit_dir"/*.timer "$unit_dir"/*.socket "$unit_dir"/*.path; do
  units+=("$(basename "$path")")
  cp "$path" "$root/etc/systemd/system/"
done
for dropin in "$unit_dir"/*.d; do
  cp -r "$dropin" "$root/etc/systemd/system/"
done
[ ${#units[@]} -gt 0 ] || { echo "check_units: no units in $unit_dir" >&2; exit 1; }
# a stub for every program an Exec*= line starts (after its -@:+! prefixes)
while read -r exe; do
  mkdir -p "$root$(dirname "$exe")"
  printf '#!/bin/sh\n' >"$root$exe"
  chmod +x "$root$exe"
done < <(find "$root/etc/systemd/system" -type f -exec \
  sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\(\/[^ ]*\).*/\1/p' {} + | sort -u)

failed=0
fail() {
  echo "check_units: $*" >&2
  failed=1
}

for unit in "${units[@]}"; do
  if ! out="$(systemd-analyze verify --root="$root" "$unit" 2>&1)" || [ -n "$out" ]; then
    fail "$unit: systemd-analyze verify: ${out//$root/}"
  fi
done

for unit in "${units[@]}"; do
  [[ "$unit" == *.service ]] || continue
  report="$(systemd-analyze security --offline=true --root="$root" --threshold="$threshold" \
    --no-pager "$unit" 2>&1)" && status=0 || status=$?
  level="$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$report")"
  if [ "$status" -ne 0 ]; then
    fail "$unit: exposure ${level:-unknown} is above $max (systemd-analyze security); its worst settings:"
    grep '^✗' <<<"$report" | awk '{ print $NF " " $0 }' | sort -rn | head -8 | cut -d' ' -f2- \
      | sed 's/  */ /g; s/^/    /' >&2 || true
  else
    echo "$unit: exposure $level (at most $max)"
  fi
done

# sysusers.d then tmpfiles.d into an empty root: the user and groups exist, the folders
# get their owners (chown needs root: as a plain user tmpfiles.d is not checked)
sysroot="$root/sysroot"
mkdir -p "$sysroot/etc"
for conf in "$unit_dir"/sysusers.d/*.conf; do
  out="$(systemd-sysusers --root="$sysroot" "$conf" 2>&1)" || fail "$(basename "$conf"): systemd-sysusers: $out"
done
for conf in "$unit_dir"/tmpfiles.d/*.conf; do
  if [ "$(id -u)" -ne 0 ]; then
    echo "$(basename "$conf"): systemd-tmpfiles skipped (needs root to chown)"
  elif ! out="$(systemd-tmpfiles --root="$sysroot" --create "$conf" 2>&1)" || [ -n "$out" ]; then
    fail "$(basename "$conf"): systemd-tmpfiles: ${out//$sysroot/}"
  fi
done

[ "$failed" -eq 0 ] || exit 1
echo "check_units: ${#units[@]} units verified, services at most $max exposure"
