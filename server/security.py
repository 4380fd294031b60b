"""Authentication on by default: every route needs a session unless listed as public.

State-changing requests must carry the session's CSRF token and, when the browser
sends one, an Origin matching the server. Device routes use bearer tokens instead.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import quote

from aiohttp import web

from server.auth import CSRF_HEADER, SESSION_COOKIE, Session, verify_secret
from server.config import ConsultationConfig, DeviceAccount
from server.errors import ApiError
from server.state import STATE

PUBLIC_PREFIXES = ("/static/", "/api/appliances/", "/station/")  # the latter two: bearer
PUBLIC_PATHS = frozenset({"/login", "/api/login", "/healthz", "/favicon.ico"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_KEY = web.RequestKey("clinicam_session", Session)


def session_of(request: web.Request) -> Session:
    """The logged-in session (the middleware guarantees it on protected routes)."""
    return request[SESSION_KEY]


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if _is_public(request.path):
        return await handler(request)
    state = request.app[STATE]
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if request.path.startswith("/api/"):
            raise ApiError(
                HTTPStatus.UNAUTHORIZED, "not logged in (or logged out after inactivity)"
            )
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")
    _check_csrf(request, session)
    request[SESSION_KEY] = session
    return await handler(request)


def _check_csrf(request: web.Request, session: Session) -> None:
    """A state-changing request must carry the session's CSRF token, from this origin."""
    if request.method in SAFE_METHODS:
        return
    token = request.headers.get(CSRF_HEADER, "")
    if not secrets.compare_digest(token.encode(), session.csrf.encode()):
        raise ApiError(HTTPStatus.FORBIDDEN, "missing or wrong CSRF token")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise ApiError(HTTPStatus.FORBIDDEN, "cross-origin request refused")


def invited_consultation(request: web.Request, cid: str | None = None) -> ConsultationConfig:
    """The consultation in the URL (or ``cid``), if the logged-in user is invited (404/403)."""
    state = request.app[STATE]
    consultation = state.config.consultation(cid or request.match_info["cid"])
    if consultation is None:
        raise ApiError(HTTPStatus.NOT_FOUND, "no such consultation")
    if session_of(request).username not in consultation.experts:
        raise ApiError(HTTPStatus.FORBIDDEN, "you are not invited to this consultation")
    return consultation


# argon2 is deliberately slow; an appliance checks in every few seconds, so remember
# the digest of a token once it has verified against the configured hash.
_VERIFIED_TOKENS: dict[tuple[str, str], bytes] = {}


def authenticated_device(request: web.Request) -> DeviceAccount:
    """The device named in the URL, if the bearer token is its own."""
    state = request.app[STATE]
    device = state.config.device(request.match_info["device"])
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    digest = hashlib.sha256(token.encode()).digest()
    if device is not None:
        key = (device.device_id, device.token_hash)
        known = _VERIFIED_TOKENS.get(key)
        if known is not None and secrets.compare_digest(known, digest):
            return device
        if verify_secret(device.token_hash, token):
            _VERIFIED_TOKENS[key] = digest
            return device
    else:
        verify_secret(None, token)  # same work for unknown devices
    raise ApiError(
        HTTPStatus.UNAUTHORIZED,
        "unknown device or wrong token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def station_caller(request: web.Request) -> tuple[DeviceAccount, str]:
    """Who runs the clinic station in the URL: the appliance itself (its bearer token, the
    kiosk) or a signed-in member of that clinic's staff (a tablet). Returns the device and
    the name the audit trail records."""
    if "Authorization" in request.headers:
        device = authenticated_device(request)
        return device, device.device_id
    state = request.app[STATE]
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise ApiError(
            HTTPStatus.UNAUTHORIZED,
            "sign in as the clinic's staff, or open the station with the appliance's token",
        )
    wanted = request.match_info["device"]
    station = next(
        (d for d in state.config.stations_of(session.username) if d.device_id == wanted), None
    )
    if station is None:
        raise ApiError(HTTPStatus.FORBIDDEN, "this clinic station is not one of your clinic's")
    _check_csrf(request, session)
    return station, session.username
