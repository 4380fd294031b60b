"""Append-only audit entries, each hashing the one before it.

``hash = sha256(canonical JSON of seq, at, actor, action, target, detail, prev_hash)``.
Editing an entry breaks its own hash; deleting or reordering entries breaks the
``seq`` sequence or the chain; cutting entries off the end disagrees with the head row.
(Someone able to rewrite the whole table and recompute every hash is not detected by
the chain alone; publishing the head hash elsewhere is the later answer to that.)

Appends are serialised through the single ``audit_head`` row: the first statement of
an append updates it, which takes its row lock on PostgreSQL and the database write
lock on SQLite, so concurrent writers queue and each sees the previous entry's hash.
The entry is committed with the caller's transaction: an action and its audit entry
land together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, inspect, make_url, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.records.db import Base, UtcDateTime, connect_database, utcnow

_LOGGER = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
HEAD_ID = 1


class AuditEntry(Base):
    """One audited event."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The single row naming the last entry: the append lock, and a guard against truncation."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


def canonical_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any],
    prev_hash: str,
) -> str:
    """SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of the entry."""
    payload = json.dumps(
        [seq, canonical_time(at), actor, action, target, detail, prev_hash],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _hash_of(entry: AuditEntry) -> str:
    return entry_hash(
        entry.seq, entry.at, entry.actor, entry.action, entry.target, entry.detail, entry.prev_hash
    )


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :meth:`AuditLog.verify`: OK, or the first bad ``seq`` and why."""

    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            return f"audit log OK ({self.entries} entries)"
        if self.bad_seq is None:
            return f"audit log cannot be checked: {self.reason}"
        return f"audit log BROKEN at seq {self.bad_seq}: {self.reason}"


@dataclass
class AuditLog:
    """Appends entries and checks the chain."""

    clock: Callable[[], datetime] = utcnow

    def append(
        self,
        session: Session,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Add an entry in ``session``'s transaction (the caller commits)."""
        detail = dict(detail or {})
        # Take the lock first: bump the head's seq before reading anything.
        bumped = session.execute(
            update(AuditHead).where(AuditHead.id == HEAD_ID).values(seq=AuditHead.seq + 1)
        )
        if getattr(bumped, "rowcount", 1) != 1:
            raise RuntimeError("audit_head row is missing: the database was not migrated")
        seq, prev_hash = session.execute(
            select(AuditHead.seq, AuditHead.hash)
            .where(AuditHead.id == HEAD_ID)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        # Round to what the database stores (microseconds), so the hash re-computes.
        at = self.clock().astimezone(UTC)
        entry = AuditEntry(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            target=target,
            detail=detail,
            prev_hash=prev_hash,
        )
        entry.hash = _hash_of(entry)
        session.add(entry)
        session.execute(update(AuditHead).where(AuditHead.id == HEAD_ID).values(hash=entry.hash))
        session.flush()
        _LOGGER.debug("audit %s: %s %s %s", seq, actor, action, target)
        return entry

    def verify(self, session: Session) -> VerifyResult:
        """Walk the chain in ``seq`` order; report the first entry that does not fit."""
        expected = 1
        prev_hash = GENESIS_HASH
        rows = session.scalars(
            select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=500)
        )
        for entry in rows:
            if entry.seq != expected:
                return VerifyResult(
                    False,
                    expected - 1,
                    expected,
                    f"entry missing (the next entry is seq {entry.seq}): deleted",
                )
            if _hash_of(entry) != entry.hash:
                return VerifyResult(
                    False,
                    expected - 1,
                    entry.seq,
                    "content does not match its hash: edited, or moved from another position",
                )
            if entry.prev_hash != prev_hash:
                return VerifyResult(
                    False,
                    expected - 1,
                    entry.seq,
                    "does not link to the entry before it: entries replaced or reordered",
                )
            prev_hash = entry.hash
            expected += 1
        count = expected - 1
        head = session.get(AuditHead, HEAD_ID)
        if head is None:
            return VerifyResult(False, count, count + 1, "the audit_head row is missing")
        if head.seq != count or head.hash != prev_hash:
            return VerifyResult(
                False,
                count,
                count + 1,
                f"the log ends at seq {count} but the head records seq {head.seq}: "
                "entries deleted from the end",
            )
        return VerifyResult(True, count)


def verify_database(url: str) -> VerifyResult:
    """Verify the audit log in the database at ``url`` without migrating or changing it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return VerifyResult(False, 0, None, f"no database file at {parsed.database}")
    database = connect_database(url)
    try:
        if not inspect(database.engine).has_table(AuditEntry.__tablename__):
            return VerifyResult(False, 0, None, "no audit log in this database")
        with database.session() as session:
            return AuditLog().verify(session)
    finally:
        database.close()
