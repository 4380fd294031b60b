"""The audit chain cannot be fooled (issue 15, class 7), on SQLite and PostgreSQL.

A row edited with a duplicated JSON key, a malformed time, a log cut short with its
head rewritten: each is reported by seq with a reason (never a traceback, exit 1).
Entries written before the canonical scheme stay verifiable after the upgrade.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import delete, select, text, update

from server.audit import AuditEntry, AuditLog
from server.audit.log import GENESIS_HASH, AuditHead, entry_hash
from server.db import Database, connect_database, open_database, upgrade

N = 8


def _fill(database: Database, n: int = N) -> None:
    with database.session() as session:
        for i in range(1, n + 1):
            AuditLog().append(session, "dr-a", "read", f"patient:{i}", {"record": i, "note": "ü"})
        session.commit()


def _clinicam(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clinicam_app", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _set_detail_text(database: Database, seq: int, raw: str) -> None:
    cast = "CAST(:d AS JSON)" if database.backend == "postgresql" else ":d"
    with database.session() as session:
        session.execute(
            text(f"UPDATE audit_entries SET detail = {cast} WHERE seq = :s"),
            {
                "d": raw,
                "s": seq,
            },
        )
        session.commit()


def _detail_text(database: Database, seq: int) -> str:
    with database.session() as session:
        raw = session.scalar(
            select(sa.cast(AuditEntry.detail, sa.Text)).where(AuditEntry.seq == seq)
        )
    assert isinstance(raw, str)
    return raw


def test_a_duplicated_json_key_is_refused(database: Database, database_url: str) -> None:
    _fill(database)
    raw = _detail_text(database, 3)
    # Readers that take the first of two keys now see record 999; the hash still
    # matches what a last-key-wins parser sees.
    _set_detail_text(database, 3, '{"record": 999, ' + raw[1:])
    result = _clinicam("verify", "--database", database_url)
    assert result.returncode == 1, result.stdout
    assert "seq 3" in result.stderr and "twice" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_malformed_time_is_reported_not_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clinicam.db'}"
    database = open_database(url)
    _fill(database)
    with database.session() as session:
        session.execute(text("UPDATE audit_entries SET at = 'yesterday noon' WHERE seq = 2"))
        session.execute(update(AuditEntry).where(AuditEntry.seq == 6).values(actor="someone"))
        session.commit()
    database.close()
    result = _clinicam("verify", "--database", url)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "seq 2" in result.stderr and "time" in result.stderr
    assert "seq 6" in result.stderr  # every bad row, not only the first


def test_a_cut_off_log_with_a_rewritten_head_fails_against_a_checkpoint(
    database: Database, database_url: str, tmp_path: Path
) -> None:
    _fill(database)
    key, checkpoints = tmp_path / "audit.key", tmp_path / "checkpoints.jsonl"
    made = _clinicam(
        "checkpoint", "--database", database_url, "--key", str(key), "--out", str(checkpoints)
    )
    assert made.returncode == 0, made.stderr
    record = json.loads(checkpoints.read_text().splitlines()[-1])
    assert record["seq"] == N and len(record["sig"]) > 40
    check = ["verify", "--database", database_url, "--checkpoint", str(checkpoints)]
    ok = _clinicam(*check, "--key", str(key.with_name("audit-signing.pub")))
    assert ok.returncode == 0, ok.stderr
    assert "1 checkpoints match" in ok.stdout

    with database.session() as session:  # cut the last two entries, rewrite the head
        session.execute(delete(AuditEntry).where(AuditEntry.seq > N - 2))
        last = session.get_one(AuditEntry, N - 2)
        session.execute(update(AuditHead).values(seq=N - 2, hash=last.hash))
        session.commit()
    assert _clinicam("verify", "--database", database_url).returncode == 0  # chain alone: fooled
    cut = _clinicam(*check, "--key", str(key))
    assert cut.returncode == 1
    assert f"seq {N}" in cut.stderr and "cut off" in cut.stderr

    _fill(database, 3)  # new entries take the old seqs: a rewrite, not a truncation
    rewritten = _clinicam(*check, "--key", str(key))
    assert rewritten.returncode == 1 and "rewritten" in rewritten.stderr

    forged = dict(record, seq=N + 1)  # a checkpoint nobody signed is refused, not trusted
    checkpoints.write_text(json.dumps(forged) + "\n")
    refused = _clinicam(*check, "--key", str(key))
    assert refused.returncode == 1 and "signature" in refused.stderr


def _old_style_entries(database: Database, n: int) -> None:
    """Entries exactly as the scheme-1 writer stored them (json.dumps text, old hash)."""
    table = sa.table(
        "audit_entries",
        *(sa.column(c) for c in ("seq", "at", "actor", "action", "target", "prev_hash", "hash")),
        sa.column("detail", sa.JSON),
    )
    prev = GENESIS_HASH
    with database.engine.begin() as conn:
        for seq in range(1, n + 1):
            at = datetime(2026, 1, 2, 3, 4, 5, 6000 + seq, tzinfo=UTC)
            detail = {"record": seq, "note": "ü", "a": [1, 2]}
            digest = entry_hash(seq, at, "dr-old", "read", "patient:1", detail, prev, scheme=1)
            stored_at = at.replace(tzinfo=None) if database.backend == "sqlite" else at
            conn.execute(
                table.insert().values(
                    seq=seq,
                    at=stored_at,
                    actor="dr-old",
                    action="read",
                    target="patient:1",
                    detail=detail,
                    prev_hash=prev,
                    hash=digest,
                )
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": n, "h": prev})


def test_entries_from_before_the_upgrade_still_verify(database_url: str) -> None:
    old = connect_database(database_url)
    upgrade(old.engine, "0003")  # the schema as the previous release left it
    _old_style_entries(old, 4)
    old.close()
    database = open_database(database_url)  # the server's start-up migrates
    try:
        _fill(database, 3)  # new entries use the canonical scheme
        with database.session() as session:
            schemes = list(session.scalars(select(AuditEntry.scheme).order_by(AuditEntry.seq)))
            assert schemes == [1, 1, 1, 1, 2, 2, 2]
            result = AuditLog().verify(session)
        assert (result.ok, result.entries) == (True, 7), result.describe()
        raw = _detail_text(database, 2)
        _set_detail_text(database, 2, raw.replace("{", '{"record": 5, ', 1))
        with database.session() as session:
            broken = AuditLog().verify(session)
        assert (broken.ok, broken.bad_seq) == (False, 2) and "twice" in (broken.reason or "")
    finally:
        database.close()
