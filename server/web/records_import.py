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
    """POST a Bundle (admins); answered at once with a job to poll. Patients Clinicam does
    not know are refused unless the query says ``create_patients=true``."""

    async def post(self) -> web.StreamResponse:
        admin = require_role(self.request, "admin")
        staged = await receive_upload(self.request, MAX_BUNDLE_BYTES)
        try:
            raw = await asyncio.to_thread(staged.read_bytes)
        finally:
            staged.unlink(missing_ok=True)
        create = self.request.query.get("create_patients", "").lower() in ("1", "true", "yes")
        job = self.request.app[IMPORTS].start_fhir(admin.username, raw, create_patients=create)
        locale = await reader_locale(self.request)
        return web.json_response(job.as_json(locale), status=HTTPStatus.ACCEPTED)


class ImportJobView(web.View):
    async def get(self) -> web.StreamResponse:
        """The progress and outcome of an import job."""
        admin = require_role(self.request, "admin")
        job = self.request.app[IMPORTS].job(admin.username, self.request.match_info["job"])
        return web.json_response(job.as_json(await reader_locale(self.request)))


def add_import_routes(app: web.Application) -> None:
    app.router.add_view("/api/imports/fhir", FhirImportView)
    app.router.add_view("/api/imports/{job}", ImportJobView)
