"""The server's audit trail: one call per auditable event, off the event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.orm import Session

from server.audit.log import AuditLog
from server.records.db import Database

_LOGGER = logging.getLogger(__name__)


class AuditTrail:
    """Writes audit entries (each in its own transaction) from async code."""

    def __init__(self, database: Database, log: AuditLog | None = None) -> None:
        self._database = database
        self._log = log or AuditLog()

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
