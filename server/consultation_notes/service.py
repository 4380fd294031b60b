"""The shared notes of a consultation: read them, save an edit, hear of every new version.

An expert's page sends ``{base_version, text}``: the whole text as they see it and the
version it started from. The desk merges the change from that version's text to theirs
into the current text (:mod:`server.consultation_notes.merge`), so experts typing at the
same time keep each other's text, and stores the result as a new version, with its audit
entry in the same transaction. After the commit, :attr:`SharedNotes.published` tells the
room (the composition sends it to every expert's page in it; never the clinic station).

An expert who typed on while their edit was being saved sends their next edit with
``sent=True``: its base is then the text they sent for ``base_version``, not the merged one.
Notes can be written while a consultation is scheduled or live; once it has ended they are
read-only. :meth:`SharedNotes.text` gives the report the notes as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy.orm import Session

from clinicam.configfile import StrictModel
from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.config import ConsultationConfig
from server.consultation_notes.merge import change, merge
from server.consultation_notes.models import ConsultationNoteRevision, ConsultationNotes
from server.db import Database, iso, utcnow
from server.directory.book import Directory
from server.directory.models import ENDED, ConsultationRow
from server.domain_errors import Conflict, Forbidden, Invalid, NotFound, TooLarge

_LOGGER = logging.getLogger(__name__)

MAX_CHARS = 100_000
ACTION_EDIT = "consultation.notes_edit"


class NotesEdit(StrictModel):
    """What an expert's page sends: the notes as they see them, and where they started."""

    base_version: int = Field(ge=0, description="The version the text was edited from.")
    text: str = Field(max_length=MAX_CHARS, description="The whole notes, as typed.")
    sent: bool = Field(
        False, description="The base is the text I sent for base_version (I typed on since)."
    )


@dataclass(frozen=True)
class NotesVersion:
    """The notes at one version; ``saved``: this answer stored the asker's edit."""

    consultation_id: str
    version: int
    text: str
    by: str | None
    by_name: str | None
    at: datetime | None
    read_only: bool = False
    saved: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "text": self.text,
            "by": self.by,
            "by_name": self.by_name,
            "at": iso(self.at),
            "read_only": self.read_only,
            "saved": self.saved,
        }


Publish = Callable[[ConsultationConfig, NotesVersion], Awaitable[None]]


async def _nobody(consultation: ConsultationConfig, notes: NotesVersion) -> None:
    return None


class SharedNotes:
    """Reads and merges consultations' notes; each saved version commits with its audit."""

    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        directory: Directory,
        *,
        published: Publish = _nobody,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._audit = audit
        self._directory = directory
        self._clock = clock
        self.published = published
        self._locks: dict[str, asyncio.Lock] = {}  # one save at a time per consultation

    # reading
    async def text(self, consultation_id: str) -> str:
        """The consultation's notes as they are now ("" when none were written)."""
        return (await asyncio.to_thread(self._read, consultation_id)).text

    async def current(self, actor: str, consultation_id: str) -> NotesVersion:
        """The notes, for an expert invited to the consultation."""
        self._invited(actor, consultation_id)
        return await asyncio.to_thread(self._read, consultation_id)

    def _read(self, cid: str) -> NotesVersion:
        with self._database.session() as session:
            row = session.get(ConsultationNotes, cid)
            consultation = session.get(ConsultationRow, cid)
            read_only = consultation is None or consultation.state == ENDED
            if row is None:
                return NotesVersion(cid, 0, "", None, None, None, read_only)
            return self._version(row, read_only=read_only)

    def _version(
        self, row: ConsultationNotes, *, read_only: bool = False, saved: bool = False
    ) -> NotesVersion:
        account = self._directory.account(row.updated_by)
        name = account.display_name if account is not None else row.updated_by
        return NotesVersion(
            row.consultation_id,
            row.version,
            row.text,
            row.updated_by,
            name,
            row.updated_at,
            read_only,
            saved,
        )

    def _invited(self, actor: str, cid: str) -> ConsultationConfig:
        consultation = self._directory.consultation(cid)
        if consultation is None:
            raise NotFound(_("no such consultation"))
        if actor not in consultation.experts:
            raise Forbidden(_("you are not invited to this consultation"))
        return consultation

    # writing
    async def edit(self, actor: str, consultation_id: str, edit: NotesEdit) -> NotesVersion:
        """Merge ``edit`` into the notes; the new version (or, when the edit changed
        nothing, the current one) is returned and, when new, published to the room."""
        consultation = self._invited(actor, consultation_id)
        lock = self._locks.setdefault(consultation_id, asyncio.Lock())
        async with lock:
            notes = await asyncio.to_thread(self._save, actor, consultation_id, edit)
        if notes.saved:
            await self.published(consultation, notes)
        return notes

    def _save(self, actor: str, cid: str, edit: NotesEdit) -> NotesVersion:
        with self._database.session() as session, session.begin():
            consultation = session.get(ConsultationRow, cid)
            if consultation is None:
                raise NotFound(_("no such consultation"))
            if consultation.state == ENDED:
                raise Conflict(_("this consultation has ended: its notes can no longer change"))
            row = session.get(ConsultationNotes, cid, with_for_update=True)
            base = self._base(session, actor, cid, edit, row.version if row else 0)
            current = row.text if row is not None else ""
            if edit.text == base:  # nothing typed since the base: the notes as they are
                if row is None:
                    return NotesVersion(cid, 0, "", None, None, None)
                return self._version(row)
            merged = merge(base, edit.text, current)
            if len(merged) > MAX_CHARS:
                raise TooLarge(
                    _("the notes would be longer than {limit} characters", limit=MAX_CHARS)
                )
            now = self._clock()
            if row is None:
                row = ConsultationNotes(consultation_id=cid, text="", version=0)
                session.add(row)
            row.version += 1
            row.text, row.updated_at, row.updated_by = merged, now, actor
            session.add(
                ConsultationNoteRevision(
                    consultation_id=cid,
                    version=row.version,
                    text=merged,
                    sent=None if merged == edit.text else edit.text,
                    author=actor,
                    at=now,
                )
            )
            delta = change(current, merged)
            self._audit.write(
                session,
                actor,
                ACTION_EDIT,
                f"consultation:{cid}",
                {
                    "version": row.version,
                    "added": delta.added,
                    "removed": delta.removed,
                    "merged": merged != edit.text,  # others typed at the same time
                },
            )
            session.flush()
            return self._version(row, saved=True)

    def _base(self, session: Session, actor: str, cid: str, edit: NotesEdit, latest: int) -> str:
        """The text the edit started from."""
        if edit.base_version > latest:
            raise Invalid(
                _("base_version: no version {version} of these notes", version=edit.base_version)
            )
        if edit.base_version == 0:
            if edit.sent:
                raise Invalid(_("sent: version 0 was not sent by anyone"))
            return ""
        revision = session.get(ConsultationNoteRevision, (cid, edit.base_version))
        if revision is None:  # kept forever: only a damaged database loses one
            raise Invalid(
                _("base_version: no version {version} of these notes", version=edit.base_version)
            )
        if not edit.sent:
            return revision.text
        if revision.author != actor:
            raise Invalid(_("sent: version {version} was not yours", version=edit.base_version))
        return revision.sent if revision.sent is not None else revision.text
