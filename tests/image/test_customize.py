"""The flashable appliance image: customize.sh and build.sh on a Debian root built here.

CI cannot download Raspberry Pi OS, so the tests build a Debian bookworm root with
debootstrap (through this machine's own apt mirror, cached as a tarball per day) and
run the real customisation against it: apt inside the chroot, the clinicam user, the
release with its venv and `pip install .[appliance]`, units, SSH, journal, config.txt.
A second run must change nothing. build.sh runs on a synthetic two-partition disk
image carrying the same root, with an /etc/rpi-issue as Raspberry Pi OS has.

Needs root (as CI runs): chroot, useradd --root, loop devices and mounts.
"""

from __future__ import annotations

import configparser
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "hardware" / "image"
CUSTOMIZE = IMAGE_DIR / "customize.sh"
BUILD = IMAGE_DIR / "build.sh"
VERSION_MATCH = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
assert VERSION_MATCH is not None
VERSION = VERSION_MATCH.group(1)

# The Debian packages the test root starts with. openssh-server enables ssh.service,
# as Raspberry Pi Imager's "enable SSH" would: customize.sh must turn it off.
INCLUDE = ("python3", "python3-venv", "passwd", "systemd", "ca-certificates", "openssh-server")
CACHE = Path(os.environ.get("CLINICAM_IMAGE_CACHE", Path(tempfile.gettempdir()) / "clinicam-cache"))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Left out of the before/after comparison: apt's and pip's caches.
CACHES = ("var/cache/apt", "var/lib/apt/lists", "root/.cache")

# Raspberry Pi OS Bookworm's config.txt, shortened, with the camera line removed and the
# file ending in a [cm5] section: I2C must be uncommented in place, the camera line must
# go under a new [all].
PI_CONFIG = """\
# For more options and information see
# http://rptl.io/configtxt

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

# Automatically load overlays for detected DSI displays
display_auto_detect=1

# Run in 64-bit mode
arm_64bit=1

[cm4]
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host
"""

TIMINGS: dict[str, float] = {}


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail(
            "tests/image must run as root (CI does): they chroot into a Debian root, "
            "create users in it with useradd --root and mount disk images"
        )


def _run(
    args: list[str | Path], *, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root"} | (env or {})
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=full_env
    )


def _apt_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources)."""
    if override := os.environ.get("CLINICAM_DEBIAN_MIRROR"):
        return override
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in sources.read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            if (
                "bookworm" in fields.get("suites", "").split()
                and "deb" in fields.get("types", "").split()
                and fields.get("enabled", "yes") != "no"
            ):
                return fields["uris"].split()[0]
    one_line = Path("/etc/apt/sources.list")
    if one_line.exists():
        for line in one_line.read_text().splitlines():
            words = [w for w in re.sub(r"\[[^]]*\]", "", line).split() if w]
            if len(words) >= 3 and words[0] == "deb" and words[2] == "bookworm":
                return words[1]
    return "http://deb.debian.org/debian"


def _unmount_below(path: Path) -> None:
    """Unmount whatever a failed run left mounted inside PATH (deepest first)."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for target in sorted(mounts, key=len, reverse=True):
        if target == str(path) or target.startswith(f"{path}/"):
            subprocess.run(["umount", "-l", target], check=False)


