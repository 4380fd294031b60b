"""``clinicam appliance update --request FILE``: install the release the server asked for.

Run as root by ``clinicam-update.service`` when ``clinicam-update.path`` sees the
request the unprivileged appliance wrote (see :mod:`firmware.control.update_request`).
The request is untrusted input from a less privileged user, so:

- it is read with a size limit and validated field by field; only a file *name* is
  taken from it, and the wheel must sit in ``updates/`` beside the request;
- the wheel is opened without following symlinks and copied into a root-only folder
  under the install root while its sha256 is computed, and only that copy is checked
  (:func:`clinicam.release.check_wheel`) and installed, so it cannot be swapped after
  the check;
- pip runs no code from a wheel, and the new release's smoke test runs as the
  service's user (``--run-as``), not as root.

The request is consumed (removed) before anything is installed, so a request that
breaks the updater cannot make it loop. The outcome goes to ``update-result.json``
beside the request (installing, then updated / rolled back / failed), owned by the
request's owner so the appliance can read it and report it to the server.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from clinicam.configfile import StrictModel
from clinicam.files import write_atomically
from clinicam.i18n import _, say
from clinicam.release import (
    MAX_RELEASE_BYTES,
    VERSION_PATTERN,
    BadRelease,
    check_wheel,
    wheel_name,
)
from clinicam_app.update import UpdateOptions, build_release, record, update

MAX_REQUEST_BYTES = 64 * 1024
RESULT_NAME = "update-result.json"
UPDATES_DIR = "updates"
# update.log events → what the appliance reports (see clinicam.update)
OUTCOMES = {
    "updated": "updated",
    "already current": "updated",
    "install failed": "failed",
    "unhealthy": "failed",
    "not rolled back": "failed",
    "rolled back": "rolled back",
    "rollback failed": "failed",
}


class UpdateRequest(StrictModel):
    """What the appliance writes into ``update-request.json``."""

    release: str = Field(max_length=40, pattern=VERSION_PATTERN)
    wheel: str = Field(max_length=100)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1, le=MAX_RELEASE_BYTES)
    requested_by: str = Field("", max_length=64)
    command: str = Field("", max_length=64)
    requested_at: str = Field("", max_length=32)

    @model_validator(mode="after")
    def _wheel_is_the_release(self) -> UpdateRequest:
        if self.wheel != wheel_name(self.release):
            raise ValueError(f"wheel must be {wheel_name(self.release)}")
        return self


@dataclass(frozen=True)
class Requested:
    request: UpdateRequest
    owner: tuple[int, int]  # uid, gid of the request file: the appliance's user


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_request(path: Path) -> Requested:
    """Read and validate the request (ValueError naming what is wrong)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ValueError(f"cannot open the request: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("the request is not a regular file")
        raw = fh.read(MAX_REQUEST_BYTES + 1)
    if len(raw) > MAX_REQUEST_BYTES:
        raise ValueError(f"the request is larger than {MAX_REQUEST_BYTES} bytes")
    try:
        request = UpdateRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "request"
        raise ValueError(f"{where}: {first['msg']}") from None
    return Requested(request, (info.st_uid, info.st_gid))


def copy_verified(source: Path, dest_dir: Path, request: UpdateRequest) -> Path:
    """Copy the wheel (no symlinks) into ``dest_dir``, checking size, sha256 and content."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise BadRelease(f"cannot open {source.name}: {exc.strerror}") from None
    dest = dest_dir / request.wheel
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise BadRelease(f"{source.name} is not a regular file")
        with dest.open("wb") as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                size += len(block)
                if size > request.size:
                    raise BadRelease("the wheel is larger than the request says")
                digest.update(block)
                out.write(block)
    if size != request.size or digest.hexdigest() != request.sha256:
        raise BadRelease("the wheel's size or sha256 differs from the request")
    check_wheel(dest)
    return dest


def write_result(
    path: Path, owner: tuple[int, int] | None, release: str, state: str, detail: str
) -> None:
    body = {"release": release, "state": state, "detail": detail[:300], "at": now_iso()}
    owned = owner if owner is not None and os.geteuid() == 0 else None  # the appliance's
    write_atomically(path, (json.dumps(body) + "\n").encode(), owner=owned)


def last_event(log_file: Path) -> dict[str, object]:
    """The newest entry of update.log."""
    try:
        lines = log_file.read_text(encoding="utf-8").splitlines()
        entry = json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}
    return entry if isinstance(entry, dict) else {}


def install_requested(
    request_path: Path,
    opts: UpdateOptions,
    *,
    python: str,
    extras: str,
    run_as: str | None,
) -> int:
    """Consume the request, install its wheel with rollback, leave the result beside it."""
    result = request_path.parent / RESULT_NAME
    if not request_path.exists():
        say(_("clinicam update: no request at {path}", path=request_path))
        return 0
    try:
        wanted = read_request(request_path)
    except ValueError as exc:
        request_path.unlink(missing_ok=True)
        record(opts.log_file, "request refused", error=str(exc))
        write_result(result, None, "?", "failed", f"the update request is invalid: {exc}")
        return 2
    request, owner = wanted.request, wanted.owner
    request_path.unlink(missing_ok=True)  # consumed: a failure below never loops
    write_result(result, owner, request.release, "installing", "installing beside the running one")
    incoming = opts.root / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
    workdir = Path(tempfile.mkdtemp(dir=incoming))
    try:
        try:
            downloaded = request_path.parent / UPDATES_DIR / request.wheel
            wheel = copy_verified(downloaded, workdir, request)
        except (BadRelease, OSError) as exc:
            record(opts.log_file, "request refused", release=request.release, error=str(exc))
            write_result(result, owner, request.release, "failed", str(exc))
            return 1
        record(
            opts.log_file,
            "requested",
            release=request.release,
            by=request.requested_by,
            command=request.command,
        )
        installer = functools.partial(build_release, python=python, extras=extras)
        code = update(wheel, request.release, opts, installer)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    entry = last_event(opts.log_file)
    event = str(entry.get("event", ""))
    state = OUTCOMES.get(event, "updated" if code == 0 else "failed")
    detail = event + (f": {entry['error']}" if entry.get("error") else "")
    write_result(result, owner, request.release, state, detail)
    return code
