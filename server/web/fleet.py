"""HTTP API for field updates (D5): the release store, the fleet, update requests.

Admins and technicians upload release wheels (``PUT /api/admin/releases/<wheel name>``,
the raw body is the wheel) and ask an appliance to install one; the server sends
``appliance.update`` with the release's size and sha256, and the appliance downloads
the wheel from ``/api/appliances/<device>/releases/<version>`` with its device token.
Every path part is checked against the release naming rules before any file is opened.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import Field

from clinicam.configfile import StrictModel
from clinicam.i18n import _, message_of
from clinicam.protocol import ApplianceUpdate
from clinicam.release import MAX_RELEASE_BYTES, VERSION_PATTERN, BadRelease, version_of, wheel_name
from server.config import DeviceAccount
from server.domain_errors import Unavailable
from server.errors import ApiError, read_json
from server.fleet.desk import ReleaseDesk
from server.fleet.releases import ReleaseConflict, ReleaseStore, is_version
from server.mqtt_link import FLEET_OPS, ApplianceUnreachable, CommandUnconfirmed
from server.state import STATE, ServerState
from server.web.blob_response import stream_content
from server.web.guard import require_role
from server.web.records import receive_upload
from server.web.security import authenticated_device

_LOGGER = logging.getLogger(__name__)
RELEASES = web.AppKey("clinicam_releases", ReleaseStore)
RELEASE_DESK = web.AppKey("clinicam_release_desk", ReleaseDesk)
FLEET_ROLES = ("admin", "technician")


class UpdateBody(StrictModel):
    release: str = Field(max_length=40, pattern=VERSION_PATTERN)


def _store(request: web.Request) -> ReleaseStore:
    return request.app[RELEASES]


def _version_param(request: web.Request, key: str = "version") -> str:
    """The version in the path, or 404 before anything touches the file system."""
    raw = request.match_info[key]
    if not is_version(raw):
        raise ApiError(HTTPStatus.NOT_FOUND, _("no such release (not a release version)"))
    return raw


class ReleasesView(web.View):
    async def get(self) -> web.StreamResponse:
        """The stored appliance releases and what each appliance runs."""
        require_role(self.request, *FLEET_ROLES)
        releases = await asyncio.to_thread(_store(self.request).list)
        return web.json_response({"releases": [r.to_json() for r in releases]})


class ReleaseView(web.View):
    """PUT ``/api/admin/releases/<wheel file name>``; DELETE ``…/<version>``."""

    async def put(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        actor = require_role(self.request, *FLEET_ROLES)
        filename = self.request.match_info["name"]

        async def refuse(status: HTTPStatus, message: str) -> ApiError:
            await state.audit.record(
                actor.username,
                "release.refused",
                f"release-file:{filename[:80]}",
                {"status": int(status), "reason": message},
            )
            return ApiError(status, message)

        try:
            if wheel_name(version_of(filename)) != filename:
                raise BadRelease(
                    _("{name} is not a Clinicam release file name", name=repr(filename[:80]))
                )
        except BadRelease as exc:
            raise await refuse(HTTPStatus.UNPROCESSABLE_ENTITY, message_of(exc)) from None
        try:
            staged = await receive_upload(self.request, MAX_RELEASE_BYTES)
        except ApiError as exc:
            raise await refuse(exc.status, exc.message) from None
        try:
            release, created = await self.request.app[RELEASE_DESK].add(
                actor.username, staged, filename
            )
        except BadRelease as exc:
            raise await refuse(HTTPStatus.UNPROCESSABLE_ENTITY, message_of(exc)) from None
        except ReleaseConflict as exc:
            raise await refuse(HTTPStatus.CONFLICT, message_of(exc)) from None
        except Unavailable as exc:  # the blob store is away: the same 503 as record reads
            await refuse(HTTPStatus.SERVICE_UNAVAILABLE, message_of(exc))
            raise
        finally:
            staged.unlink(missing_ok=True)
        return web.json_response(
            release.to_json(), status=HTTPStatus.CREATED if created else HTTPStatus.OK
        )

    async def delete(self) -> web.StreamResponse:
        actor = require_role(self.request, "admin")
        version = _version_param(self.request, "name")
        await self.request.app[RELEASE_DESK].remove(actor.username, version)
        return web.json_response({"status": "removed", "version": version})


def appliance_row(state: ServerState, device: DeviceAccount) -> dict[str, Any]:
    appliance = state.appliances.states.get(device.device_id)
    update = appliance.update if appliance is not None else None
    return {
        "device_id": device.device_id,
        "clinic": device.clinic,
        "online": state.appliances.available.get(device.device_id, False),
        "version": appliance.version if appliance is not None else None,
        "update": update.model_dump() if update is not None else None,
        "model_version": appliance.model_version if appliance is not None else None,
    }


class AppliancesView(web.View):
    async def get(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        require_role(self.request, *FLEET_ROLES)
        rows = [appliance_row(state, d) for d in state.directory.devices]
        return web.json_response({"appliances": rows, "broker": state.appliances.connected})


class ApplianceUpdateView(web.View):
    """Ask one appliance to install a stored release."""

    async def post(self) -> web.StreamResponse:
        state = self.request.app[STATE]
        actor = require_role(self.request, *FLEET_ROLES)
        device = state.directory.device(self.request.match_info["device"])
        if device is None:
            raise ApiError(HTTPStatus.NOT_FOUND, _("no such appliance"))
        body = await read_json(self.request, UpdateBody)
        release = await self.request.app[RELEASE_DESK].release(body.release)
        device_id = device.device_id

        async def refuse(status: HTTPStatus, message: str) -> ApiError:
            await state.audit.record(
                actor.username,
                "appliance.update.refused",
                f"appliance:{device_id}",
                {"release": release.version, "status": int(status), "reason": message},
            )
            return ApiError(status, message)

        if not state.appliances.available.get(device_id, False):
            raise await refuse(
                HTTPStatus.SERVICE_UNAVAILABLE, _("appliance {device} is offline", device=device_id)
            )
        command = ApplianceUpdate(
            id=f"upd-{secrets.token_hex(8)}",
            release=release.version,
            sha256=release.sha256,
            size=release.size,
            requested_by=actor.username,
        )
        try:
            ack = await state.appliances.send(device_id, command, allowed=FLEET_OPS)
        except CommandUnconfirmed as exc:  # it may be updating: not "refused"
            await state.audit.record(
                actor.username,
                "appliance.update.unconfirmed",
                f"appliance:{device_id}",
                {"release": release.version, "command": command.id, "reason": str(exc)},
            )
            raise ApiError(HTTPStatus.GATEWAY_TIMEOUT, message_of(exc)) from None
        except ApplianceUnreachable as exc:
            raise await refuse(HTTPStatus.SERVICE_UNAVAILABLE, message_of(exc)) from None
        if not ack.ok:
            reason = ack.error or _("no reason given")
            raise await refuse(
                HTTPStatus.CONFLICT,
                _(
                    "appliance {device} refused the update: {reason}",
                    device=device_id,
                    reason=reason,
                ),
            )
        await state.audit.record(
            actor.username,
            "appliance.update.requested",
            f"appliance:{device_id}",
            {"release": release.version, "sha256": release.sha256, "command": command.id},
        )
        _LOGGER.info("%s asked %s to update to %s", actor.username, device_id, release.version)
        return web.json_response(
            {"status": "requested", "release": release.version, "device": device_id},
            status=HTTPStatus.ACCEPTED,
        )


class DeviceReleaseView(web.View):
    """The appliance downloads the wheel it was told to install (its own token only)."""

    async def get(self) -> web.StreamResponse:
        device = authenticated_device(self.request)
        version = _version_param(self.request)
        wheel = await self.request.app[RELEASE_DESK].download(device.device_id, version)
        headers = {
            "Content-Disposition": f'attachment; filename="{wheel.filename}"',
            "Cache-Control": "no-store",
        }
        try:
            return await stream_content(self.request, wheel, headers)
        finally:  # (already closed when it was sent; not when the range was refused)
            await asyncio.to_thread(wheel.open().close)


def add_fleet_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/admin/releases", ReleasesView)
    r.add_view("/api/admin/releases/{name}", ReleaseView)
    # /api/admin/appliances itself: server.web.enrollment (its view extends AppliancesView)
    r.add_view("/api/admin/appliances/{device}/update", ApplianceUpdateView)
    r.add_view("/api/appliances/{device}/releases/{version}", DeviceReleaseView)
