"""Relevance on the server: the model in use, storing results, the server-side runner.

The appliance normally computes relevance (R7); when it is offline, or has not
answered within ``models.appliance_timeout_s``, the server runs the very same runtime
code (``models.runtime``) itself and says so in ``produced_by``. Results are stored
with the inputs they came from and their basis (:mod:`server.relevance.basis`), then
shown in the consultation's relevance view; the caption and the basis name the model
that produced the result, from its own card.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.db import Database
from server.domain_errors import Unavailable
from server.records.store import RecordStore
from server.relevance.basis import (
    NOT_A_DIAGNOSIS,
    caption,
    from_inputs,
    from_runtime,
    localized,
    model_part,
    synthetic_counted,
    training_summary,
)
from server.relevance.course import CourseItem, course_items
from server.relevance.models import ModelTrainingPatient, ModelVersion, RelevanceResult

__all__ = ["NoModel", "RelevanceService", "StoredRelevance", "training_summary"]

_LOGGER = logging.getLogger(__name__)

PRODUCED_BY_SERVER = "server"


class NoModel(Unavailable):
    """No relevance model could be loaded."""


@dataclass(frozen=True)
class StoredRelevance:
    """A stored result as the room and the API show it."""

    id: int
    patient_id: int
    labels: list[str]
    values: list[float]
    model_version: str
    produced_by: str
    created_at: str
    caption: str
    basis: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.labels, self.values, strict=True))

    def to_json(self, locale: str | None = None) -> dict[str, Any]:
        """JSON-ready; its texts in ``locale`` (None: kept translatable, for the room)."""
        data = {
            "id": self.id,
            "labels": self.labels,
            "values": self.values,
            "relevance": self.as_dict(),
            "model_version": self.model_version,
            "produced_by": self.produced_by,
            "created_at": self.created_at,
            "caption": self.caption,
            "basis": self.basis,
        }
        return data if locale is None else localized(data, locale)


def _stored(row: RelevanceResult, card: Mapping[str, Any] | None) -> StoredRelevance:
    stored = row.basis if row.basis is not None else from_inputs(row.inputs, card)
    basis = {
        **stored,
        "model": model_part(card, row.model_version, row.produced_by),
        "notice": NOT_A_DIAGNOSIS,
    }
    return StoredRelevance(
        id=row.id,
        patient_id=row.patient_id,
        labels=list(row.labels),
        values=[float(v) for v in row.values],
        model_version=row.model_version,
        produced_by=row.produced_by,
        created_at=row.created_at.isoformat(),
        caption=caption(card, row.model_version, row.produced_by, synthetic_counted(stored)),
        basis=basis,
    )


class RelevanceService:
    """Loads the model lazily (LiteRT, no TensorFlow) and keeps results."""

    def __init__(
        self,
        database: Database,
        store: RecordStore,
        *,
        tflite: Path | None,
        card: Path | None,
        threads: int = 1,
        demonstration_branches: bool = False,
    ) -> None:
        self._demonstration_branches = demonstration_branches
        self._database = database
        self._store = store
        self._tflite = tflite
        self._card = card
        self._threads = threads
        self._model: Any | None = None
        self._lock = threading.Lock()
        self.on_result: Callable[[StoredRelevance, str | None], None] = lambda result, cid: None

    def model(self) -> Any:
        """The model in use (shipped demo model unless configured); NoModel if unusable."""
        with self._lock:
            if self._model is None:
                from models.runtime import ModelLoadError, RelevanceModel

                try:
                    if self._tflite is None:
                        self._model = RelevanceModel.load_demo(num_threads=self._threads)
                    else:
                        self._model = RelevanceModel.load(
                            self._tflite, self._card, num_threads=self._threads
                        )
                except (ModelLoadError, OSError, ValueError) as exc:
                    raise NoModel(_("no usable relevance model: {error}", error=exc)) from exc
            return self._model

    def replace_model(self, model: Any, tflite: Path, card: Path | None = None) -> None:
        """Use ``model`` (loaded from ``tflite``) from now on (after a promotion)."""
        with self._lock:
            self._model = model
            self._tflite, self._card = tflite, card

    def use(self, tflite: Path | None, card: Path | None) -> None:
        """Serve the model at ``tflite`` (None: the shipped demo model) from now on; the
        one in use is dropped at once and the new one loaded when next needed."""
        with self._lock:
            self._model = None
            self._tflite, self._card = tflite, card

    def files(self) -> tuple[Path, Path]:
        """The model file in use and its card (what appliances download to follow)."""
        from models.card import card_path_for
        from models.runtime import DEMO_CARD, DEMO_MODEL

        self.model()
        if self._tflite is None:
            return DEMO_MODEL, DEMO_CARD
        return self._tflite, self._card or card_path_for(self._tflite)

    def card_for(self, session: Session, version: str) -> Mapping[str, Any] | None:
        """The card of model ``version``: the one in use, else the registry's copy."""
        try:
            model = self.model()
            if model.version == version:
                return dict(model.card.data)
        except NoModel:
            pass
        row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
        return dict(row.card) if row is not None and isinstance(row.card, dict) else None

    def card_page(self, version: str) -> dict[str, Any] | None:
        """What the model card page shows of ``version``: its card, whether it is in use,
        its registry status and decision, and how many clinic patients it trained on
        (the lineage); None if no card of that version is known here."""
        with self._database.session() as session:
            card = self.card_for(session, version)
            if card is None:
                return None
            row = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
            patients = session.scalar(
                select(func.count(func.distinct(ModelTrainingPatient.patient_id))).where(
                    ModelTrainingPatient.model_version == version
                )
            )
        try:
            in_use = self.model().version == version
        except NoModel:
            in_use = False
        return {
            "version": version,
            "card": dict(card),
            "in_use": in_use,
            "status": row.status if row is not None else None,
            "decision": row.decision if row is not None else "",
            "training_patients": int(patients or 0),
        }

    def store(
        self,
        session: Session,
        *,
        patient_id: int,
        consultation_id: str | None,
        labels: list[str],
        values: list[float],
        inputs: list[dict[str, Any]],
        model_version: str,
        produced_by: str,
        requested_by: str,
        basis: dict[str, Any] | None = None,
    ) -> StoredRelevance:
        card = self.card_for(session, model_version)
        row = RelevanceResult(
            patient_id=patient_id,
            consultation_id=consultation_id,
            model_version=model_version,
            produced_by=produced_by,
            labels=labels,
            values=values,
            inputs=inputs,
            basis=basis if basis is not None else from_inputs(inputs, card),
            requested_by=requested_by,
        )
        session.add(row)
        session.flush()
        return _stored(row, card)

    def _content(self, item: CourseItem) -> bytes | dict[str, Any]:
        """What the model reads of one item: its fields, or its file's bytes (streamed)."""
        if item.fields is not None:
            return item.fields
        with self._store.blobs.open(item.sha256 or "") as stream:
            return stream.read()

    def run_on_server(
        self,
        patient_id: int,
        consultation_id: str | None,
        requested_by: str,
        *,
        on_stored: Callable[[Session, StoredRelevance], None] = lambda session, result: None,
    ) -> StoredRelevance | None:
        """Compute from the stored course data here (sync; call off the event loop).

        ``on_stored`` runs in the transaction that stores the result (its audit entry):
        if it fails, the result is not stored either.
        """
        model = self.model()
        with self._database.session() as session:
            items = course_items(session, self._store, patient_id)
        inputs = [(i.category, self._content(i)) for i in items]
        result = model.relevance(inputs, allow_synthetic=self._demonstration_branches)
        if result is None:
            return None
        used = {r.index for r in result.per_item}
        refs = [
            {**items[r.index].ref(), "probabilities": list(r.probabilities)}
            for r in result.per_item
        ]
        basis = from_runtime(result, [i.ref() for i in items])
        refs += [{**items[i].ref(), "skipped": True} for i in range(len(items)) if i not in used]
        with self._database.session() as session, session.begin():
            stored = self.store(
                session,
                patient_id=patient_id,
                consultation_id=consultation_id,
                labels=list(result.labels),
                values=[float(v) for v in result.values],
                inputs=refs,
                model_version=result.model_version,
                produced_by=PRODUCED_BY_SERVER,
                requested_by=requested_by,
                basis=basis,
            )
            on_stored(session, stored)
        _LOGGER.info("relevance for patient %d computed on the server", patient_id)
        return stored

    def latest(self, session: Session, patient_id: int) -> StoredRelevance | None:
        row = session.scalar(
            select(RelevanceResult)
            .where(RelevanceResult.patient_id == patient_id)
            .order_by(RelevanceResult.id.desc())
            .limit(1)
        )
        return None if row is None else _stored(row, self.card_for(session, row.model_version))
