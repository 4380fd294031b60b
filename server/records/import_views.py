"""HTTP API for imports: start a FHIR Bundle import, then poll its progress."""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

from aiohttp import web

from server.access.guard import require_role
from server.errors import ApiError
from server.records.fhir import MAX_BUNDLE_BYTES
from server.records.importer import ImportJob, run_fhir_import
from server.records.ingest import IngestLimits
from server.records.views import receive_upload, staging_dir
from server.state import STATE

_LOGGER = logging.getLogger(__name__)
IMPORTS = web.AppKey("clinicam_imports", dict[str, ImportJob])
MAX_JOBS_KEPT = 50


class FhirImportView(web.View):
    """POST a Bundle (admins); answered at once with a job to poll."""

    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        admin = require_role(self.request, "admin")
        staged = await receive_upload(self.request, MAX_BUNDLE_BYTES)
        try:
            raw = await asyncio.to_thread(staged.read_bytes)
        finally:
            staged.unlink(missing_ok=True)
        job = ImportJob("fhir", admin.username)
        jobs = self.request.app[IMPORTS]
        jobs[job.id] = job
        while len(jobs) > MAX_JOBS_KEPT:
            jobs.pop(next(iter(jobs)))
        limits = IngestLimits(max_image_pixels=state.config.records.max_image_megapixels * 10**6)
        staging = staging_dir(self.request)

        async def run() -> None:
            try:
                await asyncio.to_thread(
                    run_fhir_import, job, raw, state.database, state.records, staging, limits
                )
            except Exception as exc:  # reported to the page, never lost in a task
                _LOGGER.exception("FHIR import %s failed", job.id)
                job.state, job.error = "failed", f"import failed: {exc}"
            await state.audit.record(
                admin.username,
                "record.import",
                "fhir-bundle",
                {
                    "job": job.id,
                    "state": job.state,
                    "patients": job.patients,
                    "filed": job.filed,
                    "skipped": len(job.skipped),
                    "error": job.error,
                },
            )

        task = asyncio.create_task(run(), name=f"import-{job.id}")
        self.request.app[IMPORT_TASKS].add(task)
        task.add_done_callback(self.request.app[IMPORT_TASKS].discard)
        return web.json_response(job.as_json(), status=HTTPStatus.ACCEPTED)


class ImportJobView(web.View):
    async def get(self) -> web.StreamResponse:
        admin = require_role(self.request, "admin")
        job = self.request.app[IMPORTS].get(self.request.match_info["job"])
        if job is None or job.actor != admin.username:
            raise ApiError(HTTPStatus.NOT_FOUND, "no such import")
        return web.json_response(job.as_json())


IMPORT_TASKS = web.AppKey("clinicam_import_tasks", set[asyncio.Task[None]])


def add_import_routes(app: web.Application) -> None:
    app[IMPORTS] = {}
    app[IMPORT_TASKS] = set()
    app.router.add_view("/api/imports/fhir", FhirImportView)
    app.router.add_view("/api/imports/{job}", ImportJobView)
