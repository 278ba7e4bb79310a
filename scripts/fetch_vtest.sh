#!/usr/bin/env bash
# Put vtest.avi (PETS 2009 S2L1 view 1, shipped by Debian's opencv-doc) into the
# asset cache. Idempotent: does nothing when the file is already there.
set -euo pipefail
dest="${1:?usage: fetch_vtest.sh DEST_DIR}"
member=./usr/share/doc/opencv-doc/examples/data/vtest.avi
[ -s "$dest/vtest.avi" ] && exit 0
mkdir -p "$dest"
if [ -s "/usr/share/doc/opencv-doc/examples/data/vtest.avi" ]; then
  cp /usr/share/doc/opencv-doc/examples/data/vtest.avi "$dest/vtest.avi.part"
else
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  if ! (cd "$work" && apt-get download opencv-doc >/dev/null 2>&1); then
    apt-get update -qq >/dev/null
    (cd "$work" && apt-get download opencv-doc >/dev/null)
  fi
  dpkg-deb --fsys-tarfile "$work"/opencv-doc_*.deb | tar -x -C "$work" "$member"
  mv "$work/$member" "$dest/vtest.avi.part"
fi
mv "$dest/vtest.avi.part" "$dest/vtest.avi"
echo "vtest.avi -> $dest"
