"""The reader's language: chosen per request, kept per person, spoken by every page.

Order: the person's own choice (stored, :class:`server.preferences.PreferenceDesk`),
else the ``clinicam_lang`` cookie (a choice made before signing in, or on a kiosk),
else the browser's ``Accept-Language``, else the site's ``language``. Pages are served
with ``<html lang>`` set to it; ``/static/i18n.js`` then loads the page catalogue.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path

from aiohttp import web
from pydantic import Field

from clinicam.configfile import StrictModel
from clinicam.i18n import LOCALES, _, negotiate, normalize
from server.auth import SESSION_COOKIE
from server.errors import LOCALE_KEY, ApiError, read_json
from server.preferences import PreferenceDesk
from server.state import STATE
from server.web.security import check_csrf

LANG_COOKIE = "clinicam_lang"
PREFERENCES = web.AppKey("clinicam_preferences", PreferenceDesk)
STATIC_DIR = Path(__file__).parent.parent / "static"
_HTML_TAG = '<html lang="en">'
_ONE_YEAR_S = 365 * 24 * 3600


class LocaleBody(StrictModel):
    locale: str = Field(min_length=2, max_length=16)


async def _chosen(request: web.Request) -> str | None:
    state = request.app[STATE]
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is not None and PREFERENCES in request.app:
        chosen = await request.app[PREFERENCES].locale(session.username)
        if chosen:
            return chosen
    return normalize(request.cookies.get(LANG_COOKIE))


async def reader_locale(request: web.Request) -> str:
    """The language to answer ``request`` in (computed once per request)."""
    if LOCALE_KEY in request:
        return request[LOCALE_KEY]
    state = request.app[STATE]
    locale = negotiate(
        request.headers.get("Accept-Language"), await _chosen(request), state.config.language
    )
    request[LOCALE_KEY] = locale
    return locale


@web.middleware
async def locale_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path.startswith("/static/"):  # scripts, styles, catalogues: no words of ours
        return await handler(request)
    locale = await reader_locale(request)
    response = await handler(request)
    if not response.prepared:
        response.headers.setdefault("Content-Language", locale)
    return response


@functools.cache
def _page_text(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


async def page(request: web.Request, name: str) -> web.Response:
    """The page ``name`` from the static folder, speaking the reader's language."""
    locale = await reader_locale(request)
    html = _page_text(name).replace(_HTML_TAG, f'<html lang="{locale}">', 1)
    return web.Response(
        text=html,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Vary": "Accept-Language, Cookie"},
    )


class LocaleView(web.View):
    """GET: the reader's language and the ones offered. POST {locale}: choose one; it
    sticks for the signed-in person (audited) and, by cookie, for this browser."""

    async def get(self) -> web.StreamResponse:
        return web.json_response(
            {
                "locale": await reader_locale(self.request),
                "chosen": await _chosen(self.request),
                "offered": list(LOCALES),
            }
        )

    async def post(self) -> web.StreamResponse:
        body = await read_json(self.request, LocaleBody)
        locale = normalize(body.locale)
        if locale is None or locale != body.locale:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, _("language not offered: {locale}", locale=body.locale)
            )
        state = self.request.app[STATE]
        session = state.sessions.get(self.request.cookies.get(SESSION_COOKIE))
        if session is not None:
            check_csrf(self.request, session)
            await self.request.app[PREFERENCES].choose_locale(session.username, locale)
        self.request[LOCALE_KEY] = locale
        response = web.json_response({"locale": locale, "stored": session is not None})
        response.set_cookie(
            LANG_COOKIE,
            locale,
            max_age=_ONE_YEAR_S,
            path="/",
            samesite="Strict",
            secure=state.config.http.cookie_secure,
        )
        return response


def add_routes(app: web.Application) -> None:
    app.router.add_view("/api/locale", LocaleView)
