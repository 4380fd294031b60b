#!/usr/bin/env bash
# Turn a Raspberry Pi OS Bookworm root filesystem into a Clinicam camera appliance.
#
#   customize.sh --root DIR [--source REPO_DIR] [--version V] [--offline-wheels DIR] [--ssh off|keep]
#
#   --root DIR            the root filesystem to change: / on a running Pi, or a mounted image
#   --source REPO_DIR     the Clinicam checkout to install (default: the one holding this script)
#   --version V           release name under /opt/clinicam/releases (default: pyproject's version)
#   --offline-wheels DIR  pip installs only from this folder of wheels (no index)
#   --ssh off|keep        off: disable SSH at boot (default for an image); keep: leave it as it
#                         is (default for --root /, so a Pi installed over SSH stays reachable)
#
# Every step is idempotent: a second run changes nothing. Used by build.sh (an image)
# and by `install.sh --role appliance` (a running Raspberry Pi OS). Environment:
# CLINICAM_SKIP_APT=1 skips apt, CLINICAM_SKIP_PIP=1 creates the venv but installs no
# Python packages into it (tests).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FILES="$HERE/files"
ROOT=""
SOURCE="$(cd "$HERE/../.." && pwd)"
VERSION=""
WHEELS=""
SSH_MODE=""
STEP="start"
APP_USER="clinicam"
APP_GROUPS=(video i2c gpio)
CHROOT_READY=0
OWN_POLICY=0
RESOLV_SWAPPED=0
POLICY_MARK="# clinicam customize.sh: no service starts while installing into an image"
CHROOT_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { printf '==> [%s] %s\n' "$STEP" "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'customize.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT="$2"; shift 2 ;;
    --source) [ $# -ge 2 ] || die "--source needs a directory"; SOURCE="$2"; shift 2 ;;
    --version) [ $# -ge 2 ] || die "--version needs a value"; VERSION="$2"; shift 2 ;;
    --offline-wheels) [ $# -ge 2 ] || die "--offline-wheels needs a directory"; WHEELS="$2"; shift 2 ;;
    --ssh) [ $# -ge 2 ] || die "--ssh needs off or keep"; SSH_MODE="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

[ -n "$ROOT" ] || die "--root is required (/ on a running Pi, or the mounted image's root)"
[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
ROOT="$(cd "$ROOT" && pwd)"
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages, users and units into $ROOT)"
[ -f "$SOURCE/pyproject.toml" ] || die "--source $SOURCE is not a Clinicam checkout (no pyproject.toml)"
SOURCE="$(cd "$SOURCE" && pwd)"
if [ -z "$VERSION" ]; then
  VERSION="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$SOURCE/pyproject.toml" | head -n 1)"
fi
[[ "$VERSION" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || die "bad release version '$VERSION'"
[ -z "$WHEELS" ] || [ -d "$WHEELS" ] || die "--offline-wheels $WHEELS is not a directory"
if [ -z "$SSH_MODE" ]; then
  if [ "$ROOT" = / ]; then SSH_MODE=keep; else SSH_MODE=off; fi
fi
case "$SSH_MODE" in off|keep) ;; *) die "--ssh must be off or keep, not '$SSH_MODE'" ;; esac

# Paths inside the root.
r() { if [ "$ROOT" = / ]; then printf '%s' "$1"; else printf '%s%s' "$ROOT" "$1"; fi; }
OPT=/opt/clinicam
RELEASE="$OPT/releases/$VERSION"
BOOT=/boot/firmware

