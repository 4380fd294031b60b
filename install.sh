#!/usr/bin/env bash
# Clinicam installer: system packages (apt), a virtual environment, the package.
#
#   ./install.sh --role demo        everything for `clinicam demo` on one machine
#   ./install.sh --role server      a clinic hub / hospital server (with mosquitto)
#   ./install.sh --role appliance   the camera appliance (Raspberry Pi OS: the same steps as the
#                                   flashable image, hardware/image/customize.sh --root /)
#   ./install.sh --role dev         demo + test tools (Chromium, linters)
#   ./install.sh --detect           print the detected system and exit
#
# Safe to run again: it installs only what is missing. Supported: Debian 12 (bookworm)
# and Raspberry Pi OS Bookworm (arm64).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROLE=""
VENV="${CLINICAM_VENV:-$HERE/.venv}"
OS_RELEASE="${CLINICAM_OS_RELEASE:-/etc/os-release}"
RPI_ISSUE="${CLINICAM_RPI_ISSUE:-/etc/rpi-issue}"
DETECT_ONLY=0

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --role) [ $# -ge 2 ] || die "--role needs a value (server, appliance, demo, dev)"; ROLE="$2"; shift 2 ;;
    --role=*) ROLE="${1#--role=}"; shift ;;
    --venv) [ $# -ge 2 ] || die "--venv needs a path"; VENV="$2"; shift 2 ;;
    --detect) DETECT_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

# --- which system is this? -------------------------------------------------
detect_os() {
  [ -r "$OS_RELEASE" ] || { echo "unsupported: no $OS_RELEASE"; return 1; }
  local ID="" VERSION_ID="" VERSION_CODENAME="" PRETTY_NAME=""
  # shellcheck disable=SC1090
  . "$OS_RELEASE"
  if [ "$VERSION_CODENAME" = "bookworm" ] && { [ "$ID" = "raspbian" ] || [ -e "$RPI_ISSUE" ]; }; then
    echo "rpios"; return 0
  fi
  if [ "$ID" = "debian" ] && [ "$VERSION_ID" = "12" ]; then
    echo "debian12"; return 0
  fi
  echo "unsupported: ${PRETTY_NAME:-$ID $VERSION_ID}"
  return 1
}

if ! OS="$(detect_os)"; then
  die "this system is not supported ($OS). Clinicam installs on Debian 12 (bookworm) or Raspberry Pi OS Bookworm."
fi
if [ "$DETECT_ONLY" = 1 ]; then echo "$OS"; exit 0; fi

case "$ROLE" in
  server|appliance|demo|dev) ;;
  "") die "choose a role: --role server|appliance|demo|dev (see --help)" ;;
  *) die "unknown role '$ROLE': use server, appliance, demo or dev" ;;
esac

# --- system packages -------------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "run as root or install sudo"
  SUDO="sudo"
fi

# --- the appliance on Raspberry Pi OS: the flashable image's own steps --------
# customize.sh installs the release under /opt/clinicam (venv with system site packages,
# picamera2 from apt), the clinicam user, the units and the appliance's system settings;
# see hardware/image/README.md. Elsewhere the appliance role is a local venv as below.
if [ "$ROLE" = appliance ] && [ "$OS" = rpios ]; then
  CUSTOMIZE="${CLINICAM_CUSTOMIZE:-$HERE/hardware/image/customize.sh}"
  say "Raspberry Pi OS: installing the appliance with $CUSTOMIZE --root /"
  exec $SUDO bash "$CUSTOMIZE" --root / --source "$HERE"
fi

APT=(python3 python3-venv python3-pip ca-certificates)
case "$ROLE" in
  # fonts-noto-cjk: Chinese names drawn into the video (and the kiosk's pages) render as written
  # (a site with several media workers, [cluster], also runs Debian's redis-server somewhere)
  server|demo) APT+=(mosquitto fonts-dejavu-core fonts-noto-cjk) ;;
  appliance) APT+=(i2c-tools fonts-noto-cjk)
             [ "$OS" = rpios ] && APT+=(python3-picamera2 python3-libcamera python3-lgpio) ;;
  # debootstrap, parted: tests/image builds a root and a disk image; systemd: systemd-analyze;
  # nodejs, node-typescript: the pages' unit tests (node --test) and type check (tsc);
  # prometheus, redis-server: a real scraper of /metrics and the media workers' leases in the
  # tests (their own services are switched off)
  dev) APT+=(mosquitto chromium fonts-dejavu-core fonts-noto-cjk postgresql debootstrap parted systemd nodejs node-typescript iproute2 iptables ethtool prometheus redis-server) ;;
esac

missing=()
for pkg in "${APT[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true  # tests start their own
  fi
  if [ "$ROLE" = dev ] && [[ " ${missing[*]} " == *" redis-server "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true  # tests start their own
  fi
else
  say "system packages already installed"
fi

# --- Python environment ----------------------------------------------------
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$PYTHON is older than 3.11"

VENV_ARGS=()
# On the Pi, picamera2 and libcamera come from apt: the venv must see them.
if [ "$ROLE" = appliance ] && [ "$OS" = rpios ]; then VENV_ARGS+=(--system-site-packages); fi
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "${VENV_ARGS[@]}" "$VENV"
fi

case "$ROLE" in
  server) EXTRAS="server" ;;
  appliance) EXTRAS="appliance" ;;
  demo) EXTRAS="server,appliance" ;;
  dev) EXTRAS="dev" ;;
esac
say "installing clinicam[$EXTRAS] into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "${HERE}[$EXTRAS]"

# --- npm test tools (dev) ----------------------------------------------------
# axe-core for the accessibility tests. Debian's nodejs comes without npm (a separate
# package); a nodejs that bundles npm (e.g. NodeSource's) must not get Debian's beside it.
if [ "$ROLE" = dev ]; then
  if ! command -v npm >/dev/null 2>&1; then
    say "installing npm"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
  fi
  say "installing the npm test tools (tests/a11y: axe-core)"
  (cd "$HERE/tests/a11y" && npm ci --no-audit --no-fund --silent)
fi

say "done: $("$VENV/bin/clinicam" --version) ($OS, role $ROLE)"
