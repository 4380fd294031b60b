"""HTTP views for accounts: the admins' account desk, the one-time set-password link, the
second factor's set-up, and the second step of signing in.

Admins: ``/api/admin/accounts`` (GET list, POST create), ``…/{username}`` (PATCH),
``…/{username}/reset|disable|enable`` (POST). Anyone with a link: ``/set-password`` and
``POST /api/account/password``. Signed in: ``POST /api/account/totp`` (a new secret) and
``…/totp/confirm`` (its first code). Signing in: ``POST /api/login/enrol`` and
``/api/login/code`` with the pending token ``/api/login`` gave.
"""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import Field

from clinicam.configfile import StrictModel
from clinicam.i18n import message_of
from server.auth import Throttled
from server.directory.accounts import AccountChanges, AccountDesk, IssuedLink, NewAccount
from server.directory.book import Account
from server.directory.second_factor import Enrolment, TotpDesk
from server.errors import ApiError, read_json
from server.login import WrongCode
from server.state import STATE
from server.web.consultation import session_response
from server.web.guard import require_role
from server.web.locale import page
from server.web.security import require_json_body, session_of, too_many

ACCOUNT_DESK = web.AppKey("clinicam_account_desk", AccountDesk)
TOTP_DESK = web.AppKey("clinicam_totp_desk", TotpDesk)
ROLES = ("expert", "chair", "clinic", "admin", "technician")


class ResetBody(StrictModel):
    clear_totp: bool = False


class PasswordBody(StrictModel):
    token: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class CodeBody(StrictModel):
    code: str = Field(min_length=1, max_length=16)


class PendingBody(StrictModel):
    pending: str = Field(min_length=1, max_length=128)


class PendingCodeBody(PendingBody):
    code: str = Field(min_length=1, max_length=16)


def _account_json(account: Account, links: dict[str, datetime]) -> dict[str, Any]:
    link = links.get(account.username)
    return {
        "username": account.username,
        "display_name": account.display_name,
        "role": account.role,
        "clinic": account.clinic,
        "email": account.email,
        "time_zone": account.time_zone,
        "disabled": account.disabled,
        "totp": account.totp,
        "link_expires": link.isoformat() if link else None,
    }


def _link_json(link: IssuedLink) -> dict[str, Any]:
    return {"username": link.username, "link": link.path, "expires_at": link.expires_at.isoformat()}


def _enrolment_json(enrolment: Enrolment) -> dict[str, Any]:
    return {"secret": enrolment.secret, "uri": enrolment.uri, "svg": enrolment.svg}


def _desk(request: web.Request) -> AccountDesk:
    return request.app[ACCOUNT_DESK]


class AccountsView(web.View):
    async def get(self) -> web.StreamResponse:
        """Every account, for admins."""
        require_role(self.request, "admin")
        desk = _desk(self.request)
        links = await desk.pending_links()
        return web.json_response(
            {
                "accounts": [_account_json(a, links) for a in desk.accounts],
                "clinics": desk.clinics,
                "roles": list(ROLES),
            }
        )

    async def post(self) -> web.StreamResponse:
        """An admin creates an account; the answer holds its one-time set-password link."""
        admin = require_role(self.request, "admin")
        require_json_body(self.request)
        body = await read_json(self.request, NewAccount)
        link = await _desk(self.request).create(admin.username, body)
        return web.json_response(_link_json(link), status=HTTPStatus.CREATED)


class AccountView(web.View):
    async def patch(self) -> web.StreamResponse:
        """An admin changes an account's name, roles, clinic, e-mail or time zone."""
        admin = require_role(self.request, "admin")
        require_json_body(self.request)
        body = await read_json(self.request, AccountChanges)
        desk = _desk(self.request)
        account = await desk.change(admin.username, self.request.match_info["username"], body)
        return web.json_response(_account_json(account, await desk.pending_links()))


class AccountActionView(web.View):
    async def post(self) -> web.StreamResponse:
        """An admin resets an account's password (a one-time link), disables or enables it."""
        admin = require_role(self.request, "admin")
        username, action = self.request.match_info["username"], self.request.match_info["action"]
        desk = _desk(self.request)
        if action == "reset":
            body = ResetBody()
            if self.request.can_read_body:
                require_json_body(self.request)
                body = await read_json(self.request, ResetBody)
            link = await desk.reset(admin.username, username, clear_totp=body.clear_totp)
            return web.json_response(_link_json(link))
        if action == "disable":
            await desk.disable(admin.username, username)
        else:
            await desk.enable(admin.username, username)
        return web.json_response({"username": username, "disabled": action == "disable"})


class SetPasswordPage(web.View):
    async def get(self) -> web.StreamResponse:
        return await page(self.request, "set_password.html")


class SetPasswordView(web.View):
    async def post(self) -> web.StreamResponse:
        """Set a password with a one-time link's token (no session needed)."""
        require_json_body(self.request)
        body = await read_json(self.request, PasswordBody)
        username = await _desk(self.request).set_password(body.token, body.password)
        return web.json_response({"user": username})


class TotpView(web.View):
    """POST: a new secret for the signed-in person's authenticator app."""

    async def post(self) -> web.StreamResponse:
        username = session_of(self.request).username
        return web.json_response(
            _enrolment_json(self.request.app[TOTP_DESK].start_enrolment(username))
        )


class TotpConfirmView(web.View):
    async def post(self) -> web.StreamResponse:
        """Confirm a new authenticator app with its first code; the second factor is then on."""
        require_json_body(self.request)
        body = await read_json(self.request, CodeBody)
        username = session_of(self.request).username
        await self.request.app[TOTP_DESK].confirm(username, body.code)
        return web.json_response({"user": username, "totp": True})


class LoginEnrolView(web.View):
    """A sign-in whose role must have a second factor: the secret to set up first."""

    async def post(self) -> web.StreamResponse:
        require_json_body(self.request)
        body = await read_json(self.request, PendingBody)
        try:
            enrolment = self.request.app[STATE].login.enrolment(body.pending)
        except WrongCode as exc:
            raise ApiError(HTTPStatus.UNAUTHORIZED, message_of(exc)) from None
        return web.json_response(_enrolment_json(enrolment))


class LoginCodeView(web.View):
    """The second step of signing in: the code (a set-up's first code when enrolling)."""

    async def post(self) -> web.StreamResponse:
        require_json_body(self.request)
        body = await read_json(self.request, PendingCodeBody)
        address = self.request.remote or "unknown"
        try:
            signed_in = await self.request.app[STATE].login.finish(body.pending, body.code, address)
        except Throttled as exc:
            raise too_many(exc) from None
        except WrongCode as exc:
            raise ApiError(HTTPStatus.UNAUTHORIZED, message_of(exc)) from None
        return session_response(self.request, signed_in)


def add_account_routes(app: web.Application) -> None:
    r = app.router
    r.add_view("/api/admin/accounts", AccountsView)
    r.add_view("/api/admin/accounts/{username}", AccountView)
    r.add_view("/api/admin/accounts/{username}/{action:reset|disable|enable}", AccountActionView)
    r.add_view("/set-password", SetPasswordPage)
    r.add_view("/api/account/password", SetPasswordView)
    r.add_view("/api/account/totp", TotpView)
    r.add_view("/api/account/totp/confirm", TotpConfirmView)
    r.add_view("/api/login/enrol", LoginEnrolView)
    r.add_view("/api/login/code", LoginCodeView)