# --- running commands inside the root ---------------------------------------
# A root other than / is entered with chroot: its own python3, apt and dpkg run there
# (an arm64 image on an x86 host needs qemu-user-static with binfmt: build.sh checks it).
# While inside, services are kept from starting (policy-rc.d) and the host's DNS is used.
chroot_prepare() {
  [ "$ROOT" != / ] && [ "$CHROOT_READY" = 0 ] || return 0
  CHROOT_READY=1
  local policy resolv backup
  policy="$(r /usr/sbin/policy-rc.d)"
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_MARK" >"$policy"
    chmod 0755 "$policy"
    OWN_POLICY=1
  fi
  resolv="$(r /etc/resolv.conf)"
  backup="$resolv.clinicam-orig"
  if [ -e "$backup" ] || [ -L "$backup" ]; then  # left by a run that was killed
    rm -f "$resolv"; mv "$backup" "$resolv"
  fi
  if [ -r /etc/resolv.conf ]; then
    if [ -e "$resolv" ] || [ -L "$resolv" ]; then mv "$resolv" "$backup"; fi
    cp -L /etc/resolv.conf "$resolv"
    RESOLV_SWAPPED=1
  fi
}

chroot_restore() {
  local resolv
  resolv="$(r /etc/resolv.conf)"
  if [ "$RESOLV_SWAPPED" = 1 ]; then
    rm -f "$resolv"
    if [ -e "$resolv.clinicam-orig" ] || [ -L "$resolv.clinicam-orig" ]; then
      mv "$resolv.clinicam-orig" "$resolv"
    fi
    RESOLV_SWAPPED=0
  fi
  if [ "$OWN_POLICY" = 1 ] && grep -qF "$POLICY_MARK" "$(r /usr/sbin/policy-rc.d)" 2>/dev/null; then
    rm -f "$(r /usr/sbin/policy-rc.d)"
    OWN_POLICY=0
  fi
}
trap chroot_restore EXIT

in_root() {
  if [ "$ROOT" = / ]; then
    env DEBIAN_FRONTEND=noninteractive "$@"
  else
    chroot_prepare
    chroot "$ROOT" /usr/bin/env -i PATH="$CHROOT_PATH" HOME=/root LANG=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive "$@"
  fi
}

# Install SRC as DEST (a path inside the root) with MODE, only if it differs.
put_file() {
  local src="$1" dest mode="$3"
  dest="$(r "$2")"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    chmod "$mode" "$dest"; chown 0:0 "$dest"
    note "unchanged: $2"
  else
    install -D -o 0 -g 0 -m "$mode" "$src" "$dest"
    note "installed: $2"
  fi
}

# Create DIR (inside the root) with OWNER:GROUP (names from the root's own files) and MODE.
put_dir() {
  local dir owner="$2" group="$3" mode="$4" uid gid
  dir="$(r "$1")"
  uid="$(id_in_root passwd "$owner")"; gid="$(id_in_root group "$group")"
  mkdir -p "$dir"
  chown "$uid:$gid" "$dir"
  chmod "$mode" "$dir"
  note "$1 $owner:$group $mode"
}

# The numeric id of a user (passwd) or group (group) in the root's own database.
id_in_root() {
  local id
  id="$(awk -F: -v n="$2" '$1 == n { print $3; exit }' "$(r "/etc/$1")")"
  [ -n "$id" ] || die "no $1 entry '$2' in $(r "/etc/$1")"
  printf '%s' "$id"
}

in_group_file() { grep -q "^$1:" "$(r /etc/group)"; }

# --- which system is in the root? -------------------------------------------
FLAVOUR=""
detect_root() {
  STEP="system"
  local os_release
  os_release="$(r /etc/os-release)"
  [ -r "$os_release" ] || os_release="$(r /usr/lib/os-release)"
  [ -r "$os_release" ] || die "$ROOT has no etc/os-release: not a Debian or Raspberry Pi OS root"
  FLAVOUR="$(
    ID="" VERSION_ID="" VERSION_CODENAME=""
    # shellcheck disable=SC1090
    . "$os_release"
    if [ "$VERSION_CODENAME" = bookworm ] && { [ "$ID" = raspbian ] || [ -e "$(r /etc/rpi-issue)" ]; }; then
      echo rpios
    elif [ "$ID" = debian ] && [ "$VERSION_ID" = 12 ]; then
      echo debian12
    else
      echo "unsupported (${ID:-?} ${VERSION_ID:-?})"
    fi
  )"
  case "$FLAVOUR" in
    rpios|debian12) log "root $ROOT: $FLAVOUR, release $VERSION from $SOURCE" ;;
    *) die "the root $ROOT is $FLAVOUR: Clinicam needs Raspberry Pi OS Bookworm (or Debian 12)" ;;
  esac
}

