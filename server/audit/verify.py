"""Checking the audit log: every bad row by ``seq`` with a reason, never a traceback.

Rows are read as the database stores them (the detail as text, the time as SQLite's
text or PostgreSQL's timestamp), not through the ORM's converters, so a row someone
edited by hand is judged instead of crashing the check. A row must be in canonical
form: its detail text exactly what the writer of its scheme produces (no duplicated
keys, no re-spacing), its time in the database's own format. Then its hash, its link
to the row before it, the ``seq`` sequence, the head row and, when given, the signed
checkpoints kept outside the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, Text, cast, inspect, make_url, select, type_coerce
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from clinicam.i18n import _, message_of
from server.audit.log import (
    CURRENT_SCHEME,
    GENESIS_HASH,
    HEAD_ID,
    SCHEME_CANONICAL,
    SCHEME_PARSED,
    AuditEntry,
    AuditHead,
    Problem,
    VerifyResult,
    canonical_json,
    entry_hash,
)
from server.db import connect_database

_SQLITE_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class BadRow(Exception):
    """A row that is not in canonical form; the message says how."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRow(_("detail has the key {key} twice", key=repr(key)))
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise BadRow(_("detail holds {name}, which is not JSON", name=name))


def _detail(raw: object, scheme: int) -> dict[str, Any]:
    if not isinstance(raw, str):
        raise BadRow(_("detail is not stored as JSON text"))
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise BadRow(_("detail is not valid JSON ({problem})", problem=exc.msg)) from None
    if not isinstance(value, dict):
        raise BadRow(_("detail is not a JSON object"))
    # Scheme 1 rows were stored by json.dumps with its defaults; scheme 2 canonically.
    expected = json.dumps(value) if scheme == SCHEME_PARSED else canonical_json(value)
    if raw != expected:
        raise BadRow(_("detail text is not in canonical form (edited by hand)"))
    return value


def _time(raw: object) -> datetime:
    if isinstance(raw, datetime):  # PostgreSQL: a typed timestamp
        if raw.tzinfo is None:
            raise BadRow(_("time has no time zone"))
        return raw.astimezone(UTC)
    if not isinstance(raw, str) or not _SQLITE_TIME.fullmatch(raw):
        raise BadRow(_("time {time} is not in the stored format", time=repr(str(raw)[:40])))
    try:
        return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        raise BadRow(_("time {time} is not a valid date and time", time=repr(raw))) from None


@dataclass
class _Walk:
    problems: list[Problem]
    expected: int = 1
    prev_hash: str | None = GENESIS_HASH  # None: unknown (after a gap)
    intact: int = 0
    newest_scheme: int = SCHEME_PARSED
    hashes: dict[int, str] | None = None

    def bad(self, seq: int | None, reason: str) -> None:
        if not self.problems:
            self.intact = self.expected - 1
        self.problems.append(Problem(seq, reason))


def _check_row(walk: _Walk, row: Sequence[Any]) -> None:
    seq, scheme, at_raw, actor, action, target, detail_raw, prev_hash, stored = row
    if not isinstance(seq, int) or isinstance(seq, bool):
        walk.bad(None, _("an entry's seq {seq} is not a number", seq=repr(str(seq)[:20])))
        return
    if seq != walk.expected:
        missing = (
            f"seq {walk.expected}"
            if seq == walk.expected + 1
            else (f"seq {walk.expected}–{seq - 1}")
        )
        walk.bad(
            walk.expected,
            _(
                "entry missing ({missing}; the next entry is seq {seq}): deleted",
                missing=missing,
                seq=seq,
            ),
        )
        walk.prev_hash = None
    walk.expected = seq + 1
    if not isinstance(stored, str) or not _HEX64.fullmatch(stored):
        walk.bad(seq, _("its hash is not a SHA-256 hex digest"))
        walk.prev_hash = None
        return
    try:
        if scheme not in (SCHEME_PARSED, SCHEME_CANONICAL):
            raise BadRow(_("unknown hash scheme {scheme}", scheme=repr(scheme)))
        if scheme < walk.newest_scheme:
            raise BadRow(
                _(
                    "scheme {scheme} after scheme {newest} entries: downgraded",
                    scheme=scheme,
                    newest=walk.newest_scheme,
                )
            )
        walk.newest_scheme = scheme
        for name, value in (("actor", actor), ("action", action), ("target", target)):
            if not isinstance(value, str):
                raise BadRow(_("{name} is not text", name=name))
        if not isinstance(prev_hash, str):
            raise BadRow(_("{name} is not text", name="prev_hash"))
        at = _time(at_raw)
        detail = _detail(detail_raw, scheme)
        computed = entry_hash(seq, at, actor, action, target, detail, prev_hash, scheme=scheme)
    except BadRow as exc:
        walk.bad(seq, message_of(exc))
    else:
        if computed != stored:
            walk.bad(
                seq, _("content does not match its hash: edited, or moved from another position")
            )
        elif walk.prev_hash is not None and prev_hash != walk.prev_hash:
            walk.bad(seq, _("does not link to the entry before it: entries replaced or reordered"))
    walk.prev_hash = stored
    if walk.hashes is not None:
        walk.hashes[seq] = stored


