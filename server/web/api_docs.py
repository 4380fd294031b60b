"""The API's own description (O8): ``/api/openapi.json`` is the OpenAPI 3.1 document
:func:`server.web.openapi.describe` builds from this application's routes and models;
``/api/docs`` a readable page of it. Both for signed-in readers, like the rest of the API."""

from __future__ import annotations

from importlib import metadata

from aiohttp import web

from server.web.locale import page
from server.web.openapi import describe
from server.web.security import session_of

DOCUMENT = web.AppKey("clinicam_openapi_document", dict)  # filled on the first request
TITLE = "Clinicam"  # i18n: not for people (a product name, the document's title)


def version() -> str:
    try:
        return metadata.version("clinicam")
    except metadata.PackageNotFoundError:
        return "0"


class OpenApiView(web.View):
    async def get(self) -> web.StreamResponse:
        """The OpenAPI 3.1 description of this server's REST API."""
        session_of(self.request)
        app = self.request.app
        cache = app[DOCUMENT]
        if not cache:
            cache.update(describe(app, title=TITLE, version=version()))
        return web.json_response(cache)


class ApiDocsPage(web.View):
    async def get(self) -> web.StreamResponse:
        """A readable page of the API description."""
        session_of(self.request)
        return await page(self.request, "api_docs.html")


def add_api_doc_routes(app: web.Application) -> None:
    app[DOCUMENT] = {}
    app.router.add_view("/api/openapi.json", OpenApiView)
    app.router.add_view("/api/docs", ApiDocsPage)
