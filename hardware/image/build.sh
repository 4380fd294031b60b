#!/usr/bin/env bash
# Build a Clinicam appliance SD-card image from an official Raspberry Pi OS Lite image.
#
#   sudo hardware/image/build.sh INPUT.img OUTPUT.img [options]
#
#   INPUT.img             Raspberry Pi OS Lite (Bookworm, arm64) as downloaded (.img or .img.xz)
#   OUTPUT.img            the appliance image to write (refused if it exists, unless --force)
#   --grow-mb N           add N MiB to the root partition first (default 1024; 0 keeps the size)
#   --version V           release name (default: the version in pyproject.toml)
#   --offline-wheels DIR  pip installs from this folder of linux aarch64 cp311 wheels only
#   --dry-run             check the input and print the steps; change nothing
#   --force               overwrite OUTPUT
#
# Needs root, parted, e2fsprogs and losetup; on a machine that is not arm64 also
# qemu-user-static registered with binfmt_misc (installed with apt-get when missing).
# Everything inside the image is done by customize.sh (see hardware/image/README.md).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
INPUT=""
OUTPUT=""
GROW_MB=1024
VERSION=""
WHEELS=""
DRY_RUN=0
FORCE=0

MNT=""
MOUNTS=()
LOOPS=()
QEMU_COPY=""
MADE_OUTPUT=0

say() { printf '==> %s\n' "$*"; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
# Run a command, or only print it with --dry-run.
run() {
  if [ "$DRY_RUN" = 1 ]; then printf '    %s\n' "$*"; else "$@"; fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --grow-mb) [ $# -ge 2 ] || die "--grow-mb needs a number"; GROW_MB="$2"; shift 2 ;;
    --version) [ $# -ge 2 ] || die "--version needs a value"; VERSION="$2"; shift 2 ;;
    --offline-wheels) [ $# -ge 2 ] || die "--offline-wheels needs a directory"; WHEELS="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *)
      if [ -z "$INPUT" ]; then INPUT="$1"
      elif [ -z "$OUTPUT" ]; then OUTPUT="$1"
      else die "too many arguments (see --help)"; fi
      shift ;;
  esac
done

# --- checks before anything is written ---------------------------------------
check_args() {
  if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" -ne 0 ]; then
    die "must be run as root (it attaches loop devices and mounts the image): sudo $0 ..."
  fi
  if [ -z "$INPUT" ] || [ -z "$OUTPUT" ]; then
    die "usage: build.sh INPUT.img OUTPUT.img [--grow-mb N] (see --help)"
  fi
  [ -f "$INPUT" ] || die "input $INPUT does not exist (download Raspberry Pi OS Lite, Bookworm, arm64)"
  [[ "$GROW_MB" =~ ^[0-9]+$ ]] || die "--grow-mb must be a number of MiB, not '$GROW_MB'"
  [ -z "$WHEELS" ] || [ -d "$WHEELS" ] || die "--offline-wheels $WHEELS is not a directory"
  if [ -e "$OUTPUT" ]; then
    [ "$(realpath "$INPUT")" != "$(realpath "$OUTPUT")" ] || die "OUTPUT must not be the input image"
    [ "$FORCE" = 1 ] || die "$OUTPUT exists (use --force to overwrite it)"
  fi
}

# Tools: missing ones are installed with apt-get when possible (not with --dry-run).
need_tools() {
  local tool pkg missing=() pkgs=()
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 && continue
    missing+=("$tool")
    case "$tool" in
      parted) pkg=parted ;; e2fsck|resize2fs) pkg=e2fsprogs ;; xz) pkg=xz-utils ;;
      qemu-aarch64-static) pkg=qemu-user-static ;; *) pkg=util-linux ;;
    esac
    pkgs+=("$pkg")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  if [ "$DRY_RUN" = 0 ] && command -v apt-get >/dev/null; then
    say "installing missing tools (${missing[*]}): apt-get install ${pkgs[*]}"
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
      || die "could not install ${pkgs[*]}: install them and run again"
  else
    die "missing tools: ${missing[*]} (install the packages ${pkgs[*]})"
  fi
}

