#!/usr/bin/env bash
# Run customize.sh on an arm64 (aarch64) Debian bookworm root under qemu user emulation,
# then run the installed release there: the Pi's CPU architecture, the wheels pip picks
# for it (PyAV, aiortc, numpy, LiteRT) and the same script as the image, on an x86 PC.
#
#   sudo hardware/image/check-arm64.sh [WORK_DIR]     (default: /var/tmp/clinicam-arm64)
#
# Needs root, debootstrap and qemu-user-static with binfmt_misc (`apt install
# debootstrap qemu-user-static binfmt-support`). Slow: emulation makes pip and Python
# about 10x slower than native; expect 20-40 minutes. Not part of CI for that reason.
# What it cannot show: Raspberry Pi OS's own packages (picamera2, libcamera) and the
# real camera, servo board and GPIO, which only a Pi on the bench has.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${1:-/var/tmp/clinicam-arm64}"
ROOT="$WORK/root"
MIRROR="${CLINICAM_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
step() { printf '\n==> %s\n' "$*"; }
die() { printf 'check-arm64.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap missing: apt install debootstrap"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
  || die "no qemu-aarch64 binfmt handler: apt install qemu-user-static binfmt-support"

mkdir -p "$WORK"
if [ ! -x "$ROOT/usr/bin/python3" ]; then
  step "debootstrap arm64 bookworm into $ROOT"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,passwd,systemd,ca-certificates bookworm "$ROOT" "$MIRROR"
fi
[ "$(chroot "$ROOT" uname -m)" = aarch64 ] || die "the root does not run as aarch64"
mkdir -p "$ROOT/boot/firmware"
[ -f "$ROOT/boot/firmware/config.txt" ] || printf 'arm_64bit=1\n' >"$ROOT/boot/firmware/config.txt"
# pip inside the root trusts the same certificate authorities as this machine (proxies).
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/clinicam-host-ca.crt"
printf '[global]\ncert = /etc/clinicam-host-ca.crt\n' >"$ROOT/etc/pip.conf"

step "customize.sh --root $ROOT"
start=$(date +%s)
bash "$HERE/customize.sh" --root "$ROOT" --ssh off
echo "customize.sh took $(( $(date +%s) - start )) s under emulation"

step "the installed release, run as the appliance's user on aarch64"
cat >"$ROOT/var/tmp/clinicam-arm64-check.py" <<'EOF'
import platform
from fractions import Fraction

import av
import numpy as np

import aiortc
from clinicam import __version__
from clinicam.h264 import H264StreamEncoder
from models.runtime import RelevanceModel

print("machine:", platform.machine(), "python", platform.python_version())
print("clinicam", __version__, "aiortc", aiortc.__version__, "PyAV", av.__version__)
encoder = H264StreamEncoder(640, 360, 15, 800, 15)
decoder = av.CodecContext.create("h264", "r")
decoded = 0
for i in range(15):
    picture = np.full((360, 640, 3), (i * 16) % 256, dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
    for packet in encoder.encode(frame, i * 6000):
        decoded += len(decoder.decode(av.Packet(bytes(packet))))
assert decoded >= 14, decoded
print("H.264 round trip:", decoded, "frames")
model = RelevanceModel.load_demo(num_threads=1)
result = model.relevance([("emr_entry", {})])
assert result is not None and abs(sum(result.values) - 1.0) < 0.02, result
print("LiteRT", model.version, dict(zip(result.labels, result.values)))
print("ARM64 CHECK OK")
EOF
chmod 0644 "$ROOT/var/tmp/clinicam-arm64-check.py"
chroot "$ROOT" /opt/clinicam/current/venv/bin/clinicam --version
chroot "$ROOT" setpriv --reuid=clinicam --regid=clinicam --init-groups \
  /opt/clinicam/current/venv/bin/python /var/tmp/clinicam-arm64-check.py
rm -f "$ROOT/var/tmp/clinicam-arm64-check.py"
