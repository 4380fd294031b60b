"""A patient's course data: every record item the relevance model can read (R7).

The same listing feeds the server-side runner (which reads blobs directly) and the
device API the appliance fetches through, so both compute from the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from server.records.store import EMR, RecordStore


@dataclass(frozen=True)
class CourseItem:
    """One record item: its category and id, and (for files) the blob holding it."""

    category: str
    record_id: int
    sha256: str | None
    fields: dict[str, Any] | None

    def ref(self) -> dict[str, Any]:
        return {"category": self.category, "id": self.record_id}


def course_items(session: Session, store: RecordStore, patient_id: int) -> list[CourseItem]:
    """All of the patient's records, oldest first within each category."""
    out: list[CourseItem] = []
    for category, rows in store.listing(session, patient_id).items():
        for row in rows:
            if category == EMR:
                out.append(CourseItem(category, row.id, None, dict(row.fields)))
            else:
                out.append(CourseItem(category, row.id, row.blob_sha256, None))
    return out