def _rows(session: Session) -> Any:
    return session.execute(
        select(
            AuditEntry.seq,
            AuditEntry.scheme,
            type_coerce(AuditEntry.at, String),  # raw text on SQLite, a timestamp on PG
            AuditEntry.actor,
            AuditEntry.action,
            AuditEntry.target,
            cast(AuditEntry.detail, Text),  # the stored text, duplicates and all
            AuditEntry.prev_hash,
            AuditEntry.hash,
        )
        .order_by(AuditEntry.seq)
        .execution_options(yield_per=500)
    )


_HEAD_READS = 5


def _head(session: Session) -> tuple[str, str] | None:
    row = session.execute(
        select(type_coerce(AuditHead.seq, String), AuditHead.hash).where(AuditHead.id == HEAD_ID)
    ).one_or_none()
    return None if row is None else (str(row[0]), str(row[1]))


def _walk(session: Session, keep_hashes: bool) -> tuple[_Walk, tuple[str, str] | None]:
    """Walk the rows between two reads of the head that agree.

    A live server keeps appending while this runs, and outside one snapshot the
    rows and the head are read at different moments. Every append moves the
    head in the same commit as its row, so equal heads before and after mean
    the rows read in between are the log as of that head.
    """
    for _attempt in range(_HEAD_READS):
        before = _head(session)
        walk = _Walk([], hashes={} if keep_hashes else None)
        for row in _rows(session):
            _check_row(walk, row)
        after = _head(session)
        if before == after:
            break
    return walk, after


def verify_chain(
    session: Session, checkpoints: Sequence[tuple[int, str]] | None = None
) -> VerifyResult:
    """Every problem in the log; ``checkpoints`` are trusted (seq, hash) pairs to match."""
    walk, head = _walk(session, bool(checkpoints))
    count = walk.expected - 1
    if not walk.problems:
        walk.intact = count
    if head is None:
        walk.bad(None, _("the audit_head row is missing"))
    elif head[0] != str(count) or head[1] != (walk.prev_hash or ""):
        walk.bad(
            count + 1,
            _(
                "the log ends at seq {count} but the head records seq {head}: "
                "entries deleted from the end",
                count=count,
                head=head[0],
            ),
        )
    for cp_seq, cp_hash in checkpoints or ():
        found = (walk.hashes or {}).get(cp_seq)
        if found is None:
            walk.bad(
                cp_seq,
                _(
                    "a signed checkpoint records seq {seq} but the log ends at seq {count}: "
                    "entries cut off the end",
                    seq=cp_seq,
                    count=count,
                ),
            )
        elif found != cp_hash:
            walk.bad(cp_seq, _("differs from the signed checkpoint: the log was rewritten"))
    result = VerifyResult.of(walk.problems, walk.intact, len(checkpoints or ()))
    return result


def verify_database(url: str, checkpoints: Sequence[tuple[int, str]] | None = None) -> VerifyResult:
    """Verify the audit log in the database at ``url`` without migrating or changing it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return VerifyResult(False, 0, None, _("no database file at {path}", path=parsed.database))
    database = connect_database(url)
    try:
        tables = inspect(database.engine)
        if not tables.has_table(AuditEntry.__tablename__):
            return VerifyResult(False, 0, None, _("no audit log in this database"))
        columns = {c["name"] for c in tables.get_columns(AuditEntry.__tablename__)}
        if "scheme" not in columns:
            return VerifyResult(
                False, 0, None, _("the database predates this version: start the server once")
            )
        with database.session() as session:
            return verify_chain(session, checkpoints)
    except SQLAlchemyError as exc:
        return VerifyResult(
            False, 0, None, _("the database cannot be read: {problem}", problem=type(exc).__name__)
        )
    finally:
        database.close()


__all__ = ["CURRENT_SCHEME", "verify_chain", "verify_database"]