# Partition N of an image as "START SIZE" in bytes; the table must be an MBR (msdos).
PARTED_OUT=""
read_partitions() {
  PARTED_OUT="$(LC_ALL=C parted -s -m "$1" unit B print 2>&1)" \
    || die "$1 is not a disk image with a partition table (parted: $(printf '%s' "$PARTED_OUT" | tail -n 1)); expected a Raspberry Pi OS Lite .img"
  printf '%s\n' "$PARTED_OUT" | awk -F: 'NR == 2 && $6 != "msdos" { exit 1 }' \
    || die "$1 has no MBR (msdos) partition table: not a Raspberry Pi OS image"
  if ! partition 1 >/dev/null || ! partition 2 >/dev/null; then
    die "$1 needs a boot (1) and a root (2) partition: not a Raspberry Pi OS image"
  fi
  printf '%s\n' "$PARTED_OUT" | awk -F: '$1 == 2 && $5 == "ext4" { ok = 1 } END { exit !ok }' \
    || die "$1: partition 2 is not ext4: not a Raspberry Pi OS image"
}
partition() {
  printf '%s\n' "$PARTED_OUT" | awk -F: -v n="$1" \
    '$1 == n { gsub("B", "", $2); gsub("B", "", $4); print $2, $4; f = 1 } END { exit !f }'
}

# --- steps ---------------------------------------------------------------------
copy_image() {
  say "copy $INPUT to $OUTPUT"
  MADE_OUTPUT=1
  case "$INPUT" in
    *.xz) if [ "$DRY_RUN" = 1 ]; then run xz -dc "$INPUT" '>' "$OUTPUT"; else xz -dc "$INPUT" >"$OUTPUT"; fi ;;
    *) run cp --sparse=always -- "$INPUT" "$OUTPUT" ;;
  esac
  [ "$DRY_RUN" = 1 ] || read_partitions "$OUTPUT"
}

grow_image() {
  [ "$GROW_MB" -gt 0 ] || { say "root partition keeps its size (--grow-mb 0)"; return 0; }
  say "grow the image and its root partition by $GROW_MB MiB"
  run truncate -s "+${GROW_MB}M" "$OUTPUT"
  run parted -s "$OUTPUT" resizepart 2 100%
  [ "$DRY_RUN" = 1 ] || read_partitions "$OUTPUT"
}

LOOP_BOOT="/dev/loopX(boot)"
LOOP_ROOT="/dev/loopY(root)"
attach() {
  local boot root
  read -r -a boot <<<"$(partition 1 || echo BOOT_START BOOT_SIZE)"  # unknown: a dry run of .xz
  read -r -a root <<<"$(partition 2 || echo ROOT_START ROOT_SIZE)"
  say "attach the partitions as loop devices (boot at ${boot[0]}, root at ${root[0]})"
  if [ "$DRY_RUN" = 1 ]; then
    run losetup -f --show -o "${boot[0]}" --sizelimit "${boot[1]}" "$OUTPUT"
    run losetup -f --show -o "${root[0]}" --sizelimit "${root[1]}" "$OUTPUT"
  else
    LOOP_BOOT="$(losetup -f --show -o "${boot[0]}" --sizelimit "${boot[1]}" "$OUTPUT")"
    LOOPS+=("$LOOP_BOOT")
    LOOP_ROOT="$(losetup -f --show -o "${root[0]}" --sizelimit "${root[1]}" "$OUTPUT")"
    LOOPS+=("$LOOP_ROOT")
  fi
  # e2fsck: 0 clean, 1 errors corrected; anything else stops the build.
  local rc=0
  run e2fsck -p -f "$LOOP_ROOT" || rc=$?
  [ "$rc" -le 1 ] || die "e2fsck found errors it could not correct on the root partition (exit $rc)"
  [ "$GROW_MB" = 0 ] || run resize2fs "$LOOP_ROOT"
}

mount_at() {  # SOURCE TARGET [mount options...]
  local src="$1" target="$2"; shift 2
  if [ "$DRY_RUN" = 1 ]; then run mount "$@" "$src" "$target"; return 0; fi
  mkdir -p "$target"
  mount "$@" "$src" "$target"
  MOUNTS+=("$target")
}

mount_image() {
  if [ "$DRY_RUN" = 1 ]; then MNT="/tmp/clinicam-image.XXXXXX"; else
    MNT="$(mktemp -d "${TMPDIR:-/tmp}/clinicam-image.XXXXXX")"; fi
  say "mount the root at $MNT, the boot partition at $MNT/boot/firmware"
  mount_at "$LOOP_ROOT" "$MNT"
  if [ "$DRY_RUN" = 0 ] && [ ! -f "$MNT/etc/rpi-issue" ]; then
    die "$INPUT is not a Raspberry Pi OS image (no /etc/rpi-issue in its root partition)"
  fi
  mount_at "$LOOP_BOOT" "$MNT/boot/firmware"
  say "bind /dev, /dev/pts, /proc and /sys for the chroot"
  mount_at /dev "$MNT/dev" --bind
  mount_at /dev/pts "$MNT/dev/pts" --bind
  mount_at proc "$MNT/proc" -t proc
  mount_at sysfs "$MNT/sys" -t sysfs
}

