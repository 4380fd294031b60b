"""HTTP views of the consultation report (issue 20): thin, :mod:`server.reports.service`
holds the rules.

The chair (of that consultation):

* ``GET  /api/consultations/<cid>/report`` the draft, the photos to choose from, versions
* ``PUT  /api/consultations/<cid>/report`` save the draft ``{findings, recommendation, snapshots}``
* ``POST /api/consultations/<cid>/report/sign`` ``{password}``: sign (after a change: a new version)

Readers, through the patient's records (grant-checked: no grant is 404):

* ``GET /api/patients/<pid>/reports/<rid>`` the version: content, signer, check, history
* ``GET /api/patients/<pid>/reports/<rid>/envelope|pdf|fhir`` downloads
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from pydantic import Field

from clinicam.configfile import StrictModel
from clinicam.i18n import translate
from server.errors import read_json
from server.records.serving import NO_SNIFF
from server.reports.service import DraftInput, ReportService
from server.web.guard import check_access
from server.web.locale import page, reader_locale
from server.web.security import require_json_body, session_of

REPORTS = web.AppKey("clinicam_reports", ReportService)
_MAX_TEXT = 20_000


class DraftBody(StrictModel):
    findings: str = Field(default="", max_length=_MAX_TEXT)
    recommendation: str = Field(default="", max_length=_MAX_TEXT)
    snapshots: list[int] = Field(default_factory=list, max_length=24)


class SignBody(StrictModel):
    password: str = Field(min_length=1, max_length=1024)


def _chair_call(request: web.Request) -> tuple[ReportService, str, str]:
    return request.app[REPORTS], session_of(request).username, request.match_info["cid"]


class ReportPage(web.View):
    """The chair's "End and report" page (its data comes from the API below)."""

    async def get(self) -> web.StreamResponse:
        return await page(self.request, "report.html")


class DraftView(web.View):
    async def get(self) -> web.StreamResponse:
        """The chair's report draft of the consultation, with what it will hold."""
        service, user, cid = _chair_call(self.request)
        return web.json_response(await service.draft(user, cid))

    async def put(self) -> web.StreamResponse:
        """Save the chair's draft: findings, recommendation, chosen snapshots."""
        service, user, cid = _chair_call(self.request)
        require_json_body(self.request)
        body = await read_json(self.request, DraftBody)
        given = DraftInput(body.findings, body.recommendation, list(body.snapshots))
        return web.json_response(await service.save_draft(user, cid, given))


class SignView(web.View):
    async def post(self) -> web.StreamResponse:
        """The chair signs the report (password again); a change after that is a new version."""
        service, user, cid = _chair_call(self.request)
        require_json_body(self.request)
        body = await read_json(self.request, SignBody)
        signed = await service.sign(user, cid, body.password)
        return web.json_response(signed, status=HTTPStatus.CREATED)


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', **NO_SNIFF}


class ReportView(web.View):
    async def get(self) -> web.StreamResponse:
        """One signed report: content, signer, version history, signature check."""
        granted = await check_access(self.request, "view", "report")
        service = self.request.app[REPORTS]
        rid = self.request.match_info["rid"]
        report = await service.read(granted.actor.username, granted.patient, rid, "report")
        envelope = report.verified.envelope or {}
        history = await service.history(granted.patient, str(report.record["consultation"]))
        problem = report.verified.problem
        body = {
            "record": report.record,
            "valid": report.verified.valid,
            "problem": None
            if problem is None
            else translate(problem, await reader_locale(self.request)),
            "digest": report.verified.digest,
            "key_id": report.verified.key_id,
            "signer": envelope.get("signer"),
            "signed_at": envelope.get("signed_at"),
            "version": envelope.get("version"),
            "supersedes": envelope.get("supersedes"),
            "content": envelope.get("content"),
            "history": history,
        }
        return web.json_response(body)


class EnvelopeView(web.View):
    async def get(self) -> web.StreamResponse:
        """The signed report as its signed file (canonical JSON and Ed25519 signature)."""
        granted = await check_access(self.request, "view", "report envelope")
        rid = self.request.match_info["rid"]
        report = await self.request.app[REPORTS].read(
            granted.actor.username, granted.patient, rid, "envelope"
        )
        name = f"report-{report.record['consultation']}-v{report.record['version']}.json"
        return web.Response(
            body=report.envelope, content_type="application/json", headers=_disposition(name)
        )


class PdfView(web.View):
    async def get(self) -> web.StreamResponse:
        """The signed report as PDF, in the reader's language."""
        granted = await check_access(self.request, "view", "report pdf")
        locale = await reader_locale(self.request)
        rid = self.request.match_info["rid"]
        data = await self.request.app[REPORTS].pdf(
            granted.actor.username, granted.patient, rid, locale
        )
        return web.Response(
            body=data, content_type="application/pdf", headers=_disposition(f"report-{rid}.pdf")
        )


class FhirView(web.View):
    async def get(self) -> web.StreamResponse:
        """The signed report as a FHIR R4 Bundle."""
        granted = await check_access(self.request, "view", "report fhir")
        rid = self.request.match_info["rid"]
        bundle = await self.request.app[REPORTS].fhir(granted.actor.username, granted.patient, rid)
        return web.json_response(
            bundle,
            content_type="application/fhir+json",
            headers=_disposition(f"report-{rid}.fhir.json"),
        )


def add_report_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/report/{cid}", ReportPage)
    r.add_view("/api/consultations/{cid}/report", DraftView)
    r.add_view("/api/consultations/{cid}/report/sign", SignView)
    base = "/api/patients/{pid}/reports/{rid}"
    r.add_view(base, ReportView)
    r.add_view(base + "/envelope", EnvelopeView)
    r.add_view(base + "/pdf", PdfView)
    r.add_view(base + "/fhir", FhirView)
