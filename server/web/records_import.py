"""HTTP API for imports: start a FHIR Bundle import, then poll its progress."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from aiohttp import web

from server.records.fhir import MAX_BUNDLE_BYTES
from server.records.importer import ImportService
from server.web.guard import require_role
from server.web.locale import reader_locale
from server.web.records import receive_upload

IMPORTS = web.AppKey("clinicam_imports", ImportService)


class FhirImportView(web.View):
    """POST a Bundle (admins); answered at once with a job to poll."""

    async def post(self) -> web.StreamResponse:
        admin = require_role(self.request, "admin")
        staged = await receive_upload(self.request, MAX_BUNDLE_BYTES)
        try:
            raw = await asyncio.to_thread(staged.read_bytes)
        finally:
            staged.unlink(missing_ok=True)
        job = self.request.app[IMPORTS].start_fhir(admin.username, raw)
        locale = await reader_locale(self.request)
        return web.json_response(job.as_json(locale), status=HTTPStatus.ACCEPTED)


class ImportJobView(web.View):
    async def get(self) -> web.StreamResponse:
        admin = require_role(self.request, "admin")
        job = self.request.app[IMPORTS].job(admin.username, self.request.match_info["job"])
        return web.json_response(job.as_json(await reader_locale(self.request)))


def add_import_routes(app: web.Application) -> None:
    app.router.add_view("/api/imports/fhir", FhirImportView)
    app.router.add_view("/api/imports/{job}", ImportJobView)