def _remove_tree(path: Path) -> None:
    _unmount_below(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def bookworm_tarball() -> Path:
    """A debootstrapped Debian bookworm (minbase + INCLUDE), as a tarball cached per day."""
    _require_root()
    debootstrap = shutil.which("debootstrap", path=PATH)
    if debootstrap is None:
        pytest.fail("debootstrap is not installed: ./install.sh --role dev installs it")
    arch = _run(["dpkg", "--print-architecture"]).stdout.strip()
    key = hashlib.sha256(",".join(INCLUDE).encode()).hexdigest()[:8]
    tarball = CACHE / f"bookworm-{arch}-{datetime.date.today():%Y%m%d}-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    for old in CACHE.glob("bookworm-*"):  # an earlier day's root
        if old.is_dir():
            _remove_tree(old)
        else:
            old.unlink()
    work = CACHE / f"bookworm-build-{os.getpid()}"
    mirror = _apt_mirror()
    start = time.monotonic()
    result = _run(
        [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(INCLUDE)}",
            "bookworm",
            work,
            mirror,
        ],
        timeout=1200,
    )
    if result.returncode != 0:
        log = work / "debootstrap" / "debootstrap.log"
        detail = log.read_text()[-2000:] if log.exists() else result.stderr[-2000:]
        _remove_tree(work)
        pytest.fail(
            f"debootstrap of Debian bookworm from {mirror} failed (exit {result.returncode}): "
            f"cannot build the root the image tests need. Is the mirror reachable?\n{detail}"
        )
    TIMINGS["debootstrap"] = time.monotonic() - start
    partial = tarball.with_suffix(".partial")
    subprocess.run(
        ["tar", "--numeric-owner", "-C", str(work), "-cf", str(partial), "."], check=True
    )
    partial.replace(tarball)
    _remove_tree(work)
    return tarball


def _extract(tarball: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "--numeric-owner", "-C", str(dest), "-xf", str(tarball)], check=True)
    return dest