# --- 1. packages ---------------------------------------------------------------
pkg_installed() {
  awk -v p="$1" '
    /^Package: / { name = $2 }
    /^Status: / && name == p && $0 ~ /install ok installed/ { found = 1 }
    END { exit !found }' "$(r /var/lib/dpkg/status)"
}

step_packages() {
  STEP="1 packages"
  local pkgs=(python3 python3-venv i2c-tools libcap2-bin network-manager mosquitto-clients
              ca-certificates) missing=() pkg
  if [ "$FLAVOUR" = rpios ]; then
    # picamera2 is only in Raspberry Pi OS's archive; cage and Chromium run the clinic
    # station on the HDMI screen (clinicam-kiosk.service; Raspberry Pi OS names the
    # browser chromium-browser and provides /usr/bin/chromium).
    # fonts-noto-cjk: the kiosk shows the experts' and the clinic's names in Chinese.
    pkgs+=(python3-picamera2 python3-libcamera python3-lgpio cage chromium-browser fonts-noto-cjk)
  else
    log "note: python3-picamera2 is only in Raspberry Pi OS's archive: skipped on $FLAVOUR (and the kiosk's cage and Chromium with it)"
  fi
  if [ "${CLINICAM_SKIP_APT:-0}" = 1 ]; then
    log "CLINICAM_SKIP_APT=1: not installing ${pkgs[*]}"
    return 0
  fi
  for pkg in "${pkgs[@]}"; do pkg_installed "$pkg" || missing+=("$pkg"); done
  if [ ${#missing[@]} -eq 0 ]; then
    log "apt packages already installed"
    return 0
  fi
  log "apt-get install ${missing[*]}"
  in_root apt-get update -qq
  in_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ "$ROOT" = / ] || in_root apt-get clean
}

# --- 2. the clinicam user ----------------------------------------------------
shadow_tool() {  # useradd/groupadd/usermod against the root's own /etc files
  local tool="$1"; shift
  if [ "$ROOT" = / ]; then "$tool" "$@"; else "$tool" --root "$ROOT" "$@"; fi
}

step_user() {
  STEP="2 user"
  local group nologin=/usr/sbin/nologin missing=() current
  for group in "${APP_GROUPS[@]}"; do
    if ! in_group_file "$group"; then
      shadow_tool groupadd --system "$group"
      note "created group $group"
    fi
  done
  if ! grep -q "^$APP_USER:" "$(r /etc/passwd)"; then
    shadow_tool useradd --system --user-group --home-dir /var/lib/clinicam --no-create-home \
      --shell "$nologin" --comment "Clinicam appliance" "$APP_USER"
    log "created system user $APP_USER (no login shell)"
  else
    log "user $APP_USER exists"
  fi
  current="$(awk -F: -v u="$APP_USER" '$1 == u { print $7 }' "$(r /etc/passwd)")"
  [ "$current" = "$nologin" ] || shadow_tool usermod --shell "$nologin" "$APP_USER"
  for group in "${APP_GROUPS[@]}"; do
    awk -F: -v g="$group" -v u="$APP_USER" \
      '$1 == g { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) f = 1 } END { exit !f }' \
      "$(r /etc/group)" || missing+=("$group")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    shadow_tool usermod --append --groups "$(IFS=,; echo "${missing[*]}")" "$APP_USER"
  fi
  log "$APP_USER is in ${APP_GROUPS[*]}"
}

# --- 3. config and state folders ----------------------------------------------
step_dirs() {
  STEP="3 folders"
  log "config /etc/clinicam (appliance.toml is written there by provisioning), state /var/lib/clinicam"
  put_dir /etc/clinicam root "$APP_USER" 0750
  put_dir /var/lib/clinicam "$APP_USER" "$APP_USER" 0750
}

# --- 4. the release: source, venv, packages, the current link ---------------
tree_hash() {
  (
    cd "$1"
    find . -printf '%y %m %p %l\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
  ) | sha256sum | cut -d' ' -f1
}

copy_source() {  # the checkout without caches, venvs, VCS data or build output
  local dest="$1"
  mkdir -p "$dest"
  tar -C "$SOURCE" -c --owner=0 --group=0 --numeric-owner --mode=u+rwX,go+rX,go-w \
    --exclude=.git --exclude=.venv --exclude=venv --exclude=__pycache__ --exclude='*.pyc' \
    --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache --exclude=.hypothesis \
    --exclude='*.egg-info' --exclude=./build --exclude=./dist --exclude=./tmp \
    --exclude=node_modules --exclude='*.img' --exclude='*.img.xz' . \
    | tar -C "$dest" -x --same-permissions --numeric-owner
}

step_release() {
  STEP="4 release"
  local rel stage venv hash stamp smoke
  rel="$(r "$RELEASE")"
  venv="$RELEASE/venv"
  mkdir -p "$rel"
  chmod 0755 "$(r /opt)" "$(r "$OPT")" "$(r "$OPT/releases")" "$rel"

  stage="$(r "$OPT/releases/.staging-$VERSION-$$")"
  rm -rf "$stage"
  copy_source "$stage"
  hash="$(tree_hash "$stage")"
  if [ -d "$rel/src" ] && [ "$(tree_hash "$rel/src")" = "$hash" ]; then
    rm -rf "$stage"
    log "source of $VERSION unchanged"
  else
    rm -rf "$rel/src"
    mv "$stage" "$rel/src"
    log "copied the source to $RELEASE/src"
  fi

  if [ ! -x "$(r "$venv/bin/python")" ] \
      || ! grep -qx 'include-system-site-packages = true' "$(r "$venv/pyvenv.cfg")"; then
    rm -rf "$(r "$venv")"
    log "python3 -m venv --system-site-packages $venv (the root's own python3)"
    in_root python3 -m venv --system-site-packages "$venv"
  else
    log "venv $venv exists (system site packages: picamera2 and libcamera come from apt)"
  fi

  # RELEASE.json is written last, as `clinicam appliance update` does: a release
  # without it is incomplete. Its source hash tells a rerun whether to reinstall.
  stamp="$rel/RELEASE.json"
  if [ "${CLINICAM_SKIP_PIP:-0}" = 1 ]; then
    log "CLINICAM_SKIP_PIP=1: the venv has no Python packages installed (no RELEASE.json)"
  elif [ -f "$stamp" ] && grep -qF "\"tree_sha256\": \"$hash\"" "$stamp"; then
    log "clinicam[appliance] already installed in $venv"
  else
    rm -f "$stamp"
    pip_install "$venv"
    smoke="$(in_root "$venv/bin/clinicam" --version)" \
      || die "smoke test failed: $venv/bin/clinicam --version (the release is not switched to)"
    log "smoke test: $smoke"
    printf '{"name": "%s", "source": "%s", "tree_sha256": "%s"}\n' \
      "$VERSION" "$SOURCE" "$hash" >"$stamp"
  fi

  link "releases/$VERSION" "$OPT/current"
  # Names older docs use (/opt/clinicam/.venv/bin/clinicam) and the units' Documentation=.
  link current/venv "$OPT/.venv" optional
  link current/src/README.md "$OPT/README.md" optional
}

pip_install() {
  local venv="$1" build="/var/tmp/clinicam-build-$$" wheels="/var/tmp/clinicam-wheels-$$"
  local args=(--disable-pip-version-check --no-cache-dir --quiet)
  # pip builds in the source folder; a scratch copy keeps the release's src pristine.
  cp -a "$(r "$RELEASE/src")" "$(r "$build")"
  if [ -n "$WHEELS" ]; then
    cp -a "$WHEELS" "$(r "$wheels")"
    args+=(--no-index --find-links "$wheels")
    log "pip install clinicam[appliance] from the wheels in $WHEELS (no index)"
  else
    log "pip install clinicam[appliance] (from the package index)"
  fi
  local rc=0
  in_root "$venv/bin/python" -m pip install "${args[@]}" "${build}[appliance]" || rc=$?
  rm -rf "$(r "$build")" "$(r "$wheels")"
  [ "$rc" = 0 ] || die "pip install failed (exit $rc): the release is not switched to"
}

# Point NAME (inside the root) at TARGET atomically: a new symlink, then rename over.
# A real file or folder in the way stops the run, or with "optional" only this link.
link() {
  local target="$1" name tmp
  name="$(r "$2")"
  if [ -L "$name" ] && [ "$(readlink "$name")" = "$target" ]; then
    note "$2 -> $target (unchanged)"
    return 0
  fi
  if [ -e "$name" ] && [ ! -L "$name" ]; then
    [ "${3:-}" = optional ] || die "$2 exists and is not a symlink: move it away first"
    log "warning: $2 exists and is not a symlink: left as it is (not -> $target)"
    return 0
  fi
  tmp="$name.new-$$"
  ln -sfn "$target" "$tmp"
  mv -T "$tmp" "$name"
  log "$2 -> $target"
}

# --- 5. systemd units -----------------------------------------------------------
UNITS=()
step_units() {
  STEP="5 units"
  local unit name
  # Every unit of the repository's systemd/ folder except the server's, as they are.
  for unit in "$SOURCE"/systemd/*.service "$SOURCE"/systemd/*.timer \
              "$SOURCE"/systemd/*.socket "$SOURCE"/systemd/*.path; do
    [ -f "$unit" ] || continue
    name="$(basename "$unit")"
    case "$name" in clinicam-server*) continue ;; esac
    put_file "$unit" "/etc/systemd/system/$name" 0644
    UNITS+=("$name")
  done
  put_file "$FILES/etc/systemd/system/clinicam-provision.service" \
    /etc/systemd/system/clinicam-provision.service 0644
  UNITS+=(clinicam-provision.service)
  for name in "${UNITS[@]}"; do
    if grep -q '^\[Install\]' "$(r "/etc/systemd/system/$name")"; then enable_unit "$name"; fi
  done
  if [ "$ROOT" = / ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl start clinicam-update.path  # server-triggered updates, without a reboot
    if systemctl -q is-active clinicam-appliance.service; then
      systemctl restart clinicam-appliance.service
      log "restarted clinicam-appliance.service on the new release"
    fi
  fi
}

enable_unit() {
  local name="$1" wanted target
  if command -v systemctl >/dev/null && [ "${CLINICAM_NO_SYSTEMCTL:-0}" != 1 ]; then
    if [ "$ROOT" = / ]; then systemctl enable "$name"; else systemctl --root="$ROOT" enable "$name"; fi
  else  # no systemctl on this host: the symlinks `systemctl enable` would make
    wanted="$(sed -n 's/^WantedBy=//p' "$(r "/etc/systemd/system/$name")")"
    for target in $wanted; do
      mkdir -p "$(r "/etc/systemd/system/$target.wants")"
      ln -sfn "/etc/systemd/system/$name" "$(r "/etc/systemd/system/$target.wants/$name")"
    done
  fi
  log "enabled $name"
}

# --- 6. SSH off by default -----------------------------------------------------
step_ssh() {
  STEP="6 ssh"
  local unit flag found=0
  if [ "$SSH_MODE" = keep ]; then
    log "--ssh keep: SSH left as it is on this running system (--ssh off disables it)"
    return 0
  fi
  for unit in ssh.service ssh.socket; do
    if [ -e "$(r "/lib/systemd/system/$unit")" ] || [ -e "$(r "/usr/lib/systemd/system/$unit")" ]; then
      found=1
      if command -v systemctl >/dev/null && [ "${CLINICAM_NO_SYSTEMCTL:-0}" != 1 ]; then
        if [ "$ROOT" = / ]; then systemctl -q disable "$unit"; else systemctl -q --root="$ROOT" disable "$unit"; fi
      fi
    fi
  done
  # The links systemctl would remove (also when there is no systemctl).
  rm -f "$(r /etc/systemd/system/sshd.service)" \
        "$(r /etc/systemd/system/multi-user.target.wants/ssh.service)" \
        "$(r /etc/systemd/system/sockets.target.wants/ssh.socket)"
  for flag in "$BOOT/ssh" "$BOOT/ssh.txt" /boot/ssh /boot/ssh.txt; do
    if [ -e "$(r "$flag")" ]; then rm -f "$(r "$flag")"; note "removed the SSH flag file $flag"; fi
  done
  if [ "$found" = 1 ]; then log "ssh.service disabled"; else log "no SSH server installed"; fi
  log "a technician enables SSH on purpose with an empty file 'ssh' on the boot partition"
}

# --- 7. journal in RAM -----------------------------------------------------------
step_journal() {
  STEP="7 journal"
  log "journald: Storage=volatile, RuntimeMaxUse=32M (no log writes to the SD card)"
  put_file "$FILES/etc/systemd/journald.conf.d/clinicam.conf" \
    /etc/systemd/journald.conf.d/clinicam.conf 0644
}

# --- 8. I2C and camera ----------------------------------------------------------
# KEY=VALUE present once as an active line: kept; KEY with another value: set; a
# commented "#KEY=VALUE" (Raspberry Pi OS's default for I2C): uncommented; else
# appended under [all] (adding the [all] header if the file ends in another section).
config_line() {
  local file="$1" key="$2" value="$3" line last
  line="$key=$value"
  if grep -qxF "$line" "$file"; then
    note "unchanged: $line"
  elif grep -qE "^[[:space:]]*${key//./\\.}=" "$file"; then
    sed -i -E "s|^[[:space:]]*${key//./\\.}=.*|$line|" "$file"; note "set: $line"
  elif grep -qxE "#[[:space:]]*${line//./\\.}" "$file"; then
    sed -i -E "0,/^#[[:space:]]*${line//./\\.}\$/s||$line|" "$file"; note "uncommented: $line"
  else
    last="$(grep -E '^\[[^]]*\]' "$file" | tail -n 1 || true)"
    if [ -n "$last" ] && [ "$last" != "[all]" ]; then printf '\n[all]\n' >>"$file"; fi
    printf '%s\n' "$line" >>"$file"; note "added: $line"
  fi
}

step_boot_config() {
  STEP="8 i2c+camera"
  local config
  config="$(r "$BOOT/config.txt")"
  put_file "$FILES/etc/modules-load.d/clinicam.conf" /etc/modules-load.d/clinicam.conf 0644
  if [ ! -f "$config" ]; then
    log "no $BOOT/config.txt in this root (not a Raspberry Pi boot partition): skipped"
    return 0
  fi
  log "$BOOT/config.txt: I2C on, camera auto-detect"
  config_line "$config" dtparam=i2c_arm on
  config_line "$config" camera_auto_detect 1
}

detect_root
chroot_prepare
step_packages
step_user
step_dirs
step_release
step_units
step_ssh
step_journal
step_boot_config
STEP="done"
chroot_restore
log "Clinicam $VERSION installed into $ROOT ($FLAVOUR)"
if [ "$ROOT" = / ]; then
  log "reboot to apply the journal and config.txt changes; the first boot with clinicam.toml on $BOOT provisions the appliance"
fi
