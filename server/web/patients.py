"""HTTP API for patients: clinic staff register them (with consent) and search for them.

``POST /api/patients`` registers one; ``GET /api/patients?q=`` searches among the
patients the caller may know of (without ``q`` it is the records page's list of the
caller's own patients, :class:`server.web.access.MyAccessView`). The rules, the
transaction and the audit entries are :class:`server.access.registry.PatientRegistry`'s.
"""

from __future__ import annotations

from datetime import date
from http import HTTPStatus
from typing import Literal

from aiohttp import web
from pydantic import Field

from clinicam.configfile import StrictModel
from server.access.registry import PatientRegistry, Registration, registration_json
from server.errors import read_json
from server.web.access import MyAccessView
from server.web.guard import actor_of
from server.web.locale import page

PATIENT_REGISTRY = web.AppKey("clinicam_patient_registry", PatientRegistry)
DEFAULT_PER_PAGE = 20


class ConsentChoices(StrictModel):
    """The patient's decision for each purpose, asked at registration (R15)."""

    training: bool = Field(description="Their de-identified records may train models.")
    export: bool = Field(description="Their records may leave the clinic de-identified.")
    recording: bool | None = Field(
        None, description="Their consultations may be recorded whole (unasked: no)."
    )


class RegistrationBody(StrictModel):
    identifier: str = Field(min_length=1, max_length=64, description="The clinic's identifier.")
    name: str = Field(min_length=1, max_length=200)
    sex: Literal["female", "male", "other", "unknown"]
    birth_date: date
    clinic: str | None = Field(None, max_length=80, description="Admins: the clinic.")
    group: str | None = Field(None, max_length=64, description="Patient group (access rules).")
    consent: ConsentChoices


def _number(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 7 else default


class PatientsView(MyAccessView):
    """GET ?q=: search. GET: the caller's own patients. POST: register one."""

    async def get(self) -> web.StreamResponse:
        if "q" not in self.request.query:
            return await super().get()
        found = await self.request.app[PATIENT_REGISTRY].search(
            actor_of(self.request),
            self.request.query["q"][:200],
            _number(self.request, "page", 1),
            _number(self.request, "per_page", DEFAULT_PER_PAGE),
        )
        return web.json_response(
            {
                "patients": [registration_json(f.patient, f.name) for f in found.found],
                "total": found.total,
                "page": found.page,
                "per_page": found.per_page,
            }
        )

    async def post(self) -> web.StreamResponse:
        actor = actor_of(self.request)
        body = await read_json(self.request, RegistrationBody)
        entry = Registration(
            identifier=body.identifier,
            name=body.name,
            sex=body.sex,
            birth_date=body.birth_date,
            consent=body.consent.model_dump(exclude_none=True),
            clinic=body.clinic,
            group=body.group,
        )
        patient = await self.request.app[PATIENT_REGISTRY].register(actor, entry)
        answer = registration_json(patient, patient.display_name)
        answer["consent"] = entry.consent
        return web.json_response(answer, status=HTTPStatus.CREATED)


class ClinicPage(web.View):
    """Clinic staff's page: register a patient, find one."""

    async def get(self) -> web.StreamResponse:
        return await page(self.request, "clinic.html")


def add_patient_routes(app: web.Application) -> None:
    app.router.add_view("/api/patients", PatientsView)
    app.router.add_view("/clinic", ClinicPage)