def _manifest(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path: mode, owner, group and the symlink target or the file's sha256."""
    entries: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        dirnames[:] = [d for d in dirnames if f"{rel_dir}/{d}".removeprefix("./") not in CACHES]
        for name in dirnames + filenames:
            path = base / name
            info = path.lstat()
            if path.is_symlink():
                content: object = os.readlink(path)
            elif path.is_file():
                with path.open("rb") as handle:
                    content = hashlib.file_digest(handle, "sha256").hexdigest()
            else:
                content = None
            entries[path.relative_to(root).as_posix()] = (
                oct(info.st_mode),
                info.st_uid,
                info.st_gid,
                content,
            )
    return entries


def _db(root: Path, name: str) -> dict[str, list[str]]:
    """The root's own /etc/passwd or /etc/group, by name."""
    lines = (root / "etc" / name).read_text().splitlines()
    return {fields[0]: fields for fields in (line.split(":") for line in lines if line)}


def _installed(root: Path, package: str) -> bool:
    status = (root / "var/lib/dpkg/status").read_text()
    for stanza in status.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", stanza, re.M):
            return "Status: install ok installed" in stanza
    return False


def _chroot(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run(["chroot", root, *args], timeout=120)


def _is_enabled(root: Path, unit: str) -> str:
    return _run(["systemctl", f"--root={root}", "is-enabled", unit]).stdout.strip()


@dataclass
class Customized:
    root: Path
    source: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    before: dict[str, tuple[object, ...]]
    after: dict[str, tuple[object, ...]]
    ssh_enabled_before: bool
    resolv_before: bytes


def _customize(root: Path, source: Path) -> subprocess.CompletedProcess[str]:
    return _run(["bash", CUSTOMIZE, "--root", root, "--source", source], timeout=900)


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of this checkout, so both runs install the same tree."""
    dest = tmp_path_factory.mktemp("source") / "clinicam"
    junk = (
        ".git",
        ".venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "*.egg-info",
        "node_modules",
    )
    shutil.copytree(REPO, dest, symlinks=True, ignore=shutil.ignore_patterns(*junk))
    return dest


@pytest.fixture(scope="module")
def customized(
    bookworm_tarball: Path, source_tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Customized]:
    """customize.sh run twice on a fresh copy of the root, with a Pi-like boot partition."""
    root = _extract(bookworm_tarball, tmp_path_factory.mktemp("image") / "root")
    boot = root / "boot" / "firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(PI_CONFIG)
    (boot / "ssh").write_text("")
    # pip inside the root trusts the same certificate authorities as this machine.
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/clinicam-test-ca.crt")
    (root / "etc/pip.conf").write_text("[global]\ncert = /etc/clinicam-test-ca.crt\n")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    ssh_before = (wants / "ssh.service").is_symlink()
    resolv_before = (root / "etc/resolv.conf").read_bytes()
    try:
        start = time.monotonic()
        first = _customize(root, source_tree)
        TIMINGS["customize"] = time.monotonic() - start
        if first.returncode != 0:
            pytest.fail(f"customize.sh failed:\n{first.stdout[-4000:]}\n{first.stderr[-4000:]}")
        before = _manifest(root)
        start = time.monotonic()
        second = _customize(root, source_tree)
        TIMINGS["customize again"] = time.monotonic() - start
        if second.returncode != 0:
            pytest.fail(f"customize.sh failed the second time:\n{second.stderr[-4000:]}")
        after = _manifest(root)
        print(f"image test timings (s): {TIMINGS}")
        yield Customized(root, source_tree, first, second, before, after, ssh_before, resolv_before)
    finally:
        _remove_tree(root.parent)


# --- customize.sh --------------------------------------------------------------


def test_apt_packages_are_installed_inside_the_root(customized: Customized) -> None:
    root = customized.root
    for package in (
        "i2c-tools",
        "libcap2-bin",
        "network-manager",
        "mosquitto-clients",
        "python3-venv",
        "ca-certificates",
    ):
        assert _installed(root, package), package
    assert "python3-picamera2 is only in Raspberry Pi OS's archive" in customized.first.stdout
    # While installing, no service of the root was started, and the root's files are back.
    assert not (root / "usr/sbin/policy-rc.d").exists()
    assert (root / "etc/resolv.conf").read_bytes() == customized.resolv_before
    assert not list((root / "etc").glob("resolv.conf.*"))
    inside = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "root").startswith(str(root)):
                    inside.append(proc.name)
            except OSError:
                continue
    assert inside == [], f"processes still running inside the root: {inside}"


def test_clinicam_is_an_unprivileged_system_user_in_the_device_groups(
    customized: Customized,
) -> None:
    passwd, groups = _db(customized.root, "passwd"), _db(customized.root, "group")
    user = passwd["clinicam"]
    assert user[6] in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
    assert user[5] == "/var/lib/clinicam"
    assert 0 < int(user[2]) < 1000  # a system account
    for group in ("video", "i2c", "gpio"):
        assert "clinicam" in groups[group][3].split(","), group
    shadow = _db(customized.root, "shadow")["clinicam"]
    assert shadow[1].startswith(("!", "*")), "the account must have no usable password"


def test_the_release_is_installed_and_current_points_at_it(customized: Customized) -> None:
    opt = customized.root / "opt/clinicam"
    assert (opt / "current").is_symlink()
    assert os.readlink(opt / "current") == f"releases/{VERSION}"
    release = opt / "releases" / VERSION
    src = release / "src"
    assert (src / "pyproject.toml").read_bytes() == (
        customized.source / "pyproject.toml"
    ).read_bytes()
    assert (src / "clinicam_app" / "cli.py").exists()
    assert (src / "systemd" / "clinicam-appliance.service").exists()
    for junk in (".git", ".venv", ".mypy_cache", ".pytest_cache"):
        assert not (src / junk).exists(), junk
    assert not list(src.rglob("__pycache__"))
    # Root owns the code; the service user cannot change it.
    for path in (release, src, src / "pyproject.toml", src / "clinicam"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (0, 0), path
        assert info.st_mode & 0o022 == 0, path
    cfg = (release / "venv" / "pyvenv.cfg").read_text()
    assert re.search(r"^include-system-site-packages = true$", cfg, re.M)
    # The venv is the root's own python's, and sees apt's packages (picamera2 on a Pi).
    probe = _chroot(
        customized.root,
        "/opt/clinicam/current/venv/bin/python",
        "-c",
        "import sys; print(sys.prefix); print('/usr/lib/python3/dist-packages' in sys.path)",
    )
    assert probe.stdout.split() == ["/opt/clinicam/current/venv", "True"], probe
    # pip installed the package with its appliance extras: the command the units run.
    version = _chroot(customized.root, "/opt/clinicam/current/venv/bin/clinicam", "--version")
    assert version.returncode == 0 and VERSION in version.stdout, version
    imports = _chroot(
        customized.root,
        "/opt/clinicam/current/venv/bin/python",
        "-c",
        "import aiortc, av, gpiozero, ai_edge_litert, firmware, clinicam",
    )
    assert imports.returncode == 0, imports.stderr
    # The names the units and docs use.
    assert os.readlink(opt / ".venv") == "current/venv"
    assert (opt / ".venv" / "bin" / "clinicam").exists()
    assert (opt / "README.md").read_bytes() == (customized.source / "README.md").read_bytes()
    # Complete, in the layout `clinicam appliance update` keeps (RELEASE.json last).
    assert json.loads((release / "RELEASE.json").read_text())["name"] == VERSION


def test_units_are_installed_and_enabled(customized: Customized) -> None:
    root = customized.root
    units = root / "etc/systemd/system"
    shipped = [
        p
        for p in sorted((customized.source / "systemd").glob("*.service"))
        if not p.name.startswith("clinicam-server")
    ]
    assert shipped, "the repository has no appliance unit"
    for unit in shipped:
        assert (units / unit.name).read_bytes() == unit.read_bytes(), unit.name
    assert not (units / "clinicam-server.service").exists()
    provision = configparser.ConfigParser(strict=False, interpolation=None)
    provision.optionxform = str  # type: ignore[assignment,method-assign]
    provision.read(units / "clinicam-provision.service")
    assert provision["Service"]["Type"] == "oneshot"
    assert provision["Service"]["ExecStart"] == (
        "/opt/clinicam/current/venv/bin/clinicam appliance provision --boot /boot/firmware"
    )
    assert "clinicam-appliance.service" in provision["Unit"]["Before"].split()
    assert provision["Install"]["WantedBy"] == "multi-user.target"
    # systemd itself accepts both units in this root (keys, ExecStart present inside it).
    verify = _run(
        [
            "systemd-analyze",
            f"--root={root}",
            "verify",
            "/etc/systemd/system/clinicam-provision.service",
            "/etc/systemd/system/clinicam-appliance.service",
            "/etc/systemd/system/clinicam-update.path",
            "/etc/systemd/system/clinicam-update.service",
        ]
    )
    assert verify.returncode == 0 and "Unknown" not in verify.stderr, verify.stderr
    assert (units / "clinicam-update.path").read_bytes() == (
        customized.source / "systemd" / "clinicam-update.path"
    ).read_bytes()
    assert not (units / "multi-user.target.wants" / "clinicam-update.service").exists()
    for name in (
        "clinicam-appliance.service",
        "clinicam-provision.service",
        "clinicam-update.path",
    ):
        link = units / "multi-user.target.wants" / name
        assert link.is_symlink(), name
        assert os.readlink(link) == f"/etc/systemd/system/{name}"
        assert _is_enabled(root, name) == "enabled", name


def test_ssh_is_off_and_the_boot_flag_is_gone(customized: Customized) -> None:
    root = customized.root
    assert customized.ssh_enabled_before, "the test root should start with ssh enabled"
    assert not (root / "etc/systemd/system/multi-user.target.wants/ssh.service").exists()
    assert not (root / "etc/systemd/system/sshd.service").is_symlink()
    assert _is_enabled(root, "ssh.service") == "disabled"
    assert not (root / "boot/firmware/ssh").exists()
    assert "removed the SSH flag file /boot/firmware/ssh" in customized.first.stdout


def test_the_journal_stays_in_ram(customized: Customized) -> None:
    dropin = customized.root / "etc/systemd/journald.conf.d/clinicam.conf"
    conf = configparser.ConfigParser()
    conf.optionxform = str  # type: ignore[assignment,method-assign]
    conf.read(dropin)
    assert conf["Journal"]["Storage"] == "volatile"
    assert conf["Journal"]["RuntimeMaxUse"] == "32M"


def test_config_and_state_folders_have_their_owners_and_modes(customized: Customized) -> None:
    root = customized.root
    passwd, groups = _db(root, "passwd"), _db(root, "group")
    clinicam_uid, clinicam_gid = int(passwd["clinicam"][2]), int(groups["clinicam"][2])
    config, state = (root / "etc/clinicam").stat(), (root / "var/lib/clinicam").stat()
    assert (config.st_uid, config.st_gid, config.st_mode & 0o7777) == (0, clinicam_gid, 0o750)
    assert (state.st_uid, state.st_gid, state.st_mode & 0o7777) == (
        clinicam_uid,
        clinicam_gid,
        0o750,
    )


def test_i2c_and_the_camera_are_enabled_once(customized: Customized) -> None:
    lines = (customized.root / "boot/firmware/config.txt").read_text().splitlines()
    assert lines.count("dtparam=i2c_arm=on") == 1
    assert lines.count("camera_auto_detect=1") == 1
    assert "#dtparam=i2c_arm=on" not in lines  # uncommented where Raspberry Pi OS has it
    assert lines.index("dtparam=i2c_arm=on") < lines.index("[cm4]")
    # appended after a new [all]: the file ended inside [cm5]
    assert lines[-2:] == ["[all]", "camera_auto_detect=1"]
    for kept in ("dtparam=audio=on", "#dtparam=spi=on", "[cm5]", "dtoverlay=dwc2,dr_mode=host"):
        assert lines.count(kept) == 1, kept
    modules = (customized.root / "etc/modules-load.d/clinicam.conf").read_text().split()
    assert "i2c-dev" in modules


def test_a_second_run_changes_nothing(customized: Customized) -> None:
    changed = sorted(
        path
        for path in customized.before.keys() | customized.after.keys()
        if customized.before.get(path) != customized.after.get(path)
    )
    assert changed == [], f"the second run changed: {changed[:20]}"
    assert "apt packages already installed" in customized.second.stdout
    assert "already installed in" in customized.second.stdout  # no second pip install


# --- build.sh --------------------------------------------------------------------


def _make_disk_image(path: Path, *, boot: Path, root: Path, root_mb: int) -> None:
    """An MBR image laid out like Raspberry Pi OS's: boot at 4 MiB, root after it."""
    boot_mb = 64
    total = 4 + boot_mb + root_mb
    with path.open("wb") as handle:
        handle.truncate(total * 2**20)
    parted = _run(
        [
            "parted",
            "-s",
            path,
            "mklabel",
            "msdos",
            "mkpart",
            "primary",
            "fat32",
            "4MiB",
            f"{4 + boot_mb}MiB",
            "mkpart",
            "primary",
            "ext4",
            f"{4 + boot_mb}MiB",
            "100%",
        ]
    )
    assert parted.returncode == 0, f"parted is needed (./install.sh --role dev): {parted.stderr}"
    for fs, source, start, size in (
        ("ext2", boot, 4, boot_mb),
        ("ext4", root, 4 + boot_mb, root_mb),
    ):
        made = _run(
            [
                "mke2fs",
                "-q",
                "-F",
                "-t",
                fs,
                "-b",
                "4096",
                "-d",
                source,
                "-E",
                f"offset={start * 2**20}",
                path,
                str(size * 256),
            ]
        )
        assert made.returncode == 0, made.stderr


def _loops_on(path: Path) -> str:
    return _run(["losetup", "-j", path]).stdout.strip()


def _mounts_named(word: str) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if word in line]


def _partition(path: Path, number: int) -> tuple[int, int]:
    out = _run(["parted", "-s", "-m", path, "unit", "B", "print"]).stdout
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == str(number):
            return int(fields[1].rstrip("B")), int(fields[3].rstrip("B"))
    raise AssertionError(f"no partition {number} in {path}: {out}")


def test_build_refuses_a_file_that_is_not_a_disk_image(tmp_path: Path) -> None:
    _require_root()
    not_image = tmp_path / "raspios.img"
    not_image.write_text("this is a download page, not an image\n" * 50_000)
    result = _run(["bash", BUILD, not_image, tmp_path / "out.img"])
    assert result.returncode != 0
    assert "not a disk image with a partition table" in result.stderr
    assert not (tmp_path / "out.img").exists()


def test_build_refuses_to_run_without_root() -> None:
    _require_root()  # to become someone else
    result = _run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "bash",
            BUILD,
            "/nonexistent.img",
            "/tmp/out.img",
        ]
    )
    assert result.returncode != 0
    assert "must be run as root" in result.stderr


