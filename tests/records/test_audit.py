"""The audit log is a hash chain: any edited, deleted or reordered entry is found."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, func, select, update

from server.audit import AuditEntry, AuditLog, VerifyResult
from server.db import Database

N = 8


def _fill(database: Database, n: int = N) -> None:
    log = AuditLog()
    with database.session() as session:
        for i in range(1, n + 1):
            log.append(session, "dr-a", "read", f"patient:{i}", {"record": i, "note": "ü"})
        session.commit()


def _verify(database: Database) -> VerifyResult:
    with database.session() as session:
        return AuditLog().verify(session)


def test_appended_entries_verify(database: Database) -> None:
    assert _verify(database) == VerifyResult(True, 0)
    _fill(database)
    result = _verify(database)
    assert result == VerifyResult(True, N)
    assert result.describe() == f"audit log OK ({N} entries)"
    with database.session() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert [e.seq for e in entries] == list(range(1, N + 1))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert entries[0].detail == {"record": 1, "note": "ü"}


def test_an_uncommitted_action_leaves_no_entry(database: Database) -> None:
    _fill(database, 2)
    with database.session() as session:
        AuditLog().append(session, "dr-a", "edit", "patient:1", {})
        session.rollback()
    _fill(database, 1)
    assert _verify(database) == VerifyResult(True, 3)


def test_edited_detail_is_reported_at_its_seq(database: Database) -> None:
    _fill(database)
    with database.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 4).values(detail={"x": 1}))
        session.commit()
    result = _verify(database)
    assert (result.ok, result.bad_seq) == (False, 4)
    assert "edited" in (result.reason or "")


def test_edited_time_or_actor_is_reported(database: Database) -> None:
    _fill(database)
    with database.session() as session:
        at = session.scalar(select(AuditEntry.at).where(AuditEntry.seq == 2))
        assert at is not None
        session.execute(
            update(AuditEntry).where(AuditEntry.seq == 2).values(at=at - timedelta(days=1))
        )
        session.execute(update(AuditEntry).where(AuditEntry.seq == 6).values(actor="someone"))
        session.commit()
    assert _verify(database).bad_seq == 2


def test_rehashed_edit_breaks_the_link_to_the_next_entry(database: Database) -> None:
    from server.audit.log import entry_hash

    _fill(database)
    with database.session() as session:
        e = session.get_one(AuditEntry, 3)
        e.detail = {"record": 999}
        e.hash = entry_hash(e.seq, e.at, e.actor, e.action, e.target, e.detail, e.prev_hash)
        session.commit()
    result = _verify(database)
    assert (result.ok, result.bad_seq) == (False, 4)
    assert "link" in (result.reason or "")


def test_deleted_entry_is_reported(database: Database) -> None:
    _fill(database)
    with database.session() as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
        session.commit()
    result = _verify(database)
    assert (result.ok, result.bad_seq, result.entries) == (False, 5, 4)
    assert "deleted" in (result.reason or "")


def test_entries_cut_off_the_end_are_reported(database: Database) -> None:
    _fill(database)
    with database.session() as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq >= N - 1))
        session.commit()
    result = _verify(database)
    assert (result.ok, result.bad_seq) == (False, N - 1)
    assert "end" in (result.reason or "")


def test_an_append_while_verifying_a_live_log_is_not_reported_as_a_cut(
    database: Database,
) -> None:
    """A running server appends between the walk and the head read: not tampering."""
    _fill(database)
    appended: list[int] = []

    def append_once(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if appended or "FROM audit_entries" not in statement or "ORDER BY" not in statement:
            return
        appended.append(1)
        _fill(database, 1)

    event.listen(database.engine, "after_cursor_execute", append_once)
    try:
        result = _verify(database)
    finally:
        event.remove(database.engine, "after_cursor_execute", append_once)
    assert appended == [1]
    assert result == VerifyResult(True, N + 1), result.describe()


def test_swapped_entries_are_reported(database: Database) -> None:
    _fill(database)
    with database.session() as session:
        move = update(AuditEntry)
        session.execute(move.where(AuditEntry.seq == 3).values(seq=-1))
        session.execute(move.where(AuditEntry.seq == 6).values(seq=3))
        session.execute(move.where(AuditEntry.seq == -1).values(seq=6))
        session.commit()
    result = _verify(database)
    assert (result.ok, result.bad_seq) == (False, 3)


def test_concurrent_writers_build_one_unbroken_chain(database: Database) -> None:
    writers, each = 4, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(name: str) -> None:
        try:
            start.wait()
            log = AuditLog()
            for i in range(each):
                with database.session() as session:
                    log.append(session, name, "write", f"patient:{i}", {"i": i})
                    session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"w{n}",)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert _verify(database) == VerifyResult(True, writers * each)
    with database.session() as session:
        per_actor = dict(
            session.execute(select(AuditEntry.actor, func.count()).group_by(AuditEntry.actor)).all()
        )
    assert per_actor == {f"w{n}": each for n in range(writers)}


def test_times_are_stored_in_utc(database: Database) -> None:
    fixed = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    with database.session() as session:
        AuditLog(clock=lambda: fixed).append(session, "dr-a", "login", "account:dr-a", {})
        session.commit()
    with database.session() as session:
        assert session.scalars(select(AuditEntry.at)).one() == fixed
