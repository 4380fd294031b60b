"""Inspecting an upload in a child process that cannot stall or exhaust the server.

A few hundred kilobytes can be built to cost minutes of CPU or gigabytes of memory to
decode (a multi-page TIFF of blank pages, a deeply compressed PNG). Every upload and
import is therefore inspected by :func:`inspect_sandboxed`: in a child forked from a
small, single-threaded fork server that has the parsers already imported, with
``RLIMIT_CPU`` and ``RLIMIT_AS`` set, at a lower CPU priority, and killed when it
passes the wall-clock limit. At most :data:`MAX_CONCURRENT` children run at once
(the others wait), so a burst of hostile files occupies at most that many cores and
never the server's own threads or event loop. An overrun is refused with a sentence
the user can act on (HTTP 422), like any other refusal.

The child works in its own folder next to the upload: a killed child's half-written
cleaned copy is removed with that folder.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import shutil
import signal
import tempfile
import threading
import time
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from server.records.ingest.formats import CLEANED_PREFIX, Category, IngestError, IngestLimits
from server.records.ingest.formats import Inspected as Inspected
from server.records.ingest.inspection import inspect_upload

_LOGGER = logging.getLogger(__name__)

MAX_CONCURRENT: Final = max(1, (os.cpu_count() or 2) // 2)
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT)
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["server.records.ingest.inspection"])
_NICE: Final = 10


def _warm_up() -> None:
    child = _CONTEXT.Process(target=_idle, daemon=True)
    child.start()
    child.join()


def _idle() -> None:
    """A child that does nothing: its start waits for the fork server's imports."""


def start_sandbox() -> None:
    """Start the fork server and wait for its imports (blocking; about a second the
    first time), so that no upload waits for them."""
    forkserver.ensure_running()
    _warm_up()


def _limit_child(limits: IngestLimits) -> None:
    cpu = max(1, int(limits.max_parse_cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    memory = mapped + limits.max_parse_memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    os.nice(_NICE)


def _child(conn: Connection, path: str, declared: str | None, limits: IngestLimits) -> None:
    """Runs in the child: inspect, send one message back, exit."""
    try:
        _limit_child(limits)
        category = Category(declared) if declared else None
        inspected = inspect_upload(Path(path), category, limits)
        conn.send(("ok", inspected))
    except IngestError as exc:
        conn.send(("refused", exc.status, exc.reason))
    except MemoryError:
        conn.send(("refused", 422, _too_big(limits)))
    except BaseException as exc:  # reported to the parent, never lost in the child
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _too_big(limits: IngestLimits) -> str:
    return (
        f"the file needs more than {limits.max_parse_memory_mb} MB of memory to check; "
        "it was refused (reduce its size or page count)"
    )


def _too_slow(limits: IngestLimits) -> str:
    return (
        f"the file could not be checked within {limits.max_parse_seconds:g} s; it was "
        "refused (reduce its size or page count)"
    )


def _outcome(message: Any, limits: IngestLimits) -> Inspected:
    kind = message[0]
    if kind == "ok":
        inspected: Inspected = message[1]
        return inspected
    if kind == "refused":
        raise IngestError(int(message[1]), str(message[2]))
    _LOGGER.error("upload inspection failed in its sandbox: %s", message[1])
    raise IngestError(422, "the file could not be checked: its content made the checker fail")


def _run_child(work: Path, declared: Category | None, limits: IngestLimits) -> Inspected:
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    args = (sender, str(work), declared.value if declared else None, limits)
    child = _CONTEXT.Process(target=_child, args=args, daemon=True)
    started = time.monotonic()
    child.start()
    sender.close()
    try:
        if not receiver.poll(limits.max_parse_seconds):
            _LOGGER.warning("upload inspection passed %.1f s: killed", limits.max_parse_seconds)
            raise IngestError(422, _too_slow(limits))
        try:
            message = receiver.recv()
        except EOFError:  # died without a word: a resource limit or a signal
            child.join(1)
            _LOGGER.warning("upload inspection died (exit code %s)", child.exitcode)
            if child.exitcode == -signal.SIGXCPU:
                raise IngestError(422, _too_slow(limits)) from None
            raise IngestError(422, _too_big(limits)) from None
        return _outcome(message, limits)
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()
        _LOGGER.debug("upload inspected in %.3f s", time.monotonic() - started)


def inspect_sandboxed(path: Path, declared: Category | None, limits: IngestLimits) -> Inspected:
    """:func:`inspect_upload` in a resource-limited child; blocking (call off the loop).

    The cleaned copy, if any, is returned next to ``path``, as :func:`inspect_upload`
    would leave it.
    """
    work_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=CLEANED_PREFIX))
    try:
        work = work_dir / "upload"
        os.link(path, work)
        with _SLOTS:
            inspected = _run_child(work, declared, limits)
        if inspected.cleaned is None:
            return inspected
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=CLEANED_PREFIX)
        os.close(fd)
        os.replace(inspected.cleaned, name)
        return Inspected(inspected.category, inspected.media_type, inspected.metadata, Path(name))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
