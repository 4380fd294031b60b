"""Accounts managed in the database: create, change, reset, disable and enable them, and
set a password through a one-time link.

A new account has a random password nobody knows and a one-time set-password link
(only the link's SHA-256 digest is stored). A reset issues a new link and replaces the
password at once, so the old one stops working; disabling an account ends its sessions
at once. Every change commits together with its audit entry, then the in-memory
directory is read again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from clinicam.configfile import StrictModel
from clinicam.const import USERNAME_PATTERN
from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.auth import SessionStore, hash_secret
from server.config import AccountsConfig, Role
from server.db import Database, utcnow
from server.directory.book import Account, Directory
from server.directory.models import AccountLinkRow, AccountRow
from server.directory.passwords import MAX_PASSWORD_LENGTH, check_password
from server.domain_errors import Conflict, Invalid, NotFound

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

SET_PASSWORD_PAGE = "/set-password"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class NewAccount(StrictModel):
    """An account as an admin creates it."""

    username: str = Field(pattern=USERNAME_PATTERN)
    display_name: str = Field(min_length=1, max_length=80)
    role: Role
    clinic: str | None = Field(None, min_length=1, max_length=80)
    email: str | None = Field(None, max_length=254)
    time_zone: str | None = Field(None, max_length=64)


class AccountChanges(StrictModel):
    """What an admin may change later (the fields given; ``clinic`` null clears it)."""

    display_name: str | None = Field(None, min_length=1, max_length=80)
    role: Role | None = None
    clinic: str | None = Field(None, min_length=1, max_length=80)
    email: str | None = Field(None, max_length=254)
    time_zone: str | None = Field(None, max_length=64)


@dataclass(frozen=True)
class IssuedLink:
    """A one-time set-password link; the token is shown once, to the admin who asked."""

    username: str
    token: str
    expires_at: datetime

    @property
    def path(self) -> str:
        """The page and the token (in the fragment: never sent to a server or a log)."""
        return f"{SET_PASSWORD_PAGE}#token={self.token}"


def link_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def unusable_password_hash() -> str:
    """The hash of a random password nobody is told: the account cannot sign in yet."""
    return hash_secret(secrets.token_urlsafe(32))


class AccountDesk:
    """The admins' account desk and the set-password link; see the module docstring."""

    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        directory: Directory,
        sessions: SessionStore,
        policy: AccountsConfig,
        end_live: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """``end_live`` closes what a user has open beyond their sessions (a room's
        WebSocket, its video), when their account is disabled or its password changes."""
        self._database = database
        self._audit = audit
        self._directory = directory
        self._sessions = sessions
        self._policy = policy
        self._end_live = end_live

    @property
    def accounts(self) -> Sequence[Account]:
        return sorted(self._directory.all_accounts, key=lambda a: a.username)

    @property
    def clinics(self) -> list[str]:
        return self._directory.clinics

    async def _sign_out(self, username: str) -> int:
        """End every session of ``username`` and whatever they have open, now."""
        ended = self._sessions.drop_user(username)
        if self._end_live is not None:
            await self._end_live(username)
        return ended

    async def _commit(self, work: Callable[[Session], T]) -> T:
        """``work`` in one transaction (with its audit entry), then the directory again."""

        def run() -> T:
            with self._database.session() as session, session.begin():
                result = work(session)
            self._directory.reload()
            return result

        return await asyncio.to_thread(run)

    # -- checks ----------------------------------------------------------------------------
    def _check_place(self, role: str, clinic: str | None) -> None:
        if role == "clinic" and clinic is None:
            raise Invalid(_("clinic staff need their clinic"), code="clinic_missing")
        if role != "clinic" and clinic is not None:
            raise Invalid(_("only clinic staff belong to a clinic"), code="clinic_not_staff")
        if clinic is not None and clinic not in self._directory.clinics:
            raise Invalid(
                _("no enrolled appliance is at clinic '{clinic}'", clinic=clinic),
                code="clinic_unknown",
            )

    @staticmethod
    def _check_contact(email: str | None, time_zone: str | None) -> None:
        if email is not None and not _EMAIL.match(email):
            raise Invalid(_("not an e-mail address: {email}", email=email[:80]), code="email")
        if time_zone is not None:
            try:
                ZoneInfo(time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise Invalid(
                    _("unknown time zone: {zone} (e.g. Asia/Shanghai)", zone=time_zone[:64]),
                    code="time_zone",
                ) from None

    @staticmethod
    def _row(session: Session, username: str) -> AccountRow:
        row = session.get(AccountRow, username, with_for_update=True)
        if row is None:
            raise NotFound(_("no such account: {username}", username=username[:64]))
        return row

    def _new_link(self, session: Session, actor: str, username: str) -> IssuedLink:
        """A fresh link for ``username``; earlier ones stop working."""
        session.execute(delete(AccountLinkRow).where(AccountLinkRow.username == username))
        token = secrets.token_urlsafe(32)
        expires = utcnow() + timedelta(hours=self._policy.set_password_link_hours)
        session.add(
            AccountLinkRow(
                token_digest=link_digest(token),
                username=username,
                created_by=actor,
                expires_at=expires,
            )
        )
        return IssuedLink(username, token, expires)

    # -- the admins' changes ---------------------------------------------------------------
    async def create(self, actor: str, new: NewAccount) -> IssuedLink:
        """A new account with an unusable password and its one-time set-password link."""
        self._check_place(new.role, new.clinic)
        self._check_contact(new.email, new.time_zone)
        unusable = await asyncio.to_thread(unusable_password_hash)

        def work(session: Session) -> IssuedLink:
            if session.get(AccountRow, new.username) is not None:
                raise Conflict(
                    _("the user name {username} is taken", username=new.username),
                    code="username_taken",
                )
            session.add(
                AccountRow(
                    username=new.username,
                    display_name=new.display_name,
                    password_hash=unusable,
                    role=new.role,
                    clinic=new.clinic,
                    email=new.email,
                    time_zone=new.time_zone,
                    disabled=False,
                    session_epoch=0,
                    created_by=actor,
                )
            )
            session.flush()  # the link refers to the account
            link = self._new_link(session, actor, new.username)
            detail = new.model_dump(exclude={"username"}) | {"link_expires": _iso(link)}
            self._audit.write(session, actor, "account.create", _target(new.username), detail)
            return link

        link = await self._commit(work)
        _LOGGER.info("account %s created by %s", new.username, actor)
        return link

    async def change(self, actor: str, username: str, changes: AccountChanges) -> Account:
        """Change the display name, role, clinic, e-mail or time zone."""
        given = changes.model_dump(exclude_unset=True)
        for required in ("display_name", "role"):
            if given.get(required, "") is None:
                del given[required]  # null: unchanged (only clinic, e-mail, zone clear)
        if not given:
            raise Invalid(_("nothing to change"), code="nothing")
        if username == actor and given.get("role", "admin") != "admin":
            raise Conflict(_("you cannot take the admin role from yourself"), code="own_role")
        self._check_contact(given.get("email"), given.get("time_zone"))

        def work(session: Session) -> None:
            row = self._row(session, username)
            before = {key: getattr(row, key) for key in [*given, "clinic"]}
            role = given.get("role", row.role)
            clinic = given.get("clinic", row.clinic)
            if role != "clinic" and "role" in given and "clinic" not in given:
                clinic = None  # leaving the clinic staff: no clinic any more
            self._check_place(role, clinic)
            for key, value in given.items():
                setattr(row, key, value)
            row.clinic = clinic
            after = {key: getattr(row, key) for key in before}
            self._audit.write(
                session, actor, "account.change", _target(username), {"from": before, "to": after}
            )

        await self._commit(work)
        account = self._directory.account(username)
        assert account is not None
        return account

    async def reset(self, actor: str, username: str, *, clear_totp: bool = False) -> IssuedLink:
        """A new one-time link; the old password stops working and sessions end now."""
        unusable = await asyncio.to_thread(unusable_password_hash)

        def work(session: Session) -> IssuedLink:
            row = self._row(session, username)
            row.password_hash = unusable
            row.password_changed_at = utcnow()
            row.session_epoch += 1
            if clear_totp:
                row.totp_secret = None
                row.totp_last_step = None
            link = self._new_link(session, actor, username)
            detail = {"link_expires": _iso(link), "second_factor_removed": clear_totp}
            self._audit.write(session, actor, "account.reset", _target(username), detail)
            return link

        link = await self._commit(work)
        await self._sign_out(username)
        return link

    async def disable(self, actor: str, username: str) -> None:
        """The account can no longer sign in, and its open sessions end at once."""
        if username == actor:
            raise Conflict(_("you cannot disable your own account"), code="own_account")

        def work(session: Session) -> None:
            row = self._row(session, username)
            if row.disabled:
                raise Conflict(_("the account is already disabled"), code="already")
            row.disabled = True
            row.session_epoch += 1
            self._audit.write(session, actor, "account.disable", _target(username), {})

        await self._commit(work)
        ended = await self._sign_out(username)
        _LOGGER.info("account %s disabled by %s (%d sessions ended)", username, actor, ended)

    async def enable(self, actor: str, username: str) -> None:
        def work(session: Session) -> None:
            row = self._row(session, username)
            if not row.disabled:
                raise Conflict(_("the account is not disabled"), code="already")
            row.disabled = False
            self._audit.write(session, actor, "account.enable", _target(username), {})

        await self._commit(work)

    # -- the person with the link ----------------------------------------------------------
    async def set_password(self, token: str, password: str) -> str:
        """Set the password of the link's account (the link then stops working); returns
        the user name. Other sessions of that account end."""
        if not token or len(token) > 128:
            raise _link_gone()
        if len(password) > MAX_PASSWORD_LENGTH:
            raise Invalid(_("the password is too long"), code="password_long")
        digest = link_digest(token)

        def owner(session: Session) -> str:
            link = session.get(AccountLinkRow, digest)
            if link is None or link.expires_at <= utcnow():
                raise _link_gone()
            return link.username

        username = await asyncio.to_thread(self._read, owner)
        check_password(password, username, self._policy.min_password_length)
        new_hash = await asyncio.to_thread(hash_secret, password)

        def work(session: Session) -> str:
            link = session.get(AccountLinkRow, digest, with_for_update=True)
            if link is None or link.expires_at <= utcnow():
                raise _link_gone()  # used (or replaced) while we hashed
            row = self._row(session, link.username)
            if row.disabled:
                raise Conflict(_("this account is disabled"), code="disabled")
            row.password_hash = new_hash
            row.password_changed_at = utcnow()
            row.session_epoch += 1
            session.execute(delete(AccountLinkRow).where(AccountLinkRow.username == row.username))
            self._audit.write(
                session, row.username, "account.password", _target(row.username), {"via": "link"}
            )
            return row.username

        username = await self._commit(work)
        await self._sign_out(username)
        return username

    def _read(self, work: Callable[[Session], T]) -> T:
        with self._database.session() as session:
            return work(session)

    async def pending_links(self) -> dict[str, datetime]:
        """When each account's unused set-password link expires (for the admins' list)."""

        def read(session: Session) -> dict[str, datetime]:
            now = utcnow()
            return {
                link.username: link.expires_at
                for link in session.scalars(select(AccountLinkRow))
                if link.expires_at > now
            }

        return await asyncio.to_thread(self._read, read)


def _target(username: str) -> str:
    return f"user:{username}"


def _iso(link: IssuedLink) -> str:
    return link.expires_at.isoformat()


def _link_gone() -> NotFound:
    return NotFound(
        _("this link has expired or was already used; ask your admin for a new one"),
        code="link_gone",
    )