def test_build_dry_run_prints_the_steps_and_changes_nothing(tmp_path: Path) -> None:
    _require_root()
    empty = tmp_path / "empty"
    empty.mkdir()
    image = tmp_path / "raspios.img"
    _make_disk_image(image, boot=empty, root=empty, root_mb=32)
    result = _run(["bash", BUILD, image, tmp_path / "out.img", "--dry-run", "--grow-mb", "8"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    boot_start, boot_size = _partition(image, 1)
    order = [
        f"cp --sparse=always -- {image} {tmp_path}/out.img",
        "truncate -s +8M",
        "parted -s",
        f"losetup -f --show -o {boot_start} --sizelimit {boot_size}",
        "resize2fs",
        "mount /dev/loopY(root) /tmp/clinicam-image.",
        "mount --bind /dev",
        "-t proc proc",
        f"bash {CUSTOMIZE} --root /tmp/clinicam-image.",
        "umount ",
        "losetup -d",
    ]
    positions = [out.find(step) for step in order]
    assert -1 not in positions, f"missing steps in:\n{out}"
    assert positions == sorted(positions), out
    assert not (tmp_path / "out.img").exists()
    assert _loops_on(image) == ""


def test_build_refuses_an_image_that_is_not_raspberry_pi_os(tmp_path: Path) -> None:
    """The root is mounted, found wanting, and everything is undone."""
    _require_root()
    debian = tmp_path / "debian-root"
    (debian / "etc").mkdir(parents=True)
    (debian / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    image, out = tmp_path / "debian.img", tmp_path / "out.img"
    _make_disk_image(image, boot=debian / "etc", root=debian, root_mb=32)
    result = _run(["bash", BUILD, image, out, "--grow-mb", "4"])
    assert result.returncode != 0
    assert "not a Raspberry Pi OS image (no /etc/rpi-issue" in result.stderr
    assert "removed the incomplete" in result.stderr
    assert not out.exists()
    assert _loops_on(out) == "" and _mounts_named("clinicam-image.") == []


def test_build_customizes_a_raspberry_pi_os_like_image(
    bookworm_tarball: Path, tmp_path: Path
) -> None:
    """build.sh end to end on an image whose root is the bookworm root plus rpi-issue.

    Raspberry Pi OS's apt packages (picamera2) are not in Debian and pip was exercised
    above, so this run skips both (CLINICAM_SKIP_APT=1, CLINICAM_SKIP_PIP=1).
    """
    root = _extract(bookworm_tarball, tmp_path / "root")
    (root / "etc/rpi-issue").write_text("Raspberry Pi reference 2024-11-19\n")
    (root / "boot/firmware").mkdir(parents=True, exist_ok=True)
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "config.txt").write_text(PI_CONFIG + "\n[all]\ncamera_auto_detect=1\n")
    (boot / "ssh").write_text("")
    used_mb = int(_run(["du", "-sm", root]).stdout.split()[0])
    image, out = tmp_path / "raspios.img", tmp_path / "clinicam.img"
    _make_disk_image(image, boot=boot, root=root, root_mb=used_mb + 160)
    shutil.rmtree(root)

    start = time.monotonic()
    result = _run(
        ["bash", BUILD, image, out, "--grow-mb", "64"],
        timeout=900,
        env={"CLINICAM_SKIP_APT": "1", "CLINICAM_SKIP_PIP": "1"},
    )
    TIMINGS["build.sh"] = time.monotonic() - start
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "root " in result.stdout and ": rpios," in result.stdout
    assert _loops_on(out) == "" and _mounts_named("clinicam-image.") == []
    assert out.stat().st_size == image.stat().st_size + 64 * 2**20
    root_size = _partition(out, 2)[1]
    assert root_size == _partition(image, 2)[1] + 64 * 2**20

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    loops: list[str] = []
    try:
        for number, target in ((2, mnt), (1, mnt / "boot/firmware")):
            offset, size = _partition(out, number)
            loop = _run(
                ["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(size), out]
            ).stdout.strip()
            assert loop, "no free loop device"
            loops.append(loop)
            if number == 2:
                fsck = _run(["e2fsck", "-f", "-n", loop])
                assert fsck.returncode == 0, fsck.stdout
                blocks = re.search(r"Block count:\s+(\d+)", _run(["dumpe2fs", "-h", loop]).stdout)
                assert blocks is not None and int(blocks.group(1)) * 4096 == size
            subprocess.run(["mount", "-o", "ro", loop, str(target)], check=True)
        assert "clinicam" in _db(mnt, "passwd")
        assert os.readlink(mnt / "opt/clinicam/current") == f"releases/{VERSION}"
        assert (mnt / f"opt/clinicam/releases/{VERSION}/venv/pyvenv.cfg").exists()
        assert (
            mnt / "etc/systemd/system/multi-user.target.wants/clinicam-provision.service"
        ).is_symlink()
        config = (mnt / "boot/firmware/config.txt").read_text().splitlines()
        assert config.count("dtparam=i2c_arm=on") == 1
        assert config.count("camera_auto_detect=1") == 1
        assert not (mnt / "boot/firmware/ssh").exists()
        assert not (mnt / "usr/sbin/policy-rc.d").exists()
    finally:
        _unmount_below(mnt)
        for loop in loops:
            subprocess.run(["losetup", "-d", loop], check=False)
        for big in (image, out):  # pytest keeps the last runs' folders: not these
            big.unlink(missing_ok=True)


# --- install.sh --role appliance ----------------------------------------------------


def test_install_appliance_on_raspberry_pi_os_runs_the_image_steps(tmp_path: Path) -> None:
    """On Raspberry Pi OS the appliance role is customize.sh --root / on this checkout."""
    _require_root()  # install.sh would ask sudo otherwise
    os_release = tmp_path / "os-release"
    os_release.write_text('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    rpi_issue = tmp_path / "rpi-issue"
    rpi_issue.write_text("Raspberry Pi reference 2024-11-19\n")
    called = tmp_path / "called"
    stub = tmp_path / "customize.sh"
    stub.write_text(f'printf "%s\\n" "$@" > {called}\n')
    result = _run(
        ["bash", REPO / "install.sh", "--role", "appliance"],
        env={
            "CLINICAM_OS_RELEASE": str(os_release),
            "CLINICAM_RPI_ISSUE": str(rpi_issue),
            "CLINICAM_CUSTOMIZE": str(stub),
        },
    )
    assert result.returncode == 0, result.stderr
    assert called.read_text().split("\n")[:4] == ["--root", "/", "--source", str(REPO)]
    assert "Raspberry Pi OS: installing the appliance" in result.stdout
