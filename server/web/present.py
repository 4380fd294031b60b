"""HTTP API for sharing a record item into a consultation's presentation view (R10).

The views parse and render; :class:`server.presenting.PresentationService`
holds the rules and the audit entries.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field, StrictBool

from clinicam.configfile import StrictModel
from server.errors import read_json
from server.presenting import PresentationService, Window
from server.web.consultations import open_consultation
from server.web.guard import check_access
from server.web.security import session_of

PRESENTATION = web.AppKey("clinicam_presentation", PresentationService)


class PresentBody(StrictModel):
    consultation: str = Field(min_length=1, max_length=63)
    center: float | None = Field(None, ge=-1e5, le=1e5)
    width: float | None = Field(None, gt=0, le=1e5)


class PresentView(web.View):
    async def post(self) -> web.StreamResponse:
        """Present a record item in the consultation's shared view."""
        body = await read_json(self.request, PresentBody)
        consultation = open_consultation(self.request, body.consultation)
        granted = await check_access(self.request, "view", "present")
        info = await self.request.app[PRESENTATION].present(
            session_of(self.request).username,
            granted.patient,
            consultation,
            self.request.match_info["category"],
            self.request.match_info["rid"],
            Window(body.center, body.width),
        )
        return web.json_response(info)


class ClinicShareBody(StrictModel):
    clinic: StrictBool = Field(description="Show the presented item at the clinic station.")


class PresentationView(web.View):
    async def patch(self) -> web.StreamResponse:
        """Share the presented item with the clinic (the bedside screen), or stop (R16)."""
        consultation = open_consultation(self.request)
        body = await read_json(self.request, ClinicShareBody)
        info: dict[str, Any] | None = await self.request.app[PRESENTATION].show_to_clinic(
            session_of(self.request).username, consultation, body.clinic
        )
        return web.json_response(info)

    async def delete(self) -> web.StreamResponse:
        """Stop presenting."""
        consultation = open_consultation(self.request)
        await self.request.app[PRESENTATION].stop(consultation)
        return web.json_response({"ok": True})


def add_present_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/patients/{pid}/records/{category}/{rid}/present", PresentView)
    r.add_view("/api/consultations/{cid}/presentation", PresentationView)
