"""Copying a site's blobs from one store to another (``clinicam blobs migrate``).

Every blob a row references is copied from the source store to the target, read back
from the target and hashed: a copy counts only when what the target gives back hashes to
its SHA-256. A blob the target already holds, verified the same way, is skipped, so an
interrupted run (killed, or stopped by a failed copy) continues where it left off when it
is run again. Nothing is deleted from the source: the site switches stores by changing
``[blobs] backend`` afterwards, and the old store's content can be removed once the site
runs on the new one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from clinicam.i18n import _, message_of
from server.db import Database
from server.domain_errors import DomainError
from server.records.blobs import CHUNK_BYTES, BlobCorrupt, BlobStore
from server.records.models import referenced_blobs

_LOGGER = logging.getLogger(__name__)

_NO_LIMIT = 1 << 62  # the content was accepted once; its size is not in question here


@dataclass
class MigrationOutcome:
    """What a run did: blobs copied, found already there (verified), and failures."""

    total: int = 0
    copied: int = 0
    present: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.copied + self.present + len(self.failed)


def verified(store: BlobStore, sha256: str) -> bool:
    """Does ``store`` hold the blob, and does what it gives back hash to its SHA-256?"""
    digest = hashlib.sha256()
    try:
        with store.open(sha256) as stream:
            while chunk := stream.read(CHUNK_BYTES):
                digest.update(chunk)
    except (FileNotFoundError, BlobCorrupt):
        return False
    return digest.hexdigest() == sha256


class _CopyFailed(Exception):
    pass


def _copy(source: BlobStore, target: BlobStore, sha256: str, wanted: set[str]) -> None:
    try:
        with source.open(sha256) as stream:
            ref = target.put(stream, max_bytes=_NO_LIMIT)
    except FileNotFoundError:
        raise _CopyFailed(_("not in the source store")) from None
    except BlobCorrupt:
        raise _CopyFailed(_("the source's copy does not match its SHA-256")) from None
    except (DomainError, OSError) as exc:
        raise _CopyFailed(message_of(exc)) from None
    if ref.sha256 != sha256:  # the source gave back other content than its name says
        if ref.sha256 not in wanted:
            target.delete(ref.sha256)
        raise _CopyFailed(_("the source's copy does not match its SHA-256"))
    if not verified(target, sha256):
        raise _CopyFailed(_("the copy read back from the target does not match its SHA-256"))


def migrate_blobs(
    database: Database,
    source: BlobStore,
    target: BlobStore,
    *,
    on_progress: Callable[[MigrationOutcome], None] | None = None,
    also_referenced: Sequence[Callable[[Session], set[str]]] = (),
) -> MigrationOutcome:
    """Copy every referenced blob from ``source`` to ``target``, verified; resumable.
    ``also_referenced``: what other parts of the server keep in the store (call
    recordings), as for the orphan collector."""
    with database.session() as session:
        wanted = referenced_blobs(session)
        for more in also_referenced:
            wanted |= more(session)
    outcome = MigrationOutcome(total=len(wanted))
    for sha256 in sorted(wanted):
        try:
            if verified(target, sha256):
                outcome.present += 1
            else:
                _copy(source, target, sha256, wanted)
                outcome.copied += 1
        except _CopyFailed as exc:
            outcome.failed.append((sha256, message_of(exc)))
        except DomainError as exc:  # e.g. the target store cannot be reached
            outcome.failed.append((sha256, message_of(exc)))
        if on_progress is not None:
            on_progress(outcome)
    _LOGGER.info(
        "blob migration: %d copied, %d present, %d failed of %d",
        outcome.copied,
        outcome.present,
        len(outcome.failed),
        outcome.total,
    )
    return outcome
