"""``clinicam appliance update``: install a release beside the running one, switch, check.

Layout under the root (``/opt/clinicam``)::

    releases/<name>/                one complete release each, with its own venv/
    releases/<name>/RELEASE.json    written last: a release without it is incomplete
    current  -> releases/<name>     what the unit runs (/opt/clinicam/current/venv/bin/clinicam)
    previous -> releases/<older>    where a failed update goes back to

Steps: install the new release (build a venv from a source tree, wheel or sdist; or copy
a ready one with ``--prebuilt``), smoke-test it (``clinicam --version`` and ``clinicam
appliance --check`` against the live config), point ``previous`` at the running release
and ``current`` at the new one (each symlink is made beside the old and renamed over it,
so it is never missing), restart the service, and wait for it to be healthy. If it is
not, ``current`` goes back, the service restarts again and the old release is checked.

Healthy: the service's health file (written by :mod:`clinicam.sdnotify` after READY=1,
refreshed with every watchdog ping, on tmpfs) names a live process of the new release
that became ready after the restart, and it stays alive and fresh for ``--settle`` s.

Every step is appended to ``update.log`` as one JSON line (single O_APPEND write, fsync).
Exit codes: 0 updated (or already current); 1 not updated (install or smoke test failed,
or rolled back); 2 bad arguments or another update running; 3 rolled back but the old
release is not healthy either.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from clinicam.files import fsync_directory
from clinicam.i18n import _, localized, say
from clinicam.sdnotify import HealthReport, monotonic, read_health

_LOGGER = logging.getLogger(__name__)

Installer = Callable[[Path, Path], None]  # (source, release folder to create)
POLL_S = 0.05
RELEASE_FILE = "RELEASE.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


@dataclass(frozen=True)
class UpdateOptions:
    """Where releases live, how to restart the service and how to tell it is healthy."""

    root: Path
    restart_command: list[str]
    health_file: Path
    log_file: Path
    health_timeout_s: float = 90.0
    settle_s: float = 20.0
    config: Path | None = None
    keep: int = 3
    run_as: str | None = None  # user for the new release's smoke test (root runs updates)


class ReleaseTree:
    """``releases/``, ``current`` and ``previous`` under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.releases = root / "releases"

    def link(self, name: str) -> Path | None:
        """The release a link points at, or None."""
        try:
            return self.root / os.readlink(self.root / name)
        except OSError:
            return None

    def point(self, name: str, release: Path | None) -> None:
        """Atomically point link ``name`` at ``release`` (None removes the link)."""
        link = self.root / name
        if release is None:
            link.unlink(missing_ok=True)
        else:
            tmp = self.root / f".{name}.{os.getpid()}.tmp"
            tmp.unlink(missing_ok=True)
            os.symlink(os.path.relpath(release, self.root), tmp)
            os.replace(tmp, link)  # rename(2) swaps the link itself: never missing
        fsync_directory(self.root)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One update at a time; BlockingIOError if another holds the lock."""
        self.releases.mkdir(parents=True, exist_ok=True)
        with (self.root / ".update.lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield

    def prune(self, keep: int) -> list[str]:
        """Remove the oldest releases beyond ``keep``; never current or previous."""
        pinned = {p.resolve() for p in (self.link("current"), self.link("previous")) if p}
        others = [p for p in self.releases.iterdir() if p.is_dir() and p.resolve() not in pinned]
        others.sort(key=_installed_at)
        doomed = others[: max(0, len(others) - max(0, keep - len(pinned)))]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
        return [p.name for p in doomed]


def _installed_at(release: Path) -> float:
    try:
        return (release / RELEASE_FILE).stat().st_mtime
    except OSError:
        return 0.0  # incomplete: goes first


def record(log_file: Path, event: str, **fields: object) -> None:
    """Append one JSON line to the update log (one write with O_APPEND, then fsync)."""
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **fields})
    _LOGGER.info("%s %s", event, json.dumps(fields))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_prebuilt(source: Path, dest: Path) -> None:
    """Installer for a ready release folder: copy it (symlinks kept as links)."""
    shutil.copytree(source, dest, symlinks=True)


def _site_packages(venv: Path) -> Path | None:
    found = sorted(venv.glob("lib/python3.*/site-packages"))
    return found[0] if len(found) == 1 else None


def _own_entries(site: Path) -> set[str]:
    """Top-level names in ``site`` that belong to Clinicam itself (from its RECORD)."""
    own: set[str] = set()
    for info in site.glob("clinicam-*.dist-info"):
        own.add(info.name)
        try:
            lines = (info / "RECORD").read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            path = line.split(",", 1)[0]
            if path and not path.startswith(("..", "/")):
                own.add(path.split("/", 1)[0])
    return own


def seed_from_running(old_venv: Path, new_venv: Path) -> list[str]:
    """Copy the running release's installed dependencies into the new venv.

    pip then finds every unchanged dependency already installed and downloads only new
    or changed ones: a release whose dependencies did not change installs with no
    package index at all (clinics with only a route to their server). Clinicam's own
    files, what the fresh venv already has (pip) and editable-install hooks are left
    out; nothing is copied across Python versions. Returns the names copied.
    """
    old_site, new_site = _site_packages(old_venv), _site_packages(new_venv)
    if old_site is None or new_site is None or old_site.parent.name != new_site.parent.name:
        return []
    skip = _own_entries(old_site) | {p.name for p in new_site.iterdir()}
    copied = []
    for entry in sorted(old_site.iterdir()):
        if entry.name in skip or entry.name.startswith("__editable__"):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, new_site / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, new_site / entry.name, follow_symlinks=False)
        copied.append(entry.name)
    return copied


def build_release(source: Path, dest: Path, *, python: str, extras: str) -> None:
    """Installer for a source tree, wheel or sdist: a new venv plus ``pip install``.

    The new venv starts with the running release's dependencies (when the install root
    has one, see :func:`seed_from_running`), so pip fetches only what changed.
    """
    venv = dest / "venv"
    subprocess.run([python, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    current = dest.parent.parent / "current" / "venv"
    if current.is_dir():
        seeded = seed_from_running(current, venv)
        _LOGGER.info("new venv seeded with %d entries from %s", len(seeded), current.resolve())
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    target = f"{source.resolve()}[{extras}]" if extras else str(source.resolve())
    subprocess.run([*pip, "--quiet", target], check=True)


def release_name(source: Path, prebuilt: bool) -> str:
    """The release's folder name: the prebuilt folder's name or the package version."""
    if prebuilt:
        return source.resolve().name
    if source.is_dir():
        with (source / "pyproject.toml").open("rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    if source.name.endswith(".whl"):
        return source.name.split("-")[1]
    stem = source.name.removesuffix(".tar.gz").removesuffix(".zip")
    return stem.rsplit("-", 1)[1]


def smoke_test(release: Path, config: Path | None, run_as: str | None = None) -> None:
    """Run the new release's own checks before anything switches (raises on failure).

    ``run_as``: the new code runs as that user, never as the root that installs it.
    """
    program = release / "venv" / "bin" / "clinicam"
    if not program.exists():
        return  # a prebuilt release without the usual layout: the health check decides
    subprocess.run([str(program), "--version"], check=True, timeout=120, user=run_as)
    if config is not None and config.is_file():
        check = [str(program), "appliance", "--check", "--config", str(config)]
        subprocess.run(check, check=True, timeout=120, user=run_as)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")  # a zombie is dead


def _is_healthy(report: HealthReport | None, release: Path, since: float) -> bool:
    if report is None or report.ready_mono < since or not _alive(report.pid):
        return False
    if not Path(report.release).is_relative_to(release.resolve()):
        return False  # still (or again) the other release
    return report.watchdog_s is None or monotonic() - report.beat_mono <= report.watchdog_s


def wait_healthy(release: Path, since: float, opts: UpdateOptions) -> bool:
    """Healthy within ``health_timeout_s`` of ``since``, then for ``settle_s`` on end."""
    deadline = since + opts.health_timeout_s
    healthy_since: float | None = None
    while healthy_since is not None or monotonic() < deadline:
        if _is_healthy(read_health(opts.health_file), release, since):
            healthy_since = healthy_since or monotonic()
            if monotonic() - healthy_since >= opts.settle_s:
                return True
        elif healthy_since is not None:
            return False  # came up, then died or stopped pinging
        time.sleep(POLL_S)
    return False


def restart_and_check(release: Path, opts: UpdateOptions) -> bool:
    """Restart the service and wait for ``release`` to be healthy."""
    since = monotonic()
    try:
        done = subprocess.run(opts.restart_command, timeout=opts.health_timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        record(opts.log_file, "restart failed", release=release.name, error=str(exc))
        return False
    if done.returncode != 0:
        record(opts.log_file, "restart failed", release=release.name, code=done.returncode)
        return False
    return wait_healthy(release, since, opts)


def update(source: Path, name: str, opts: UpdateOptions, install: Installer) -> int:
    """Install ``source`` as release ``name``, switch to it, keep it only if healthy."""
    tree = ReleaseTree(opts.root)
    try:
        with tree.locked():
            return _update_locked(tree, source, name, opts, install)
    except BlockingIOError:
        say(_("clinicam update: another update is running"), file=sys.stderr)
        return 2


def _update_locked(
    tree: ReleaseTree, source: Path, name: str, opts: UpdateOptions, install: Installer
) -> int:
    log = opts.log_file
    old, old_previous = tree.link("current"), tree.link("previous")
    new = tree.releases / name
    if old is not None and old.resolve() == new.resolve():
        record(log, "already current", release=name)
        return 0
    shutil.rmtree(new, ignore_errors=True)  # an incomplete or failed earlier attempt
    try:
        install(source, new)
        smoke_test(new, opts.config, opts.run_as)
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(new, ignore_errors=True)
        record(log, "install failed", release=name, source=str(source), error=str(exc))
        return 1
    (new / RELEASE_FILE).write_text(json.dumps({"name": name, "source": str(source)}) + "\n")
    record(log, "installed", release=name, source=str(source))
    if old is not None:
        tree.point("previous", old)
    tree.point("current", new)
    record(log, "switched", release=name, previous=old.name if old else None)
    if restart_and_check(new, opts):
        record(log, "updated", release=name, pruned=tree.prune(opts.keep))
        return 0
    record(log, "unhealthy", release=name)
    if old is None:
        record(log, "not rolled back", release=name, reason="no earlier release")
        return 1
    tree.point("current", old)
    tree.point("previous", old_previous)
    if restart_and_check(old, opts):
        record(log, "rolled back", release=old.name, failed=name)
        return 1
    record(log, "rollback failed", release=old.name, failed=name)
    return 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clinicam appliance update",
        description=localized(
            _(
                "Install a release beside the running one, switch to it atomically, "
                "and switch back automatically if it does not come up healthy."
            )
        ),
    )
    p.add_argument(
        "source",
        type=Path,
        nargs="?",
        help=localized(_("source tree, wheel, sdist or (--prebuilt) release; omit with --request")),
    )
    p.add_argument(
        "--request",
        type=Path,
        help=localized(
            _(
                "install what the appliance's update-request.json asks for "
                "(server-triggered; clinicam-update.service)"
            )
        ),
    )
    p.add_argument(
        "--run-as",
        help=localized(_("user for the new release's smoke test (default: this one)")),
    )
    p.add_argument(
        "--root", type=Path, default=Path("/opt/clinicam"), help=localized(_("install root"))
    )
    p.add_argument(
        "--prebuilt",
        action="store_true",
        help=localized(_("SOURCE is a ready release: copy it")),
    )
    p.add_argument("--name", help=localized(_("release folder name (default: the version)")))
    p.add_argument(
        "--service", default="clinicam-appliance", help=localized(_("systemd unit to restart"))
    )
    p.add_argument(
        "--restart-command",
        default="systemctl restart {service}",
        help=localized(_("how to restart the service ({service} is replaced)")),
    )
    p.add_argument("--health-file", type=Path, default=Path("/run/clinicam/health.json"))
    p.add_argument(
        "--health-timeout", type=float, default=90.0, help=localized(_("seconds to come up"))
    )
    p.add_argument(
        "--settle", type=float, default=20.0, help=localized(_("seconds to stay up after that"))
    )
    p.add_argument("--log", type=Path, default=Path("/var/lib/clinicam/update.log"))
    p.add_argument("--config", type=Path, default=Path("/etc/clinicam/appliance.toml"))
    p.add_argument("--extras", default="appliance", help=localized(_("package extras to install")))
    p.add_argument("--python", default=sys.executable, help=localized(_("Python for the new venv")))
    p.add_argument("--keep", type=int, default=3, help=localized(_("releases to keep on disk")))
    return p


def main_update(argv: list[str]) -> int:
    """``clinicam appliance update SOURCE [options]``; see the module docstring."""
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.source is None) == (args.request is None):
        parser.error(localized(_("give either SOURCE or --request FILE")))
    if not logging.getLogger().handlers:
        from clinicam.logsetup import setup_logging

        setup_logging("INFO", "update")
    if args.request is not None:
        return _main_request(args)
    try:
        name = args.name or release_name(args.source, args.prebuilt)
    except (OSError, KeyError, IndexError, tomllib.TOMLDecodeError) as exc:
        say(
            _(
                "clinicam update: cannot tell the version of {source} ({problem}); pass --name",
                source=args.source,
                problem=exc,
            ),
            file=sys.stderr,
        )
        return 2
    if not _NAME.fullmatch(name) or not args.source.exists():
        say(
            _(
                "clinicam update: bad release name {name} or missing {source}",
                name=repr(name),
                source=args.source,
            ),
            file=sys.stderr,
        )
        return 2
    opts = _options(args)
    installer: Installer = copy_prebuilt
    if not args.prebuilt:
        installer = functools.partial(build_release, python=args.python, extras=args.extras)
    code = update(args.source, name, opts, installer)
    return _report(code, args.root)


def _report(code: int, root: Path) -> int:
    current = ReleaseTree(root).link("current")
    say(
        _(
            "clinicam update: exit {code}; current release {release}",
            code=code,
            release=current.name if current else _("none"),
        )
    )
    return code


def _main_request(args: argparse.Namespace) -> int:
    from clinicam_app.requested_update import install_requested

    code = install_requested(
        args.request, _options(args), python=args.python, extras=args.extras, run_as=args.run_as
    )
    return _report(code, args.root)


def _options(args: argparse.Namespace) -> UpdateOptions:
    command = [
        part.replace("{service}", args.service) for part in shlex.split(args.restart_command)
    ]
    return UpdateOptions(
        root=args.root,
        restart_command=command,
        health_file=args.health_file,
        log_file=args.log,
        health_timeout_s=args.health_timeout,
        settle_s=args.settle,
        config=args.config,
        keep=args.keep,
        run_as=args.run_as,
    )


if __name__ == "__main__":
    sys.exit(main_update(sys.argv[1:]))
