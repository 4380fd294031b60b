"""One place that turns validation and permission problems into HTTP answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from clinicam.i18n import DEFAULT_LOCALE, TextList, _, translate
from server.domain_errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    Unavailable,
    Unprocessable,
    Unsupported,
)

_LOGGER = logging.getLogger(__name__)

MAX_JSON_BYTES = 256 * 1024
M = TypeVar("M", bound=BaseModel)
# The reader's language, set by server.web.locale's middleware before any error can arise.
LOCALE_KEY = web.RequestKey("clinicam_locale", str)
# The one map from what a service refuses to the HTTP status the client sees.
STATUS_OF: dict[type[DomainError], HTTPStatus] = {
    Invalid: HTTPStatus.BAD_REQUEST,
    NotFound: HTTPStatus.NOT_FOUND,
    Forbidden: HTTPStatus.FORBIDDEN,
    Conflict: HTTPStatus.CONFLICT,
    TooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    Unprocessable: HTTPStatus.UNPROCESSABLE_ENTITY,
    Unsupported: HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    Unavailable: HTTPStatus.SERVICE_UNAVAILABLE,
}


class ApiError(Exception):
    """An error with the HTTP status and message the client should see."""

    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.code = code  # for a page that acts on this error (e.g. asks to confirm)


def status_of(exc: DomainError) -> HTTPStatus:
    """The HTTP status for ``exc``: its nearest class in :data:`STATUS_OF` (else 400)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return HTTPStatus.BAD_REQUEST


def _describe(err: ValidationError) -> str:
    # pydantic's own wording stays English; the field names are the API's.
    return TextList(
        [
            _(
                "{field}: {problem}",
                field=".".join(str(p) for p in e["loc"]) or "body",
                problem=e["msg"],
            )
            for e in err.errors()
        ]
    )


async def _body(request: web.Request) -> bytes:
    """The whole body, however many packets it arrives in (one read returns only what has
    arrived so far: on a slow link a 3 kB offer comes in pieces), up to the limit."""
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _("request body too large"))
    body = bytearray()
    while chunk := await request.content.read(MAX_JSON_BYTES + 1 - len(body)):
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _("request body too large"))
    return bytes(body)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (size-limited); anything else is a 400."""
    try:
        data = json.loads(await _body(request))
    except (ValueError, RecursionError):
        raise ApiError(HTTPStatus.BAD_REQUEST, _("body is not valid JSON")) from None
    if not isinstance(data, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, _("body must be a JSON object"))
    return data


async def read_json(request: web.Request, model: type[M]) -> M:
    """The request body parsed as ``model``; anything else is a 400 naming the field."""
    body = await _body(request)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ApiError(HTTPStatus.BAD_REQUEST, _("body is not valid JSON")) from None
        raise ApiError(HTTPStatus.BAD_REQUEST, _describe(exc)) from None


def error_response(
    status: HTTPStatus, message: str, headers: dict[str, str] | None = None, code: str | None = None
) -> web.Response:
    body = {"error": message} if code is None else {"error": message, "code": code}
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    locale = request.get(LOCALE_KEY, DEFAULT_LOCALE)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, translate(exc.message, locale), exc.headers, exc.code)
    except DomainError as exc:
        return error_response(status_of(exc), translate(exc.message, locale), code=exc.code)
    except web.HTTPException:
        raise
    except Exception:
        _LOGGER.exception("unhandled error on %s %s", request.method, request.path)
        message = translate(_("internal error"), locale)
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, message)
