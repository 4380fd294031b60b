"""Blob first, row second: no row ever points at a missing blob (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import os
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from server.db import Database
from server.records.blobs import BlobTooLarge, LocalBlobStore
from server.records.models import (
    SOURCE_SNAPSHOT,
    ClinicalPhoto,
    CtImage,
    EmrEntry,
    Patient,
    VoiceNote,
    referenced_blobs,
)


class SimulatedCrash(Exception):
    """Stands for the process dying between the blob write and the commit."""


def _patient(database: Database) -> int:
    with database.session() as session:
        patient = Patient(external_id="P-001", display_name="Test Patient")
        session.add(patient)
        session.commit()
        return patient.id


def _photo(patient_id: int, sha256: str, size: int) -> ClinicalPhoto:
    return ClinicalPhoto(
        patient_id=patient_id,
        created_by="appliance-1",
        blob_sha256=sha256,
        blob_size=size,
        media_type="image/jpeg",
        width=640,
        height=480,
        taken_at=datetime.now(UTC),
        source=SOURCE_SNAPSHOT,
        requested_by="dr-a",
    )


def _missing_blobs(database: Database, blobs: LocalBlobStore) -> set[str]:
    with database.session() as session:
        return {sha for sha in referenced_blobs(session) if not blobs.exists(sha)}


def test_every_category_row_round_trips(database: Database, blobs: LocalBlobStore) -> None:
    pid = _patient(database)
    photo = blobs.put_bytes(b"jpeg", max_bytes=100)
    dicom = blobs.put_bytes(b"dicom", max_bytes=100)
    note = blobs.put_bytes(b"wav", max_bytes=100)
    with database.session() as session:
        session.add(_photo(pid, photo.sha256, photo.size))
        session.add(
            CtImage(
                patient_id=pid, created_by="dr-a", blob_sha256=dicom.sha256, blob_size=dicom.size,
                media_type="application/dicom", study_uid="1.2.3", series_uid="1.2.3.4",
                instance_uid="1.2.3.4.5", modality="CT", slice_position=-12.5,
            )
        )  # fmt: skip
        session.add(
            VoiceNote(
                patient_id=pid, created_by="dr-a", blob_sha256=note.sha256, blob_size=note.size,
                media_type="audio/wav", duration_s=3.5, sample_rate=16000, codec="pcm_s16le",
            )
        )  # fmt: skip
        session.add(
            EmrEntry(
                patient_id=pid, created_by="dr-a", fields={"bp": "120/80", "pulse": 72},
                recorded_at=datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
            )
        )  # fmt: skip
        session.commit()
    with database.session() as session:
        entry = session.scalars(select(EmrEntry)).one()
        assert entry.fields == {"bp": "120/80", "pulse": 72}
        assert entry.recorded_at == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
        ct = session.scalars(select(CtImage)).one()
        assert (ct.modality, ct.slice_position) == ("CT", -12.5)
        assert referenced_blobs(session) == {photo.sha256, dicom.sha256, note.sha256}


def test_crash_before_commit_leaves_an_orphan_that_is_collected(
    database: Database, blobs: LocalBlobStore
) -> None:
    pid = _patient(database)
    kept = blobs.put_bytes(b"committed photo", max_bytes=1000)
    with database.session() as session:
        session.add(_photo(pid, kept.sha256, kept.size))
        session.commit()

    with pytest.raises(SimulatedCrash), database.session() as session:
        ref = blobs.put(io.BytesIO(b"photo that never got its row"), max_bytes=1000)
        session.add(_photo(pid, ref.sha256, ref.size))
        session.flush()
        raise SimulatedCrash  # the process dies before session.commit()

    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ClinicalPhoto)) == 1
        referenced = referenced_blobs(session)
    assert _missing_blobs(database, blobs) == set()
    assert blobs.exists(ref.sha256)  # the orphan, until the grace period is over
    assert blobs.collect_orphans(referenced, older_than_s=600) == []
    later = time.time() + 3600
    assert blobs.collect_orphans(referenced, older_than_s=600, now=later) == [ref.sha256]
    assert blobs.exists(kept.sha256) and not blobs.exists(ref.sha256)


def test_no_row_is_committed_when_the_blob_write_fails(
    database: Database, blobs: LocalBlobStore
) -> None:
    pid = _patient(database)
    with pytest.raises(BlobTooLarge), database.session() as session:
        ref = blobs.put(io.BytesIO(os.urandom(5000)), max_bytes=1000)
        session.add(_photo(pid, ref.sha256, ref.size))  # never reached
        session.commit()
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ClinicalPhoto)) == 0
    assert [p for p in blobs.root.rglob("*") if p.is_file()] == []


def test_a_row_for_an_unknown_patient_is_refused(database: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), database.session() as session:
        session.add(_photo(9999, "a" * 64, 1))
        session.commit()
