"""The server's audit trail: one call per auditable event, off the event loop.

It also anchors the log outside the database: every few minutes, when the log has
grown, a signed checkpoint of the head goes to the checkpoint file and the server log
(:mod:`server.audit.checkpoint`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from server.audit.checkpoint import (
    CHECKPOINT_FILE,
    KEY_FILE,
    append_checkpoint,
    make_checkpoint,
    signing_key,
)
from server.audit.log import AuditLog, canonical_json
from server.db import Database

_LOGGER = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 300.0


@dataclass
class Checkpointer:
    """Writes signed head checkpoints to ``out`` with the key in ``key_file``."""

    key_file: Path
    out: Path
    last_seq: int | None = field(default=None, init=False)

    @classmethod
    def in_folder(cls, folder: Path) -> Checkpointer:
        return cls(folder / KEY_FILE, folder / CHECKPOINT_FILE)

    def checkpoint(self, database: Database) -> dict[str, Any] | None:
        """A checkpoint if the head moved since the last one (sync; call off the loop)."""
        key = signing_key(self.key_file, create=True)
        with database.session() as session:
            record = make_checkpoint(session, key)
        if record["seq"] == self.last_seq:
            return None
        append_checkpoint(self.out, record)
        self.last_seq = record["seq"]
        _LOGGER.info("audit checkpoint %s", canonical_json(record))
        return record


class AuditTrail:
    """Writes audit entries (each in its own transaction) from async code."""

    def __init__(
        self,
        database: Database,
        log: AuditLog | None = None,
        checkpoints: Checkpointer | None = None,
    ) -> None:
        self._database = database
        self._log = log or AuditLog()
        self.checkpoints = checkpoints

    def write(
        self,
        session: Session,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append inside the caller's transaction: the change and its entry commit together."""
        self._log.append(session, actor, action, target, dict(detail or {}))

    def _append(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        with self._database.session() as session, session.begin():
            self._log.append(session, actor, action, target, detail)

    async def record(
        self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append one entry; the event is not complete until it is in the log."""
        await asyncio.to_thread(self._append, actor, action, target, dict(detail or {}))

    async def checkpoint_forever(self, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        """At start and every ``interval_s``: a signed checkpoint if the log grew."""
        if self.checkpoints is None:
            return
        while True:
            try:
                await asyncio.to_thread(self.checkpoints.checkpoint, self._database)
            except Exception:
                _LOGGER.exception("audit checkpoint failed; retrying later")
            await asyncio.sleep(interval_s)
