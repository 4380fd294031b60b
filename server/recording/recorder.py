"""Which consultations are recorded, decided once at their start by the patient's consent.

When a consultation's room opens, the patient's "recording" consent in force then
decides: consent, and the call is recorded (and the room and the clinic station say
so); none, and nothing is, for the whole consultation (the room says "not recorded (no
consent)"). The start is audited with the consent it was decided on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, Literal

from sqlalchemy import select

from server.access.consent import has_consent
from server.access.models import CONSENT_RECORDING
from server.archive.call_store import CallStore
from server.archive.call_writer import ClosedSegment, SegmentedRecording, remove_partial_segments
from server.audit.trail import AuditTrail
from server.config import ConsultationConfig, RecordingConfig
from server.db import Database
from server.media.audio_mix import AudioMixer
from server.media.compositor import TileSource
from server.recording.call import CallRecording
from server.records.models import Patient

_LOGGER = logging.getLogger(__name__)
Status = Literal["recording", "no_consent", "off", "checking"]
RECORDING: Final = "recording"
NO_CONSENT: Final = "no_consent"
OFF: Final = "off"
CHECKING: Final = "checking"


class CallRecorder:
    """Starts, tracks and ends the recordings of this server's consultations."""

    def __init__(
        self,
        config: RecordingConfig,
        database: Database,
        store: CallStore,
        audit: AuditTrail,
        root: Path,
    ) -> None:
        self.config = config
        self._database = database
        self.store = store
        self._audit = audit
        self.root = root
        self._status: dict[str, Status] = {}
        self.recordings: dict[str, CallRecording] = {}
        root.mkdir(parents=True, exist_ok=True)
        for folder in [root, *(p for p in root.iterdir() if p.is_dir())]:
            for leftover in remove_partial_segments(folder):
                _LOGGER.info("removed an unfinished recorded segment %s", leftover.name)

    def status(self, consultation_id: str) -> Status:
        if not self.config.enabled:
            return OFF
        return self._status.get(consultation_id, CHECKING)

    def recording(self, consultation_id: str) -> bool:
        return self.status(consultation_id) == RECORDING

    def _consented(self, patient_external_id: str) -> bool:
        with self._database.session() as session:
            patient = session.scalar(
                select(Patient).where(Patient.external_id == patient_external_id)
            )
            return patient is not None and has_consent(session, patient.id, CONSENT_RECORDING)

    async def begin(
        self,
        consultation: ConsultationConfig,
        sources: Callable[[], Mapping[str, TileSource]],
        audio: AudioMixer,
        *,
        in_call: Callable[[], bool],
        alive: Callable[[], bool],
        locale: str,
    ) -> Status:
        """The consultation's room opened: record it if its patient consents now."""
        cid = consultation.id
        running = self.recordings.get(cid)
        if not self.config.enabled or (running is not None and running.running):
            return self.status(cid)
        consented = await asyncio.to_thread(self._consented, consultation.patient_id)
        self._status[cid] = RECORDING if consented else NO_CONSENT
        await self._audit.record(
            "server",
            "recording.started" if consented else "recording.not_consented",
            f"patient:{consultation.patient_id}",
            {"consultation": cid},
        )
        if not consented:
            return NO_CONSENT
        cfg = self.config

        def filed(segment: ClosedSegment) -> None:  # the executor thread that closed it
            try:
                self.store.file_segment(consultation.patient_id, cid, writer.started_utc, segment)
            except Exception:
                _LOGGER.exception("recorded segment %s could not be filed", segment.path.name)

        writer = SegmentedRecording(
            self.root / cid,
            filed,
            width=cfg.width,
            height=cfg.height,
            fps=cfg.fps,
            bitrate_kbps=cfg.bitrate_kbps,
            segment_seconds=cfg.segment_seconds,
        )
        recording = CallRecording(
            cfg,
            consultation.experts,
            sources,
            audio,
            writer,
            in_call=in_call,
            alive=alive,
            locale=locale,
        )
        self.recordings[cid] = recording
        recording.start()
        _LOGGER.info("recording consultation %s (the patient consented)", cid)
        return RECORDING

    async def end(self, consultation_id: str) -> None:
        recording = self.recordings.pop(consultation_id, None)
        if recording is not None:
            await recording.stop()
        self._status.pop(consultation_id, None)

    def apply_retention(self) -> int:
        return self.store.apply_retention()

    async def close(self) -> None:
        await asyncio.gather(*(self.end(cid) for cid in list(self.recordings)))