# An arm64 root on another architecture runs through qemu-aarch64-static + binfmt_misc.
elf_machine() { od -An -t u2 -j 18 -N 2 "$1" | tr -d ' '; }
check_emulation() {
  if [ "$DRY_RUN" = 1 ]; then
    say "if the image is arm64 and this machine is not: check qemu-aarch64-static + binfmt_misc"
    return 0
  fi
  local image host
  image="$(elf_machine "$MNT/usr/bin/env")"
  host="$(elf_machine "$(command -v env)")"
  if [ "$image" != "$host" ]; then
    [ "$image" = 183 ] || die "the image's programs are for ELF machine $image, not arm64: unsupported"
    say "arm64 image on $(uname -m): running its programs through qemu-aarch64-static"
    need_tools qemu-aarch64-static
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
      [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
      { command -v update-binfmts >/dev/null && update-binfmts --enable qemu-aarch64; } \
        || { [ -x /lib/systemd/systemd-binfmt ] && /lib/systemd/systemd-binfmt; } || true
    fi
    grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
      || die "binfmt_misc has no enabled qemu-aarch64 entry: apt-get install qemu-user-static binfmt-support (in a container the host must register it), or build on an arm64 machine"
    if [ ! -e "$MNT/usr/bin/qemu-aarch64-static" ]; then
      cp "$(command -v qemu-aarch64-static)" "$MNT/usr/bin/qemu-aarch64-static"
      QEMU_COPY="$MNT/usr/bin/qemu-aarch64-static"
    fi
  fi
  chroot "$MNT" /usr/bin/true || die "cannot run programs inside the image (chroot $MNT /usr/bin/true failed)"
}

customize() {
  local args=(--root "$MNT" --source "$REPO")
  [ -z "$VERSION" ] || args+=(--version "$VERSION")
  [ -z "$WHEELS" ] || args+=(--offline-wheels "$WHEELS")
  say "customize the image: customize.sh ${args[*]}"
  run bash "$HERE/customize.sh" "${args[@]}"
}

# Always: leave nothing mounted or attached; remove an image that is not complete.
cleanup() {
  local rc=$? i
  set +e
  if [ "$DRY_RUN" = 1 ]; then
    say "unmount everything and detach the loop devices (always, also after a failure)"
    run umount "$MNT/sys" "$MNT/proc" "$MNT/dev/pts" "$MNT/dev" "$MNT/boot/firmware" "$MNT"
    run losetup -d "$LOOP_ROOT" "$LOOP_BOOT"
    exit "$rc"
  fi
  [ -z "$QEMU_COPY" ] || rm -f "$QEMU_COPY"
  [ ${#MOUNTS[@]} -eq 0 ] || { say "unmount ${MOUNTS[*]}"; sync; }
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"
  done
  for i in "${LOOPS[@]}"; do losetup -d "$i"; done
  [ ${#LOOPS[@]} -eq 0 ] || say "detached ${LOOPS[*]}"
  [ -z "$MNT" ] || rmdir "$MNT" 2>/dev/null
  if [ "$rc" -ne 0 ] && [ "$MADE_OUTPUT" = 1 ]; then
    rm -f "$OUTPUT"
    printf 'build.sh: failed (exit %s): removed the incomplete %s\n' "$rc" "$OUTPUT" >&2
  fi
  exit "$rc"
}

check_args
tools=(parted)
if [ "$DRY_RUN" = 0 ]; then tools+=(losetup mount umount chroot e2fsck resize2fs truncate); fi
case "$INPUT" in *.xz) tools+=(xz) ;; *) ;; esac
need_tools "${tools[@]}"
case "$INPUT" in *.xz) ;; *) read_partitions "$INPUT" ;; esac
[ "$DRY_RUN" = 0 ] || say "dry run: nothing is written; the steps would be:"
trap cleanup EXIT
copy_image
grow_image
attach
mount_image
check_emulation
customize
if [ "$DRY_RUN" = 0 ]; then
  say "done: $OUTPUT (flash it with Raspberry Pi Imager, \"Use custom\", or dd; see hardware/image/README.md)"
fi
