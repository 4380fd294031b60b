"""Inspecting an upload in a child process that cannot stall or exhaust the server.

A few hundred kilobytes can be built to cost minutes of CPU or gigabytes of memory to
decode (a multi-page TIFF of blank pages, a deeply compressed PNG). Every upload and
import is therefore inspected by :func:`inspect_sandboxed` in a worker process forked
from a small, single-threaded fork server that has the parsers already imported: at a
lower CPU priority, with ``RLIMIT_AS`` set, with ``RLIMIT_CPU`` set for each file (the
worker's CPU time so far plus the limit), and killed when a file passes the wall-clock
limit. A worker that checked a file cleanly waits for the next one (a fresh process per
file cost 80–90 ms, more than checking a photo); one that was killed or died, or has
checked :data:`WORKER_FILES` files, is replaced. At most :data:`MAX_CONCURRENT` files
are checked at once (the others wait), so a burst of hostile files occupies at most
that many cores and never the server's own threads or event loop. An overrun is
refused with a sentence the user can act on (HTTP 422), like any other refusal.

The worker works in its own folder next to the upload: a killed worker's half-written
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
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

from clinicam.i18n import Text, _
from server.records.ingest.formats import CLEANED_PREFIX, Category, IngestError, IngestLimits
from server.records.ingest.formats import Inspected as Inspected
from server.records.ingest.inspection import inspect_upload

_LOGGER = logging.getLogger(__name__)

MAX_CONCURRENT: Final = max(1, (os.cpu_count() or 2) // 2)
WORKER_FILES: Final = 200  # then a fresh worker: nothing a parser leaves behind grows
_SLOTS = threading.BoundedSemaphore(MAX_CONCURRENT)
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["server.records.ingest.inspection"])
_NICE: Final = 10


class _Worker:
    """One worker process and the two ends of its pipe."""

    def __init__(self, limits: IngestLimits | None) -> None:
        self.limits = limits  # what it was started for: its memory limit is set once
        self.requests, child_requests = _CONTEXT.Pipe()
        self.process: BaseProcess = _CONTEXT.Process(
            target=_serve, args=(child_requests,), daemon=True
        )
        self.process.start()
        child_requests.close()
        self.files = 0

    def stop(self) -> None:
        self.requests.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join()


_IDLE: list[_Worker] = []
_IDLE_LOCK = threading.Lock()


def _take_worker(limits: IngestLimits | None) -> _Worker:
    with _IDLE_LOCK:
        while _IDLE:
            worker = _IDLE.pop()
            if worker.process.is_alive() and worker.limits in (limits, None):
                worker.limits = limits
                return worker
            worker.stop()
    return _Worker(limits)


def _give_back(worker: _Worker) -> None:
    if worker.files >= WORKER_FILES:
        worker.stop()
        return
    with _IDLE_LOCK:
        _IDLE.append(worker)


def start_sandbox() -> None:
    """Start the fork server and a worker and wait for their imports (blocking; about a
    second the first time), so that no upload waits for them."""
    forkserver.ensure_running()
    worker = _take_worker(None)
    worker.requests.send(None)  # a ping: answered once the worker runs
    worker.requests.recv()
    _give_back(worker)


def _limit_memory(limits: IngestLimits) -> None:
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    memory = mapped + limits.max_parse_memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _limit_cpu(limits: IngestLimits) -> None:
    """This file may use the limit's CPU seconds on top of what the worker used so far."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(used.ru_utime + used.ru_stime)
    cpu = spent + max(1, int(limits.max_parse_cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))


def _serve(conn: Connection) -> None:
    """The worker's loop: one request at a time, one answer each, until the pipe closes."""
    os.nice(_NICE)
    limited = False
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            conn.send(None)
            continue
        path, declared, limits = request
        if not limited:  # the limits are the server's: the same for every file
            _limit_memory(limits)
            limited = True
        _limit_cpu(limits)
        conn.send(_inspect(path, declared, limits))


def _inspect(path: str, declared: str | None, limits: IngestLimits) -> tuple[Any, ...]:
    try:
        category = Category(declared) if declared else None
        return ("ok", inspect_upload(Path(path), category, limits))
    except IngestError as exc:
        return ("refused", exc.status, exc.reason)
    except MemoryError:
        return ("refused", 422, _too_big(limits))
    except Exception as exc:  # reported to the parent, never lost in the worker
        return ("error", f"{type(exc).__name__}: {exc}")


def _too_big(limits: IngestLimits) -> str:
    return _(
        "the file needs more than {mb} MB of memory to check; "
        "it was refused (reduce its size or page count)",
        mb=limits.max_parse_memory_mb,
    )


def _too_slow(limits: IngestLimits) -> str:
    return _(
        "the file could not be checked within {seconds} s; it was "
        "refused (reduce its size or page count)",
        seconds=f"{limits.max_parse_seconds:g}",
    )


def _outcome(message: Any) -> Inspected:
    kind = message[0]
    if kind == "ok":
        inspected: Inspected = message[1]
        return inspected
    if kind == "refused":
        reason = message[2]
        raise IngestError(int(message[1]), reason if isinstance(reason, Text) else str(reason))
    _LOGGER.error("upload inspection failed in its sandbox: %s", message[1])
    raise IngestError(422, _("the file could not be checked: its content made the checker fail"))


def _run_in_worker(work: Path, declared: Category | None, limits: IngestLimits) -> Inspected:
    worker = _take_worker(limits)
    started = time.monotonic()
    clean = False
    try:
        worker.requests.send((str(work), declared.value if declared else None, limits))
        worker.files += 1
        if not worker.requests.poll(limits.max_parse_seconds):
            _LOGGER.warning("upload inspection passed %.1f s: killed", limits.max_parse_seconds)
            raise IngestError(422, _too_slow(limits))
        try:
            message = worker.requests.recv()
        except EOFError:  # died without a word: a resource limit or a signal
            worker.process.join(1)
            code = worker.process.exitcode
            _LOGGER.warning("upload inspection died (exit code %s)", code)
            if code == -signal.SIGXCPU:
                raise IngestError(422, _too_slow(limits)) from None
            raise IngestError(422, _too_big(limits)) from None
        clean = message[0] != "error"
        return _outcome(message)
    finally:
        if clean:
            _give_back(worker)
        else:
            worker.stop()
        _LOGGER.debug("upload inspected in %.3f s", time.monotonic() - started)


def inspect_sandboxed(path: Path, declared: Category | None, limits: IngestLimits) -> Inspected:
    """:func:`inspect_upload` in a resource-limited worker; blocking (call off the loop).

    The cleaned copy, if any, is returned next to ``path``, as :func:`inspect_upload`
    would leave it.
    """
    work_dir = Path(tempfile.mkdtemp(dir=path.parent, prefix=CLEANED_PREFIX))
    try:
        work = work_dir / "upload"
        os.link(path, work)
        with _SLOTS:
            inspected = _run_in_worker(work, declared, limits)
        if inspected.cleaned is None:
            return inspected
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=CLEANED_PREFIX)
        os.close(fd)
        os.replace(inspected.cleaned, name)
        return Inspected(inspected.category, inspected.media_type, inspected.metadata, Path(name))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
