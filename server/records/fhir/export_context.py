"""What every part of a FHIR export shares: the patient, references, dates, de-identification.

A part of the bundle (the records of one category, the consultations, the consents…)
is a :data:`Contributor`: a function that gets the :class:`ExportContext` and returns
:class:`Contribution` s, each one resource with the Composition section it is listed
in and who created it (for its Provenance). The context hides whether the export is
de-identified: :meth:`ExportContext.person`, :meth:`ExportContext.when`,
:meth:`ExportContext.text` and :meth:`ExportContext.ref` give identified values in a
full export and pseudonyms, shifted dates and scrubbed text in a de-identified one,
so that a contributor cannot forget to de-identify what it writes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from fhir.resources.R4B.resource import Resource
from sqlalchemy.orm import Session

from server.records.blobs import BlobStore
from server.records.deid import Pseudonymizer, deidentify_emr
from server.records.fhir.systems import CATEGORY_EXTENSION, USER_SYSTEM
from server.records.models import Patient

_LOGGER = logging.getLogger(__name__)

_REF_NAMESPACE: Final = uuid.UUID("6f1c3a52-7c43-4bd5-9a55-3e0f1f0c8a11")


@dataclass(frozen=True)
class Contribution:
    """One resource of the bundle, where the Composition lists it, and who made it."""

    section: str
    ref: str
    resource: Resource
    created_by: str | None = None
    created_at: datetime | None = None
    record: tuple[str, int] | None = None  # (category, id): its ``record.create`` entry


@dataclass
class ExportContext:
    """One export's patient, blob store, limits and (when de-identified) pseudonymizer."""

    session: Session
    patient: Patient
    blobs: BlobStore
    max_attachment_bytes: int
    max_inline_bytes: int
    pseudo: Pseudonymizer | None = None
    identifiers: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    attachments: list[bytes] = field(default_factory=list)  # decoded, for the leak check
    inline_bytes: int = 0  # the files' bytes in the bundle so far
    _refs: dict[str, str] = field(default_factory=dict)

    @property
    def deidentified(self) -> bool:
        return self.pseudo is not None

    def ref(self, kind: str, key: str) -> str:
        """The fullUrl of a resource (``urn:uuid:``), the same for the same key in one export.

        A full export derives it from the patient's identifier, so two exports of a
        patient give their resources the same ids; a de-identified one from the
        export's secret, so two de-identified exports cannot be linked.
        """
        name = f"{kind}/{key}"
        if name not in self._refs:
            seed = (
                self.pseudo.pseudonym("ref", name)
                if self.pseudo is not None
                else f"{self.patient.external_id}/{name}"
            )
            self._refs[name] = f"urn:uuid:{uuid.uuid5(_REF_NAMESPACE, seed)}"
        return self._refs[name]

    def generated_refs(self) -> list[str]:
        """Every fullUrl made in this export (random ``urn:uuid:`` values, no content)."""
        return list(self._refs.values())

    def known_ref(self, kind: str, key: str) -> str | None:
        """The fullUrl given to ``kind/key`` so far, if any (to link resources)."""
        return self._refs.get(f"{kind}/{key}")

    @property
    def patient_ref(self) -> str:
        return self.ref("Patient", "subject")

    def subject(self) -> dict[str, str]:
        return {"reference": self.patient_ref}

    def person(self, username: str | None) -> dict[str, Any] | None:
        """A user as a Reference by identifier (a pseudonym when de-identified)."""
        if not username:
            return None
        value = self.pseudo.pseudonym("U", username) if self.pseudo else username
        return {"identifier": {"system": USER_SYSTEM, "value": value}, "display": value}

    def when(self, at: datetime | None) -> str | None:
        """A FHIR dateTime, shifted by the export's offset when de-identified."""
        if at is None:
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if self.pseudo is not None:
            at = at + timedelta(days=self.pseudo.date_shift_days)
        return at.isoformat()

    def day(self, on: date | None) -> str | None:
        if on is None:
            return None
        return (self.pseudo.shift_date(on) if self.pseudo else on).isoformat()

    def text(self, value: str | None) -> str | None:
        """Free text (a reason, a title, a note), scrubbed of identifiers and dates."""
        if not value or self.pseudo is None:
            return value or None
        cleaned = deidentify_emr({"text": value}, self.pseudo, identifiers=self.identifiers)
        return str(cleaned.get("text") or "") or None

    def room_for(self, size: int) -> bool:
        """Is there room for a file of ``size`` bytes inline (within both limits)?"""
        return (
            size <= self.max_attachment_bytes and self.inline_bytes + size <= self.max_inline_bytes
        )

    def key(self, kind: str, value: str) -> str:
        """An identifier value of ours (a record id, a consultation id) as it may leave."""
        return self.pseudo.pseudonym(kind, value) if self.pseudo else value

    def attachment(
        self, data: bytes, content_type: str, title: str | None, created: datetime | None
    ) -> dict[str, Any]:
        """An inline Attachment with its size and SHA-1 (the importer checks both)."""
        self.attachments.append(data)
        self.inline_bytes += len(data)
        out: dict[str, Any] = {
            "contentType": content_type,
            "data": base64.b64encode(data).decode("ascii"),
            "size": len(data),
            "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
        }
        if title and not self.deidentified:
            out["title"] = title
        if created is not None:
            out["creation"] = self.when(created)
        return out


Contributor = Callable[[ExportContext], list[Contribution]]
"""One part of the bundle: the resources of one category (or domain) for the patient."""


def category_extension(category: str) -> dict[str, str]:
    return {"url": CATEGORY_EXTENSION, "valueCode": category}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return {"coding": [out], "text": display or code}
