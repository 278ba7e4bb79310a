#!/usr/bin/env bash
# Copy this checkout's own files (tracked and untracked, not what git ignores: no build
# output, no venv) into DEST, where the image's pip builds the box's wheel from them.
#
# Usage: image_build/common/copy_checkout.sh DEST
set -euo pipefail
dest="${1:?usage: copy_checkout.sh DEST}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$dest"
# a tracked file deleted in the work tree is not there to copy: tar skips it, saying so
git -C "$repo" ls-files -z --cached --others --exclude-standard \
  | tar -C "$repo" --null -T - --ignore-failed-read -cf - 2>/dev/null \
  | tar -C "$dest" -xf -
