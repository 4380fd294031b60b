"""Authentication on by default: every route needs a session unless listed as public.

State-changing requests must carry the session's CSRF token; every state-changing
request, with a session or without one yet (sign-in), is refused when the browser
says it comes from another site (Origin, Sec-Fetch-Site). Device routes use bearer
tokens instead, checked here before the view runs (see server/device_tokens.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from urllib.parse import quote, urlsplit

from aiohttp import web

from clinicam.i18n import _
from server.auth import CSRF_HEADER, SESSION_COOKIE, Session, Throttled, cookie_digest
from server.cluster import forwarding
from server.config import ConsultationConfig, DeviceAccount
from server.device_tokens import DeviceRefused
from server.errors import ApiError
from server.slow_checks import ChecksBusy
from server.state import STATE

PUBLIC_PREFIXES = ("/static/", "/api/appliances/", "/station/")  # the latter two: bearer
PUBLIC_PATHS = frozenset(
    {
        "/login",
        "/api/login",
        "/api/login/code",
        "/api/login/enrol",
        "/set-password",
        "/api/account/password",
        "/api/locale",
        "/healthz",
        "/metrics",  # an admin's session or the scraper's token, checked by its view
        "/favicon.ico",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_KEY = web.RequestKey("clinicam_session", Session)
DEVICE_KEY = web.RequestKey("clinicam_device", DeviceAccount)
DEVICE_REFUSAL_KEY = web.RequestKey("clinicam_device_refusal", ApiError)
SAME_SITE_FETCHES = frozenset({"same-origin", "none"})  # none: typed or bookmarked
JSON_TYPE = "application/json"


def session_of(request: web.Request) -> Session:
    """The logged-in session (the middleware guarantees it on protected routes)."""
    return request[SESSION_KEY]


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def vouched_session_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """On a media worker, before :func:`auth_middleware`: the session a web front vouches
    for (:mod:`server.cluster.forwarding`) becomes this process's session for its cookie."""
    state = request.app[STATE]
    cluster = state.config.cluster
    value = request.headers.get(forwarding.HEADER)
    token = request.cookies.get(SESSION_COOKIE)
    if value and token and cluster is not None and cluster.secret is not None:
        secret = cluster.secret.get_secret_value().encode()
        vouched = forwarding.check(secret, value, time.time())
        if vouched is not None and vouched.cookie_digest == cookie_digest(token):
            state.sessions.adopt(token, vouched.username, vouched.csrf)
    return await handler(request)


@web.middleware
async def auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.method not in SAFE_METHODS:
        _check_same_site(request)
    if _is_public(request.path):
        if "device" in request.match_info and "Authorization" in request.headers:
            await _authenticate_device(request)
        return await handler(request)
    state = request.app[STATE]
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        if request.path.startswith("/api/"):
            raise ApiError(
                HTTPStatus.UNAUTHORIZED, _("not logged in (or logged out after inactivity)")
            )
        raise web.HTTPFound(f"/login?next={quote(request.path_qs, safe='/')}")
    check_csrf(request, session)
    request[SESSION_KEY] = session
    return await handler(request)


def check_csrf(request: web.Request, session: Session) -> None:
    """A state-changing request must carry the session's CSRF token, from this origin."""
    if request.method in SAFE_METHODS:
        return
    token = request.headers.get(CSRF_HEADER, "")
    if not secrets.compare_digest(token.encode(), session.csrf.encode()):
        raise ApiError(HTTPStatus.FORBIDDEN, _("missing or wrong CSRF token"))
    _check_same_site(request)


def _check_same_site(request: web.Request) -> None:
    """Refuse a request the browser says another site sent (no CSRF token needed for that:
    sign-in has none yet). Non-browser clients (appliances) send neither header."""
    origin = request.headers.get("Origin")
    # The host, not the scheme: behind a TLS-terminating proxy the page is https and the
    # request reaching us http, for the same host.
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise ApiError(HTTPStatus.FORBIDDEN, _("cross-origin request refused (CSRF protection)"))
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in SAME_SITE_FETCHES:
        raise ApiError(HTTPStatus.FORBIDDEN, _("cross-site request refused (CSRF protection)"))


def require_json_body(request: web.Request) -> None:
    """A body that is not declared JSON is refused (a cross-site ``text/plain`` form can
    send a JSON-looking body without a preflight; it cannot send this content type)."""
    if request.content_type != JSON_TYPE:
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, _("the body must be {type}", type=JSON_TYPE)
        )


def invited_consultation(request: web.Request, cid: str | None = None) -> ConsultationConfig:
    """The consultation in the URL (or ``cid``), if the logged-in user is invited (404/403)."""
    state = request.app[STATE]
    consultation = state.directory.consultation(cid or request.match_info["cid"])
    if consultation is None:
        raise ApiError(HTTPStatus.NOT_FOUND, _("no such consultation"))
    if session_of(request).username not in consultation.experts:
        raise ApiError(HTTPStatus.FORBIDDEN, _("you are not invited to this consultation"))
    return consultation


_DEVICE_REFUSED = _("unknown device or wrong token")


async def _authenticate_device(request: web.Request) -> None:
    """Check the bearer token of the device in the URL; the view reads the outcome with
    :func:`authenticated_device`. A current token costs one HMAC; see device_tokens."""
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else ""
    tokens = request.app[STATE].device_tokens
    try:
        request[DEVICE_KEY] = await tokens.authenticate(
            request.match_info["device"], token, request.remote or "unknown"
        )
    except DeviceRefused:
        request[DEVICE_REFUSAL_KEY] = ApiError(
            HTTPStatus.UNAUTHORIZED, _DEVICE_REFUSED, headers={"WWW-Authenticate": "Bearer"}
        )
    except Throttled as exc:
        request[DEVICE_REFUSAL_KEY] = too_many(exc)
    except ChecksBusy:
        request[DEVICE_REFUSAL_KEY] = busy()


def too_many(exc: Throttled) -> ApiError:
    return ApiError(
        HTTPStatus.TOO_MANY_REQUESTS,
        _("too many failed attempts; try again in {seconds} s", seconds=f"{exc.retry_after:.0f}"),
        headers={"Retry-After": str(int(exc.retry_after) + 1)},
    )


def busy() -> ApiError:
    return ApiError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        _("too many sign-in checks at once; try again shortly"),
        headers={"Retry-After": "1"},
    )


def authenticated_device(request: web.Request) -> DeviceAccount:
    """The device named in the URL, if the bearer token is its own (checked by the
    middleware before the view ran)."""
    if DEVICE_KEY in request:
        return request[DEVICE_KEY]
    raise request.get(DEVICE_REFUSAL_KEY) or ApiError(
        HTTPStatus.UNAUTHORIZED, _DEVICE_REFUSED, headers={"WWW-Authenticate": "Bearer"}
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
            _("sign in as the clinic's staff, or open the station with the appliance's token"),
        )
    wanted = request.match_info["device"]
    station = next(
        (d for d in state.directory.stations_of(session.username) if d.device_id == wanted), None
    )
    if station is None:
        raise ApiError(HTTPStatus.FORBIDDEN, _("this clinic station is not one of your clinic's"))
    check_csrf(request, session)
    return station, session.username
