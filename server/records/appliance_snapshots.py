"""Appliance snapshots filed as clinical photos of the consultation's patient (R13).

A still is filed only into a consultation bound to the very appliance that sent it,
so a device can never write into another clinic's patients. It goes through the same
filing pipeline as an upload (:class:`server.records.filing.RecordFiling`), declared a
photo, with the appliance's own account of when it was taken, who asked and in which
consultation. A retried upload of the same still finds the record already filed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from clinicam.i18n import _
from server.config import ConsultationConfig
from server.domain_errors import Unprocessable
from server.records.filing import Arrival, RecordFiling, patient_by_identifier
from server.records.ingest import Category
from server.records.store import SnapshotOrigin, safe_title

_LOGGER = logging.getLogger(__name__)
MAX_SNAPSHOT_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True)
class Still:
    """What the appliance says about a still."""

    taken_at: datetime
    requested_by: str
    consultation: str  # empty: the one consultation bound to the appliance


@dataclass(frozen=True)
class FiledStill:
    body: dict[str, Any]
    created: bool  # False: this still was filed before (a retried upload)


class NoConsultation(Unprocessable):
    """A still naming no consultation bound to the appliance that sent it."""


class SnapshotService:
    """Files appliance stills; async, the work runs off the event loop."""

    def __init__(
        self, filing: RecordFiling, consultations: Callable[[], Sequence[ConsultationConfig]]
    ) -> None:
        self._filing = filing
        self._consultations = consultations  # the open ones (scheduled or live), as of now

    def consultation_for(self, device_id: str, still: Still) -> ConsultationConfig:
        """The one consultation bound to ``device_id`` that the still names (checked
        before the body is received, so a stray device's upload is not even staged)."""
        bound = [c for c in self._consultations() if c.appliance == device_id]
        chosen = [c for c in bound if c.id == still.consultation] if still.consultation else bound
        if len(chosen) != 1:
            raise NoConsultation(
                _(
                    "snapshot names consultation {consultation}, which is not one "
                    "consultation bound to {device}",
                    consultation=repr(still.consultation),
                    device=device_id,
                )
            )
        return chosen[0]

    async def file(
        self, device_id: str, consultation: ConsultationConfig, still: Still, staged: Path
    ) -> FiledStill:
        """Inspect, blob, row and ``record.create`` entry, as for an upload."""
        arrival = Arrival(
            f"device:{device_id}",
            "snapshot",
            title=safe_title(f"Snapshot {still.taken_at:%Y-%m-%d %H:%M:%S} UTC"),
            declared=Category.PHOTO,
            snapshot=SnapshotOrigin(
                taken_at=still.taken_at,
                requested_by=still.requested_by or None,
                consultation_id=consultation.id,
            ),
            max_bytes=MAX_SNAPSHOT_BYTES,
        )
        find = patient_by_identifier(consultation.patient_id, consultation.patient_id)
        filed = await asyncio.to_thread(self._filing.file_staged, staged, find, arrival)
        if filed.record.created:
            _LOGGER.info(
                "snapshot from %s filed for %s (requested by %s)",
                device_id,
                consultation.id,
                still.requested_by or "nobody",
            )
        return FiledStill(filed.body, filed.record.created)
