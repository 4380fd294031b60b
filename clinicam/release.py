"""Clinicam releases as wheels: names, and the checks every party runs on one.

A release is a pure-Python wheel of this package, ``clinicam-<version>-py3-none-any.whl``.
The server keeps them in its release store, the appliance downloads the one the server
names (never from a URL it is sent), and the root updater installs it. Each checks the
file with :func:`check_wheel` before using it: a zip whose members have safe relative
names, whose ``.dist-info/METADATA`` names this package at the version its file name
says, and whose ``WHEEL`` says pure-Python. pip runs no code from a wheel when it
installs one, so a checked wheel cannot act as root during the install.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from clinicam.i18n import _

PACKAGE = "clinicam"
MAX_RELEASE_BYTES = 300 * 1024 * 1024
MAX_MEMBERS = 20_000
VERSION_PATTERN = r"^[0-9][0-9A-Za-z.+_]{0,39}$"  # PEP 440 as it appears in a wheel name
_VERSION = re.compile(VERSION_PATTERN)
_WHEEL = re.compile(rf"^{PACKAGE}-([0-9][0-9A-Za-z.+_]{{0,39}})-py3-none-any\.whl$")


class BadRelease(ValueError):
    """The file is not a usable Clinicam release; the message says why."""


@dataclass(frozen=True)
class ReleaseInfo:
    version: str
    sha256: str
    size: int

    @property
    def wheel_name(self) -> str:
        return wheel_name(self.version)


def wheel_name(version: str) -> str:
    """The wheel file name of ``version`` (which must match :data:`VERSION_PATTERN`)."""
    if not _VERSION.fullmatch(version):
        raise BadRelease(_("{version} is not a release version", version=repr(version)))
    return f"{PACKAGE}-{version}-py3-none-any.whl"


def version_of(filename: str) -> str:
    """The version in a release wheel's file name; BadRelease for any other name."""
    match = _WHEEL.fullmatch(filename)
    if match is None:
        raise BadRelease(
            _(
                "{name} is not a Clinicam release: expected {pattern} "
                "(build one with `pip wheel --no-deps .`)",
                name=repr(filename),
                pattern=f"{PACKAGE}-<version>-py3-none-any.whl",
            )
        )
    return match.group(1)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_wheel(path: Path, filename: str | None = None) -> ReleaseInfo:
    """Check ``path`` is a Clinicam release wheel (named ``filename``, default its own)."""
    version = version_of(filename or path.name)
    size = path.stat().st_size
    if size > MAX_RELEASE_BYTES:
        raise BadRelease(_("a release is at most {mb} MB", mb=MAX_RELEASE_BYTES // 2**20))
    try:
        with zipfile.ZipFile(path) as wheel:
            names = wheel.namelist()
            if len(names) > MAX_MEMBERS:
                raise BadRelease(_("more than {count} files in the wheel", count=MAX_MEMBERS))
            for name in names:
                parts = PurePosixPath(name).parts
                if name.startswith("/") or "\\" in name or ".." in parts or not parts:
                    raise BadRelease(_("unsafe file name in the wheel: {name}", name=repr(name)))
            info = f"{PACKAGE}-{version}.dist-info"
            try:
                metadata = wheel.read(f"{info}/METADATA").decode("utf-8")
                wheel_file = wheel.read(f"{info}/WHEEL").decode("utf-8")
            except KeyError:
                raise BadRelease(
                    _("no {info}/METADATA and WHEEL in the wheel", info=info)
                ) from None
            if wheel.testzip() is not None:
                raise BadRelease(_("the wheel is corrupt (a member fails its CRC)"))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, EOFError) as exc:
        raise BadRelease(_("not a readable wheel: {problem}", problem=str(exc))) from None
    headers = HeaderParser().parsestr(metadata)
    if (headers.get("Name") or "").lower() != PACKAGE or headers.get("Version") != version:
        raise BadRelease(
            _(
                "the wheel's metadata says {meta_name} {meta_version}, "
                "its name says {name} {version}",
                meta_name=headers.get("Name"),
                meta_version=headers.get("Version"),
                name=PACKAGE,
                version=version,
            )
        )
    if HeaderParser().parsestr(wheel_file).get("Root-Is-Purelib", "").lower() != "true":
        raise BadRelease(_("not a pure-Python wheel"))
    return ReleaseInfo(version=version, sha256=sha256_of(path), size=size)
