"""Shared notes: experts typing at the same time keep each other's text; every version is
kept with its audit entry; bad input and ended consultations change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.auth import hash_secret
from server.config import ConsultationConfig, ServerConfig
from server.consultation_notes.merge import merge
from server.consultation_notes.models import ConsultationNoteRevision, ConsultationNotes
from server.consultation_notes.service import MAX_CHARS, NotesEdit, NotesVersion, SharedNotes
from server.db import Database, open_database
from server.directory.book import Directory
from server.directory.consultations import ConsultationDesk
from server.directory.seed import import_config
from server.domain_errors import Conflict, Forbidden, Invalid, NotFound, TooLarge

HASH = hash_secret("pw")


@dataclass
class World:
    database: Database
    notes: SharedNotes
    desk: ConsultationDesk
    published: list[tuple[str, NotesVersion]]
    trail: AuditTrail

    def audit(self) -> list[AuditEntry]:
        with self.database.session() as session:
            query = select(AuditEntry).where(AuditEntry.action == "consultation.notes_edit")
            return list(session.scalars(query.order_by(AuditEntry.seq)))

    def revisions(self) -> list[tuple[int, str, str | None, str]]:
        with self.database.session() as session:
            rows = session.scalars(
                select(ConsultationNoteRevision).order_by(ConsultationNoteRevision.version)
            )
            return [(r.version, r.text, r.sent, r.author) for r in rows]

    def stored(self) -> str | None:
        with self.database.session() as session:
            row = session.get(ConsultationNotes, "c1")
            return None if row is None else row.text


def _person(username: str, role: str) -> dict[str, Any]:
    return {"username": username, "display_name": username.title(), "password_hash": HASH,
            "role": role}  # fmt: skip


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    database = open_database(database_url)  # SQLite and PostgreSQL
    audit = AuditTrail(database)
    config = ServerConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "experts": [
                _person("chair", "chair"),
                _person("alice", "expert"),
                _person("bob", "expert"),
                _person("eve", "expert"),
            ],
            "devices": [{"device_id": "cam-1", "clinic": "Hill", "token_hash": HASH}],
            "patients": [{"id": "P-1", "name": "Patient One"}],
            "consultations": [
                {
                    "id": "c1",
                    "patient_id": "P-1",
                    "appliance": "cam-1",
                    "chair": "chair",
                    "experts": ["chair", "alice", "bob"],
                }
            ],
        }
    )
    import_config(config, database, audit)
    directory = Directory(database)
    published: list[tuple[str, NotesVersion]] = []

    async def publish(consultation: ConsultationConfig, notes: NotesVersion) -> None:
        published.append((consultation.id, notes))

    notes = SharedNotes(database, audit, directory, published=publish)
    desk = ConsultationDesk(database, audit, directory)
    yield World(database, notes, desk, published, audit)
    database.close()


def _edit(base: int, text: str, **more: Any) -> NotesEdit:
    return NotesEdit(base_version=base, text=text, **more)


async def test_edits_from_the_same_base_in_two_places_both_survive(world: World) -> None:
    first = await world.notes.edit("alice", "c1", _edit(0, "Findings:\n\nPlan:\n"))
    assert (first.version, first.saved, first.by_name) == (1, True, "Alice")
    a = await world.notes.edit("alice", "c1", _edit(1, "Findings: rash on the arm\n\nPlan:\n"))
    b = await world.notes.edit("bob", "c1", _edit(1, "Findings:\n\nPlan: cream twice a day\n"))
    want = "Findings: rash on the arm\n\nPlan: cream twice a day\n"
    assert (a.version, b.version, b.text) == (2, 3, want)
    assert await world.notes.text("c1") == want
    assert world.stored() == want
    # everyone in the room heard of each version; bob's merged one last
    assert [(cid, n.version, n.by) for cid, n in world.published] == [
        ("c1", 1, "alice"), ("c1", 2, "alice"), ("c1", 3, "bob")
    ]  # fmt: skip
    assert world.published[-1][1].text == want


async def test_insertions_at_the_same_place_both_stay(world: World) -> None:
    await world.notes.edit("alice", "c1", _edit(0, "BP 120/80. "))
    await world.notes.edit("alice", "c1", _edit(1, "BP 120/80. Pulse 72."))
    merged = await world.notes.edit("bob", "c1", _edit(1, "BP 120/80. Temp 37.2."))
    assert "Pulse 72." in merged.text and "Temp 37.2." in merged.text
    assert merged.text.startswith("BP 120/80. ")
    # bob's own text is kept as he sent it, beside the merged version
    assert world.revisions()[-1] == (3, merged.text, "BP 120/80. Temp 37.2.", "bob")


async def test_typing_on_while_saving_continues_from_what_was_sent(world: World) -> None:
    await world.notes.edit("alice", "c1", _edit(0, "one\n"))
    await world.notes.edit("bob", "c1", _edit(1, "one\nbob\n"))  # version 2
    sent = await world.notes.edit("alice", "c1", _edit(1, "alice\none\n"))  # merged: 3
    assert sent.text == "alice\none\nbob\n"
    # alice typed "more" after what she sent, before the answer came: no duplicates
    again = await world.notes.edit("alice", "c1", _edit(3, "alice more\none\n", sent=True))
    assert again.text == "alice more\none\nbob\n"
    with pytest.raises(Invalid, match="not yours"):
        await world.notes.edit("bob", "c1", _edit(3, "x", sent=True))


async def test_an_unchanged_text_stores_no_version(world: World) -> None:
    await world.notes.edit("alice", "c1", _edit(0, "hello"))
    same = await world.notes.edit("bob", "c1", _edit(1, "hello"))
    assert (same.version, same.saved, same.text) == (1, False, "hello")
    nothing = await world.notes.edit("bob", "c1", _edit(0, ""))
    assert (nothing.version, nothing.text) == (1, "hello")
    assert len(world.revisions()) == 1 and len(world.audit()) == 1


async def test_every_version_has_its_audit_entry_without_the_text(world: World) -> None:
    await world.notes.edit("alice", "c1", _edit(0, "secret finding"))
    await world.notes.edit("bob", "c1", _edit(1, "secret"))
    entries = world.audit()
    assert [(e.actor, e.target, e.detail["version"]) for e in entries] == [
        ("alice", "consultation:c1", 1), ("bob", "consultation:c1", 2)
    ]  # fmt: skip
    assert (entries[0].detail["added"], entries[0].detail["removed"]) == (14, 0)
    assert (entries[1].detail["added"], entries[1].detail["removed"]) == (0, 8)
    assert all("secret" not in str(e.detail) for e in entries)


@pytest.mark.parametrize(
    ("edit", "refusal"),
    [
        ({"base_version": 7, "text": "x"}, "no version 7"),
        ({"base_version": 0, "text": "x", "sent": True}, "version 0"),
    ],
)
async def test_a_bad_base_is_refused_and_nothing_stored(
    world: World, edit: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(Invalid, match=refusal):
        await world.notes.edit("alice", "c1", NotesEdit.model_validate(edit))
    assert world.stored() is None and world.audit() == [] and world.published == []


def test_the_edit_model_refuses_bad_input() -> None:
    for bad in (
        {"base_version": -1, "text": ""},
        {"base_version": "one", "text": ""},
        {"base_version": 0},
        {"base_version": 0, "text": "x" * (MAX_CHARS + 1)},
        {"base_version": 0, "text": "", "extra": 1},
    ):
        with pytest.raises(ValueError):
            NotesEdit.model_validate(bad)


async def test_a_merge_longer_than_the_limit_is_refused(world: World) -> None:
    many = 60_000  # each edit alone is within the limit, the two together are not
    await world.notes.edit("alice", "c1", _edit(0, "m"))
    await world.notes.edit("alice", "c1", _edit(1, "m" + "a" * many))
    with pytest.raises(TooLarge):
        await world.notes.edit("bob", "c1", _edit(1, "b" * many + "m"))
    assert len(world.revisions()) == 2


async def test_only_invited_experts_read_and_write(world: World) -> None:
    with pytest.raises(Forbidden):
        await world.notes.edit("eve", "c1", _edit(0, "x"))
    with pytest.raises(Forbidden):
        await world.notes.current("eve", "c1")
    with pytest.raises(NotFound):
        await world.notes.current("alice", "c404")
    assert (await world.notes.current("chair", "c1")).to_json()["version"] == 0


async def test_notes_are_read_only_after_the_end(world: World) -> None:
    await world.notes.edit("alice", "c1", _edit(0, "before the end"))
    await world.desk.end("chair", "c1")
    with pytest.raises(Conflict, match="ended"):
        await world.notes.edit("alice", "c1", _edit(1, "after the end"))
    now = await world.notes.current("bob", "c1")
    assert (now.text, now.read_only, now.version) == ("before the end", True, 1)
    assert len(world.audit()) == 1


async def test_simultaneous_saves_are_serialized(world: World) -> None:
    await world.notes.edit("alice", "c1", _edit(0, "start\n"))
    results = await asyncio.gather(
        *(
            world.notes.edit("alice" if i % 2 else "bob", "c1", _edit(1, f"start\nline {i}\n"))
            for i in range(6)
        )
    )
    assert sorted(r.version for r in results) == [2, 3, 4, 5, 6, 7]
    final = await world.notes.text("c1")
    assert all(f"line {i}" in final for i in range(6))


def test_a_patch_with_no_place_to_go_appends_what_it_inserted() -> None:
    base = "The quick brown fox jumps over the lazy dog."
    sent = "The quick brown fox (inserted) jumps over the lazy dog."
    current = "Completely rewritten by someone else meanwhile, nothing alike at all."
    merged = merge(base, sent, current)
    assert merged.startswith(current) and "(inserted)" in merged


class AuditDown(Exception):
    """The audit log cannot be written."""


async def test_no_version_without_its_audit_entry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    await world.notes.edit("alice", "c1", _edit(0, "kept"))

    def audit_down(*args: Any, **kwargs: Any) -> None:
        raise AuditDown("audit log unavailable")

    monkeypatch.setattr(world.trail, "write", audit_down)
    with pytest.raises(AuditDown):
        await world.notes.edit("bob", "c1", _edit(1, "kept, and lost"))
    assert world.stored() == "kept" and len(world.revisions()) == 1
    assert len(world.audit()) == 1 and len(world.published) == 1
