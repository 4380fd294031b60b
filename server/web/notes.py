"""HTTP views of a consultation's shared notes (thin: :mod:`server.consultation_notes`).

* ``GET  /api/consultations/<cid>/notes`` the notes now: version, text, who wrote last
* ``POST /api/consultations/<cid>/notes`` ``{base_version, text, sent?}`` → the new version

Only the consultation's invited experts (the chair among them) read and write them; every
new version also reaches each expert's page in the room over the room's socket.
"""

from __future__ import annotations

from aiohttp import web

from server.consultation_notes.service import NotesEdit, SharedNotes
from server.errors import read_json
from server.web.security import require_json_body, session_of

NOTES = web.AppKey("clinicam_notes", SharedNotes)


class NotesView(web.View):
    async def get(self) -> web.StreamResponse:
        """The consultation's shared notes: text, version, who edited last (its experts)."""
        notes = self.request.app[NOTES]
        user, cid = session_of(self.request).username, self.request.match_info["cid"]
        return web.json_response((await notes.current(user, cid)).to_json())

    async def post(self) -> web.StreamResponse:
        """Save an edit made from a version: merged with what others typed since."""
        require_json_body(self.request)
        edit = await read_json(self.request, NotesEdit)
        notes = self.request.app[NOTES]
        user, cid = session_of(self.request).username, self.request.match_info["cid"]
        return web.json_response((await notes.edit(user, cid, edit)).to_json())


def add_notes_routes(app: web.Application) -> None:
    app.router.add_view("/api/consultations/{cid}/notes", NotesView)
