"""The relevance desk (R7–R9): asking in a room, the appliance's side, results, diagnoses.

Asking for relevance in a room sends ``model.relevance`` to the consultation's
appliance with a short-lived grant scoped to that one patient; the appliance fetches
the course data with it, runs the model and posts the result back. If the appliance
is offline, refuses, or has not answered within ``models.appliance_timeout_s``, the
server computes the result itself. Every stored result, diagnosis and device grant
commits with its audit entry; the views only parse and render.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from clinicam.protocol import RelevanceRequest
from server.access.desk import AccessDesk, in_transaction, patient_target
from server.access.grants import AccessControl, Actor
from server.audit.trail import AuditTrail
from server.config import ConsultationConfig, ServerConfig
from server.db import Database, utcnow
from server.domain_errors import Invalid, NotFound, Unavailable
from server.mqtt_link import RELEVANCE_OPS, ApplianceLink, ApplianceUnreachable
from server.records.models import Patient
from server.records.store import EMR, RecordStore
from server.relevance.course import course_items
from server.relevance.learning import LearningLoop
from server.relevance.models import Diagnosis, ModelTrainingPatient, RelevanceResult
from server.relevance.service import RelevanceService, StoredRelevance

_LOGGER = logging.getLogger(__name__)
DEVICE_GRANT_MINUTES = 10
Publish = Callable[[StoredRelevance, str], None]


def device_actor(device_id: str) -> Actor:
    return Actor(f"device:{device_id}", "device")


@dataclass(frozen=True)
class Asked:
    """Where relevance is computed; ``result`` when it is already done (on the server).

    ``on`` is ``server`` or ``appliance:<id>``; a server run with no ``result`` found
    nothing the model can read.
    """

    on: str
    result: StoredRelevance | None = None


@dataclass(frozen=True)
class CourseRecord:
    """One course item for the appliance: EMR ``fields``, or a file ``stream`` to send."""

    media_type: str
    fields: dict[str, Any] | None = None
    stream: BinaryIO | None = None
    size: int | None = None


@dataclass(frozen=True)
class PatientRelevance:
    latest: StoredRelevance | None
    diagnoses: list[Diagnosis]
    trained: list[ModelTrainingPatient] = field(default_factory=list)  # lineage


class RelevanceDesk:
    """Relevance for consultations and appliances; one method per request."""

    def __init__(
        self,
        config: ServerConfig,
        database: Database,
        audit: AuditTrail,
        relevance: RelevanceService,
        *,
        access: AccessDesk,
        control: AccessControl,
        records: RecordStore,
        learning: LearningLoop,
        appliances: ApplianceLink,
        publish: Publish,
    ) -> None:
        self._config = config
        self._database = database
        self._audit = audit
        self._relevance = relevance
        self._access = access
        self._control = control
        self._records = records
        self._learning = learning
        self._appliances = appliances
        self._publish = publish
        self._tasks: set[asyncio.Task[None]] = set()

    async def run_on_server(
        self, patient_id: int, consultation: ConsultationConfig, who: str
    ) -> StoredRelevance | None:
        """Compute here and store with the audit entry; None if nothing is readable."""

        def audited(session: Session, result: StoredRelevance) -> None:
            target = f"patient:{consultation.patient_id}"
            self._audit.write(session, "server", "relevance.computed", target, {"id": result.id})

        result = await asyncio.to_thread(
            self._relevance.run_on_server, patient_id, consultation.id, who, on_stored=audited
        )
        if result is not None:
            self._publish(result, consultation.patient_id)
        return result

    async def _fallback_later(
        self, patient_id: int, consultation: ConsultationConfig, who: str, since: datetime
    ) -> None:
        """If the appliance has not delivered in time, compute here."""
        await asyncio.sleep(self._config.models.appliance_timeout_s)

        def newer(session: Session) -> bool:
            row = session.scalar(
                select(RelevanceResult.id).where(
                    RelevanceResult.patient_id == patient_id, RelevanceResult.created_at >= since
                )
            )
            return row is not None

        if await in_transaction(self._database, newer):
            return
        _LOGGER.warning(
            "appliance %s too slow: computing relevance on the server", consultation.appliance
        )
        try:
            if await self.run_on_server(patient_id, consultation, who) is None:
                _LOGGER.warning("server-side relevance failed: nothing the model can read")
        except Unavailable as exc:
            _LOGGER.warning("server-side relevance failed: %s", exc.message)

    async def ask(self, consultation: ConsultationConfig, who: str, where: str) -> Asked:
        """An invited expert asks for the patient's relevance in the room."""
        patient_id = await in_transaction(
            self._database,
            lambda s: (
                RecordStore.ensure_patient(s, consultation.patient_id, consultation.patient_id).id
            ),
        )
        target = f"patient:{consultation.patient_id}"
        device = consultation.appliance
        online = self._appliances.available.get(device, False)
        if where == "server" or not online:
            await self._audit.record(who, "relevance.requested", target, {"where": where})
            if where == "appliance":
                raise Unavailable(_("appliance {device} is offline", device=device))
            return Asked("server", await self.run_on_server(patient_id, consultation, who))

        def grant(session: Session) -> str:
            self._audit.write(session, who, "relevance.requested", target, {"where": where})
            row = session.get(Patient, patient_id)
            assert row is not None
            issued = self._control.issue_device_grant(
                session,
                device_actor(device).username,
                row,
                DEVICE_GRANT_MINUTES,
                basis=f"relevance for {consultation.id}",
                reason=f"requested by {who}",
            )
            return issued.token

        token = await in_transaction(self._database, grant)
        since = utcnow()
        command = RelevanceRequest(
            id=f"{who}-rel-{since:%H%M%S%f}",
            patient=patient_id,
            consultation=consultation.id,
            token=token,
            requested_by=who,
            synthetic=self._config.models.demonstration_branches,
        )
        try:
            ack = await self._appliances.send(device, command, allowed=RELEVANCE_OPS)
        except ApplianceUnreachable as exc:
            _LOGGER.warning("relevance on %s not possible (%s): computing here", device, exc)
            ack = None
        if ack is None or not ack.ok:
            if where == "appliance":
                reason = ack.error if ack is not None else "unreachable"
                raise Unavailable(_("appliance: {reason}", reason=reason))
            return Asked("server", await self.run_on_server(patient_id, consultation, who))
        task = asyncio.create_task(self._fallback_later(patient_id, consultation, who, since))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return Asked(f"appliance:{device}")

    async def course(self, device_id: str, patient_id: int, token: str | None) -> list[Any]:
        """The patient's record items, for the appliance holding a device grant."""
        actor = device_actor(device_id)
        patient = await self._access.check_device(actor, patient_id, token, "course")

        def work(session: Session) -> list[dict[str, Any]]:
            items = [i.ref() for i in course_items(session, self._records, patient.id)]
            detail = {"purpose": "relevance"}
            self._audit.write(
                session, actor.username, "record.list", patient_target(patient), detail
            )
            return items

        return await in_transaction(self._database, work)

    async def course_record(
        self, device_id: str, patient_id: int, token: str | None, category: str, record_id: int
    ) -> CourseRecord:
        """One record item for the appliance; a file comes as an open stream (close it)."""
        actor = device_actor(device_id)
        patient = await self._access.check_device(actor, patient_id, token, "item")

        def work(session: Session) -> tuple[str, dict[str, Any] | None, str, int]:
            row = self._records.get(session, patient.id, category, record_id)
            if row is None:
                raise NotFound(_("no such record"))
            self._audit.write(
                session,
                actor.username,
                "record.read",
                patient_target(patient),
                {"category": category, "id": row.id, "purpose": "relevance"},
            )
            if category == EMR:
                return "application/json", dict(row.fields), "", 0
            return row.media_type, None, row.blob_sha256, int(row.blob_size)

        media_type, fields, sha256, size = await in_transaction(self._database, work)
        if fields is not None:
            return CourseRecord(media_type, fields=fields)
        stream = await asyncio.to_thread(self._records.blobs.open, sha256)
        return CourseRecord(media_type, stream=stream, size=size)

    async def store_device_result(
        self,
        device_id: str,
        token: str | None,
        *,
        patient_id: int,
        consultation_id: str | None,
        labels: list[str],
        values: list[float],
        inputs: list[dict[str, Any]],
        model_version: str,
        requested_by: str,
    ) -> StoredRelevance:
        """The relevance an appliance computed, stored with its audit entry and shown."""
        actor = device_actor(device_id)
        patient = await self._access.check_device(actor, patient_id, token, "result")
        if len(labels) != len(values) or not all(0.0 <= v <= 1.0 for v in values):
            raise Invalid(_("labels and values must pair up, values in [0, 1]"))

        def work(session: Session) -> StoredRelevance:
            stored = self._relevance.store(
                session,
                patient_id=patient.id,
                consultation_id=consultation_id,
                labels=labels,
                values=values,
                inputs=inputs,
                model_version=model_version,
                produced_by=f"appliance:{device_id}",
                requested_by=requested_by,
            )
            target = patient_target(patient)
            self._audit.write(
                session, actor.username, "relevance.computed", target, {"id": stored.id}
            )
            return stored

        stored = await in_transaction(self._database, work)
        self._publish(stored, patient.external_id)
        return stored

    async def for_patient(self, patient_id: int) -> PatientRelevance:
        """The latest result, every confirmed diagnosis, and the model versions trained
        on the patient's records (the lineage)."""

        def work(session: Session) -> PatientRelevance:
            latest = self._relevance.latest(session, patient_id)
            diagnoses = session.scalars(
                select(Diagnosis).where(Diagnosis.patient_id == patient_id).order_by(Diagnosis.id)
            )
            trained = session.scalars(
                select(ModelTrainingPatient)
                .where(ModelTrainingPatient.patient_id == patient_id)
                .order_by(ModelTrainingPatient.id)
            )
            return PatientRelevance(latest, list(diagnoses), list(trained))

        return await in_transaction(self._database, work)

    async def confirm_diagnosis(
        self, actor: str, patient: Patient, label: str, consultation_id: str | None, note: str
    ) -> int:
        """An expert confirms a diagnosis: the label for the learning loop (R9)."""
        labels = list(self._relevance.model().labels)
        if label not in labels:
            raise Invalid(
                _("label: one of the model's categories {labels}", labels=", ".join(labels))
            )

        def work(session: Session) -> int:
            row = Diagnosis(
                patient_id=patient.id,
                label=label,
                confirmed_by=actor,
                consultation_id=consultation_id,
                note=note,
            )
            session.add(row)
            session.flush()
            self._audit.write(
                session,
                actor,
                "diagnosis.confirmed",
                patient_target(patient),
                {"label": label, "id": row.id},
            )
            return row.id

        diagnosis_id = await in_transaction(self._database, work)
        self._learning.wake()
        return diagnosis_id
