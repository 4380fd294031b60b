"""Relevance results, confirmed diagnoses and model versions, stored beside the records.

A result keeps the inputs it came from (which record items, which model version,
who computed it), so that a diagnosis an expert confirms later turns those inputs
into labelled training data (R9). Model versions form a registry whose champion is
the model in use; every promotion or rejection is kept with both sets of metrics.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UtcDateTime, utcnow

STATUS_CHAMPION = "champion"
STATUS_RETIRED = "retired"
STATUS_REJECTED = "rejected"
STATUS_WITHDRAWN = "withdrawn"  # retired for good: a patient it trained on withdrew consent


class RelevanceResult(Base):
    """One patient-level relevance per disease category, and what it was computed from."""

    __tablename__ = "relevance_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    consultation_id: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    produced_by: Mapped[str] = mapped_column(String(80))
    labels: Mapped[list[str]] = mapped_column(JSON)
    values: Mapped[list[float]] = mapped_column(JSON)
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    basis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # how it was made
    requested_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Diagnosis(Base):
    """A diagnosis an expert confirmed for a patient: the label for the learning loop."""

    __tablename__ = "diagnoses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    confirmed_by: Mapped[str] = mapped_column(String(64))
    consultation_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ModelVersion(Base):
    """A trained model: where its files are, its metrics, and whether it is in use."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(String(400))
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ModelTrainingPatient(Base):
    """Lineage: one patient whose records went into a model version's training data.

    Written with the version's registry entry and its audit entry, whether the version
    was promoted or not (it was trained on the patient either way). ``patient_id`` is
    the internal id, deliberately without a foreign key: the line outlives an erasure
    of the patient, so that every model that used the patient can still be found.
    """

    __tablename__ = "model_training_patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[int] = mapped_column(Integer, index=True)
    label: Mapped[str] = mapped_column(String(64))
    items: Mapped[int] = mapped_column(Integer)
    consent_checked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
