"""Request-level helpers for access: who is asking, and the check of a records request.

The decision itself (the grant, the refusal and its audit entry) is the access desk's
(:class:`server.access.desk.AccessDesk`); this module only reads the request: the user
behind its session, the patient in its path, the token in its cookie or header.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web

from clinicam.i18n import _
from server.access.consent import ConsentRegister
from server.access.desk import AccessDesk, Granted, patient_target
from server.access.grants import Actor
from server.errors import ApiError
from server.state import STATE
from server.web.security import session_of

__all__ = [
    "ACCESS_COOKIE",
    "ACCESS_DESK",
    "ACCESS_HEADER",
    "CONSENTS",
    "Granted",
    "actor_of",
    "check_access",
    "patient_path",
    "patient_target",
    "require_role",
]

ACCESS_COOKIE = "clinicam_access"
ACCESS_HEADER = "X-Clinicam-Access"
ACCESS_DESK = web.AppKey("clinicam_access_desk", AccessDesk)
CONSENTS = web.AppKey("clinicam_consents", ConsentRegister)


def actor_of(request: web.Request) -> Actor:
    state = request.app[STATE]
    username = session_of(request).username
    return Actor(username, state.access.role_of(username))


def patient_path(patient_id: int) -> str:
    """The URL prefix a grant's cookie is scoped to: one patient's records only."""
    return f"/api/patients/{patient_id}/"


def require_role(request: web.Request, *roles: str) -> Actor:
    actor = actor_of(request)
    if actor.role not in roles:
        raise ApiError(
            HTTPStatus.FORBIDDEN, _("only {roles} accounts may do this", roles=" or ".join(roles))
        )
    return actor


def _patient_id(request: web.Request) -> int:
    raw = request.match_info["pid"]
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(
            HTTPStatus.NOT_FOUND, _("no such patient, or no current access grant for it")
        )
    return int(raw)


async def check_access(request: web.Request, operation: str, what: str) -> Granted:
    """The grant for the patient in the path; the desk audits refusals and says no more."""
    token = request.headers.get(ACCESS_HEADER) or request.cookies.get(ACCESS_COOKIE)
    desk = request.app[ACCESS_DESK]
    return await desk.check(actor_of(request), _patient_id(request), token, operation, what)
