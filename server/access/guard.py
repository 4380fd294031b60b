"""The one place a records request is checked against its grant (and audited if refused)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TypeVar

from aiohttp import web
from sqlalchemy.orm import Session

from server.access.grants import AccessDenied, Actor, CheckedGrant
from server.access.models import AccessGrant
from server.errors import ApiError
from server.records.db import Database
from server.records.models import Patient
from server.security import session_of
from server.state import STATE

ACCESS_COOKIE = "clinicam_access"
ACCESS_HEADER = "X-Clinicam-Access"
T = TypeVar("T")


async def in_session(database: Database, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one committed transaction, off the event loop."""

    def run() -> T:
        with database.session() as session, session.begin():
            return work(session)

    return await asyncio.to_thread(run)


def actor_of(request: web.Request) -> Actor:
    state = request.app[STATE]
    username = session_of(request).username
    return Actor(username, state.access.role_of(username))


def patient_path(patient_id: int) -> str:
    """The URL prefix a grant's cookie is scoped to: one patient's records only."""
    return f"/api/patients/{patient_id}/"


def patient_target(patient: Patient) -> str:
    return f"patient:{patient.external_id}"


def require_role(request: web.Request, *roles: str) -> Actor:
    actor = actor_of(request)
    if actor.role not in roles:
        raise ApiError(HTTPStatus.FORBIDDEN, f"only {' or '.join(roles)} accounts may do this")
    return actor


@dataclass(frozen=True)
class Granted:
    """A checked request: who, which patient, under which grant, allowing what.

    ``operations`` is what the presented token allows (never more than ``grant``'s).
    """

    actor: Actor
    patient: Patient
    grant: AccessGrant
    operations: frozenset[str]


def _patient_id(request: web.Request) -> int:
    raw = request.match_info["pid"]
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(HTTPStatus.NOT_FOUND, "no such patient, or no current access grant for it")
    return int(raw)


async def check_access(request: web.Request, operation: str, what: str) -> Granted:
    """The grant for the patient in the path; refusals are audited and never say more."""
    state = request.app[STATE]
    actor = actor_of(request)
    pid = _patient_id(request)
    token = request.headers.get(ACCESS_HEADER) or request.cookies.get(ACCESS_COOKIE)

    def check(session: Session) -> tuple[CheckedGrant, Patient]:
        checked = state.access.check(session, actor, pid, token, operation)
        patient = session.get(Patient, pid)
        assert patient is not None  # grants reference existing patients
        session.expunge(patient)
        session.expunge(checked.grant)
        return checked, patient

    try:
        checked, patient = await in_session(state.database, check)
    except AccessDenied as exc:
        await state.audit.record(
            actor.username,
            "access.denied",
            f"patient-id:{pid}",
            {"operation": operation, "what": what, "status": int(exc.status)},
        )
        raise ApiError(exc.status, exc.message) from None
    return Granted(actor, patient, checked.grant, checked.operations)
