#!/usr/bin/env bash
# Boot the x86_64 image under qemu (UEFI: OVMF, then the image's own systemd-boot) and
# wait until the box's /healthz answers through a user-net port forward.
#
# Usage: image_build/x86_64/boot.sh [IMAGE] [TIMEOUT_S]
#        (default build/image/footfall-x86_64.raw, 1800 s)
#
# The image is not changed: qemu writes to a throw-away qcow2 overlay of DISK_SIZE (8G),
# a disk larger than the image, as a box's is, so that first boot's systemd-repart grows
# the root partition and systemd-growfs its file system. KVM is used when /dev/kvm works, else TCG
# (-cpu max: numpy needs x86-64-v2). The serial console goes to IMAGE.console.log; the
# setup token first boot prints there is read back, and the wizard's token page fetched
# with it to show the box is set-up-able. Prints the seconds to each step; exits 1 when
# /healthz did not answer within TIMEOUT_S.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image="${1:-$here/../../build/image/footfall-x86_64.raw}"
timeout_s="${2:-1800}"
disk_size="${DISK_SIZE:-8G}"
firmware="${OVMF:-/usr/share/ovmf/OVMF.fd}"
[ -f "$image" ] || { echo "boot: $image not found (make image)" >&2; exit 2; }
[ -f "$firmware" ] || { echo "boot: $firmware not found (apt-get install ovmf)" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "boot: apt-get install qemu-system-x86" >&2; exit 2; }
log="$image.console.log"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# KVM where the CPU says it has it (here /dev/kvm opens but its MSRs fail), else TCG
accel=tcg
if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then
  accel=kvm
fi
: >"$log"
disk="$(mktemp "${TMPDIR:-/tmp}/footfall-disk.XXXXXX.qcow2")"
qemu-img create -q -f qcow2 -b "$(realpath "$image")" -F raw "$disk" "$disk_size"
qemu-system-x86_64 -machine q35 -accel "$accel" -cpu max -smp 2 -m 2048 \
  -bios "$firmware" -drive "if=virtio,format=qcow2,file=$disk" \
  -nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:8080" \
  -display none -serial "file:$log" -monitor none -no-reboot &
qemu=$!
trap 'kill "$qemu" 2>/dev/null || true; wait "$qemu" 2>/dev/null || true; rm -f "$disk"' EXIT
echo "boot: qemu ($accel) pid $qemu, console $log, dashboard on 127.0.0.1:$port"

start=$SECONDS
seen_token=""
while :; do
  if ! kill -0 "$qemu" 2>/dev/null; then
    echo "boot: qemu exited after $((SECONDS - start)) s; the console's end:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  if [ -z "$seen_token" ] && token="$(sed -n 's/.*setup token (one use, opens the wizard): \([A-Za-z0-9_-]*\).*/\1/p' "$log" | tail -1)" && [ -n "$token" ]; then
    seen_token="$token"
    echo "boot: first boot printed the wizard's token after $((SECONDS - start)) s"
  fi
  code="$(curl -s -o "$image.healthz.json" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/healthz" || true)"
  if [ "$code" != "000" ]; then
    echo "boot: /healthz answered HTTP $code after $((SECONDS - start)) s: $(cat "$image.healthz.json")"
    break
  fi
  if [ $((SECONDS - start)) -ge "$timeout_s" ]; then
    echo "boot: /healthz did not answer in $timeout_s s; the console's end:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  sleep 5
done

# the wizard: a 404 page without first boot's state, its token page with it
wizard="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$port/")"
echo "boot: GET / → $wizard"
if [ -n "$seen_token" ]; then
  jar="$(mktemp)"
  page="$(curl -s -c "$jar" "http://127.0.0.1:$port/wizard")"
  csrf="$(sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' <<<"$page" | head -1)"
  form="$(curl -s -b "$jar" -o /dev/null -w '%{http_code}' --data-urlencode "csrf_token=$csrf" \
    --data-urlencode "token=$seen_token" "http://127.0.0.1:$port/wizard")"
  wrong="$(curl -s -b "$jar" -o /dev/null -w '%{http_code}' --data-urlencode "csrf_token=$csrf" \
    --data-urlencode "token=wrong" "http://127.0.0.1:$port/wizard")"
  rm -f "$jar"
  echo "boot: the wizard with the console's token → HTTP $form, with a wrong one → HTTP $wrong"
fi
echo "boot: done in $((SECONDS - start)) s"
