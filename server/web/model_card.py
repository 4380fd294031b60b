"""The model card page (issue 18): every relevance view links to the card of the model
that produced the result. ``/models/<version>/card`` is the page (signed-in readers, in
their language); ``/api/models/<version>/card`` its data, from
:meth:`server.relevance.service.RelevanceService.card_page`."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from aiohttp import web

from clinicam.i18n import _
from server.errors import ApiError
from server.state import STATE
from server.web.locale import page
from server.web.security import session_of

VERSION = r"{version:[A-Za-z0-9._-]{1,64}}"


class ModelCardPage(web.View):
    async def get(self) -> web.StreamResponse:
        session_of(self.request)
        return await page(self.request, "model_card.html")


class ModelCardView(web.View):
    async def get(self) -> web.StreamResponse:
        """The model card of one model version: its data, scores and limits."""
        session_of(self.request)
        version = self.request.match_info["version"]
        relevance = self.request.app[STATE].relevance
        found = await asyncio.to_thread(relevance.card_page, version)
        if found is None:
            raise ApiError(
                HTTPStatus.NOT_FOUND, _("no model card of {version} here", version=version)
            )
        return web.json_response(found)


def add_model_card_routes(app: web.Application) -> None:
    app.router.add_view(f"/models/{VERSION}/card", ModelCardPage)
    app.router.add_view(f"/api/models/{VERSION}/card", ModelCardView)
