"""Append-only audit entries, each hashing the one before it.

``hash = sha256(canonical JSON of scheme, seq, time, actor, action, target, detail,
prev_hash)``. Canonical JSON: sorted keys, no duplicate keys, ``,``/``:`` separators,
UTF-8, no NaN; time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. Scheme 2 entries store their
detail as exactly that canonical text, and :mod:`server.audit.verify` refuses a row
whose stored text is not canonical (a duplicated key, re-spacing) or whose stored time
is not in the database's own format. Scheme 1 entries (written before scheme 2) keep
their old hash and are checked against the text the old writer produced.
Editing an entry breaks its own hash; deleting or reordering entries breaks the
``seq`` sequence or the chain; cutting entries off the end disagrees with the head row,
and a rewritten head disagrees with the signed checkpoints kept outside the database
(:mod:`server.audit.checkpoint`).

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
from typing import Any

from sqlalchemy import JSON, BigInteger, Dialect, Integer, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from clinicam.i18n import TextList, _
from server.db import Base, UtcDateTime, utcnow

_LOGGER = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
HEAD_ID = 1
SCHEME_PARSED = 1  # retired: hash over the parsed detail, stored as json.dumps wrote it
SCHEME_CANONICAL = 2  # hash over canonical JSON, stored as that same canonical text
CURRENT_SCHEME = SCHEME_CANONICAL


def canonical_json(value: Any) -> str:
    """The one text for a JSON value: sorted keys, fixed separators, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


class CanonicalJSON(TypeDecorator[Any]):
    """A JSON column whose stored text is :func:`canonical_json` (SQLite and PostgreSQL)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        if dialect.name == "postgresql":
            from psycopg.types.json import Json

            return lambda value: Json(value, dumps=canonical_json)
        return canonical_json


class AuditEntry(Base):
    """One audited event."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(CanonicalJSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    scheme: Mapped[int] = mapped_column(Integer, default=CURRENT_SCHEME, server_default="1")


class AuditHead(Base):
    """The single row naming the last entry: the append lock, and a guard against truncation."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


def canonical_time(at: datetime, scheme: int = CURRENT_SCHEME) -> str:
    utc = at.astimezone(UTC)
    if scheme == SCHEME_PARSED:
        return utc.isoformat(timespec="microseconds")
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any],
    prev_hash: str,
    *,
    scheme: int = CURRENT_SCHEME,
) -> str:
    """SHA-256 over the canonical JSON of the entry, as its ``scheme`` defines it."""
    fields: list[Any] = [seq, canonical_time(at, scheme), actor, action, target, detail, prev_hash]
    if scheme != SCHEME_PARSED:
        fields.insert(0, scheme)
    return hashlib.sha256(canonical_json(fields).encode()).hexdigest()


def _hash_of(entry: AuditEntry) -> str:
    return entry_hash(
        entry.seq,
        entry.at,
        entry.actor,
        entry.action,
        entry.target,
        entry.detail,
        entry.prev_hash,
        scheme=entry.scheme,
    )


@dataclass(frozen=True)
class Problem:
    """One bad entry (or checkpoint): where and why."""

    seq: int | None
    reason: str

    def describe(self) -> str:
        if self.seq is None:
            return self.reason
        return _("seq {seq}: {reason}", seq=self.seq, reason=self.reason)


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of a verification: OK, or the first bad ``seq`` and every problem found.

    ``entries`` counts the entries found intact before the first problem.
    """

    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str | None = None
    problems: tuple[Problem, ...] = ()
    checkpoints: int = 0

    def describe(self) -> str:
        if self.ok and self.checkpoints:
            return _(
                "audit log OK ({entries} entries, {checkpoints} checkpoints match)",
                entries=self.entries,
                checkpoints=self.checkpoints,
            )
        if self.ok:
            return _("audit log OK ({entries} entries)", entries=self.entries)
        if self.bad_seq is None and not self.problems:
            return _("audit log cannot be checked: {reason}", reason=self.reason)
        first = _("seq {seq}", seq=self.bad_seq) if self.bad_seq is not None else _("its end")
        lines: list[str] = [
            _("audit log BROKEN at {first}: {reason}", first=first, reason=self.reason)
        ]
        if len(self.problems) > 1:
            lines += [_("  {problem}", problem=p.describe()) for p in self.problems]
        return TextList(lines, "\n")

    @classmethod
    def of(cls, problems: list[Problem], intact: int, checkpoints: int = 0) -> VerifyResult:
        if not problems:
            return cls(True, intact, checkpoints=checkpoints)
        first = problems[0]
        return cls(False, intact, first.seq, first.reason, tuple(problems), checkpoints)


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
            scheme=CURRENT_SCHEME,
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
        """Walk the chain in ``seq`` order; report every entry that does not fit."""
        from server.audit.verify import verify_chain

        return verify_chain(session)
