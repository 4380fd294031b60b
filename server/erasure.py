"""Erasing a patient: every row about them, in every domain, in one transaction.

Above records, access, archive and relevance, since it reaches into all of them;
:class:`server.records.service.RecordsService` is given :func:`erase_patient` and calls
it inside the transaction that writes the ``patient.deleted`` audit entry. The files
(blobs, archive segments) go after the commit (``RecordStore.drop_unreferenced`` and
``RecordStore.drop_segments``): a crash in between leaves only unreferenced files for
the collector.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.access.models import AccessGrant, AccessGrantToken, AccessRequest, Consent
from server.archive.calls import CallSegment
from server.archive.index import ArchiveSegment
from server.records.models import BLOB_TABLES, EmrEntry, Patient, ReportDraft
from server.relevance.models import Diagnosis, RelevanceResult


def erase_patient(session: Session, patient: Patient) -> tuple[list[str], list[str]]:
    """Remove every row of ``patient``; returns (blob candidates, archive segment paths)."""
    shas: set[str] = set()
    # Records, recorded calls, and archive segments kept in the object store.
    holders: tuple[type[Any], ...] = (*BLOB_TABLES, CallSegment, ArchiveSegment)
    for table in holders:
        query = select(table.blob_sha256).where(table.patient_id == patient.id)
        shas.update(sha for sha in session.scalars(query) if sha)
    segments = list(
        session.scalars(select(ArchiveSegment.path).where(ArchiveSegment.patient_id == patient.id))
    )
    owned: tuple[type[Any], ...] = (
        *BLOB_TABLES,
        EmrEntry,
        ReportDraft,
        ArchiveSegment,
        CallSegment,
        Consent,
        RelevanceResult,
        Diagnosis,
        AccessRequest,
        AccessGrant,
    )
    grants = select(AccessGrant.id).where(AccessGrant.patient_id == patient.id)
    session.execute(delete(AccessGrantToken).where(AccessGrantToken.grant_id.in_(grants)))
    for table in owned:  # requests before grants: a request may point at a grant
        session.execute(delete(table).where(table.patient_id == patient.id))
    session.delete(patient)
    return sorted(shas), segments
