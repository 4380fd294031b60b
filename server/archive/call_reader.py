"""Reading recorded calls (O4): the patient's list, a replay with the viewer's watermark
and a de-identified export; each read is audited, and a recording of a patient the
viewer holds no grant for does not exist for them (the views check the grant first).

The de-identified export follows the records' export (:mod:`server.records.export`):
it needs the patient's export consent, carries a pseudonym instead of the patient's
identifier (file name and audit), no container metadata beyond the muxer's own, and
has its texts (container and stream tags) scanned for the patient's identifier and name
before it leaves. A face and a voice
still identify a person: the file is pseudonymous, which the export says.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import av
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.access.consent import has_consent
from server.access.desk import Granted, in_transaction, patient_target
from server.access.models import CONSENT_EXPORT
from server.archive.call_store import CallStore, Mark, Recording, recordings_of, segments_of
from server.archive.calls import CallSegment
from server.audit.trail import AuditTrail
from server.db import Database
from server.domain_errors import Conflict, Invalid, NotFound
from server.records.deid import Pseudonymizer, scan_for_identifiers

NO_RECORDING = _("no such recording for this patient")


def _metadata_of(path: Path) -> bytes:
    """Every text the MP4 carries besides its compressed media (container and streams):
    what the self-check reads (a short identifier turns up in compressed bytes by chance)."""
    with av.open(str(path)) as container:
        tags = [dict(container.metadata), *(dict(s.metadata) for s in container.streams)]
    return json.dumps(tags, ensure_ascii=False).encode()


class CallRecordings:
    """The recorded calls as people see them: listed, replayed, exported; all audited."""

    def __init__(self, database: Database, audit: AuditTrail, store: CallStore) -> None:
        self._database = database
        self._audit = audit
        self._store = store

    async def index(self, granted: Granted) -> list[Recording]:
        found = await in_transaction(self._database, lambda s: recordings_of(s, granted.patient.id))
        await self._audit.record(
            granted.actor.username, "recording.list", patient_target(granted.patient), {}
        )
        return found

    async def _segments(self, granted: Granted, recording_id: int) -> list[CallSegment]:
        def work(session: Session) -> list[CallSegment]:
            rows = segments_of(session, granted.patient.id, recording_id)
            for row in rows:
                session.expunge(row)
            return rows

        rows = await in_transaction(self._database, work)
        if not rows:
            raise NotFound(NO_RECORDING)
        return rows

    async def replay(
        self, granted: Granted, recording_id: int, out: Path, mark: Mark | None
    ) -> None:
        """Write the recording into ``out`` (marked with the viewer's watermark if given)."""
        rows = await self._segments(granted, recording_id)
        await asyncio.to_thread(self._store.join, rows, out, mark)
        await self._audit.record(
            granted.actor.username,
            "recording.replay",
            patient_target(granted.patient),
            {"recording": recording_id, "consultation": rows[0].consultation_id},
        )

    async def export_deidentified(self, granted: Granted, recording_id: int, out: Path) -> str:
        """The de-identified copy in ``out``; returns its file name (by pseudonym)."""
        patient = granted.patient
        allowed = await in_transaction(
            self._database, lambda s: has_consent(s, patient.id, CONSENT_EXPORT)
        )
        if not allowed:
            raise Conflict(_("the patient has not consented to a de-identified export"))
        rows = await self._segments(granted, recording_id)
        await asyncio.to_thread(self._store.join, rows, out)
        needles = [v for v in (patient.external_id, patient.display_name) if v]
        data = await asyncio.to_thread(_metadata_of, out)
        if scan_for_identifiers(data, needles):
            out.unlink(missing_ok=True)
            raise Invalid(_("de-identification self-check failed; nothing exported"))
        pseudonym = Pseudonymizer().pseudonym("patient", patient.external_id)
        await self._audit.record(
            granted.actor.username,
            "recording.export",
            patient_target(patient),
            {"recording": recording_id, "deidentified": True, "pseudonym": pseudonym},
        )
        return f"recording-{pseudonym}-{recording_id}.mp4"
