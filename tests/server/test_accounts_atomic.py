"""The account desk's changes commit with their audit entry or not at all: with the audit
log failing, nothing changes (no account, no password, no disabling, no second factor)
and no session ends; with it working, both the change and its entry are there."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pyotp
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.auth import SessionStore, hash_secret
from server.config import AccountsConfig, ServerConfig
from server.db import Database, open_database
from server.directory.accounts import AccountChanges, AccountDesk, NewAccount
from server.directory.book import Directory
from server.directory.models import AccountLinkRow, AccountRow
from server.directory.second_factor import TotpDesk
from server.directory.seed import import_config


class AuditDown(Exception):
    """The audit log cannot be written."""


class FlakyAudit(AuditTrail):
    fail = False

    def write(
        self,
        session: Session,
        actor: str,
        action: str,
        target: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        if self.fail:
            raise AuditDown(action)
        super().write(session, actor, action, target, detail)


class Desks:
    def __init__(self, tmp_path: Path) -> None:
        self.database: Database = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
        digest = hash_secret("correct horse battery")
        config = ServerConfig.model_validate(
            {
                "state_dir": str(tmp_path),
                "experts": [
                    {"username": u, "display_name": u, "password_hash": digest, "role": r}
                    for u, r in (("root", "admin"), ("bob", "expert"), ("eve", "expert"))
                ],
                "devices": [{"device_id": "cam-1", "clinic": "Hill", "token_hash": digest}],
            }
        )
        self.audit = FlakyAudit(self.database)
        import_config(config, self.database, self.audit)
        self.directory = Directory(self.database)
        self.sessions = SessionStore(idle_s=600)
        policy = AccountsConfig()
        self.accounts = AccountDesk(
            self.database, self.audit, self.directory, self.sessions, policy
        )
        self.totp = TotpDesk(self.database, self.audit, self.directory, policy)

    def snapshot(self) -> tuple[Any, ...]:
        with self.database.session() as session:
            rows = tuple(
                (r.username, r.display_name, r.role, r.clinic, r.password_hash, r.disabled,
                 r.session_epoch, r.totp_secret)
                for r in session.scalars(select(AccountRow).order_by(AccountRow.username))
            )  # fmt: skip
            links = session.scalar(select(func.count()).select_from(AccountLinkRow))
            entries = session.scalar(select(func.count()).select_from(AuditEntry))
        return rows, links, entries


@pytest.fixture
def desks(tmp_path: Path) -> Desks:
    return Desks(tmp_path)


async def _link_token(desks: Desks) -> str:
    return (await desks.accounts.reset("root", "eve")).token


async def _confirm_totp(desks: Desks) -> None:
    secret = desks.totp.start_enrolment("bob").secret
    await desks.totp.confirm("bob", pyotp.TOTP(secret).at(time.time()))


CHANGES: dict[str, Callable[[Desks], Awaitable[Any]]] = {
    "create": lambda d: d.accounts.create(
        "root", NewAccount(username="li", display_name="Li", role="clinic", clinic="Hill")
    ),
    "change": lambda d: d.accounts.change("root", "bob", AccountChanges(role="chair")),
    "reset": lambda d: d.accounts.reset("root", "bob", clear_totp=True),
    "disable": lambda d: d.accounts.disable("root", "bob"),
    "totp": _confirm_totp,
}


@pytest.mark.parametrize("name", sorted(CHANGES))
async def test_a_change_and_its_audit_entry_commit_together(desks: Desks, name: str) -> None:
    token, _ = desks.sessions.create("bob")
    before = desks.snapshot()
    desks.audit.fail = True
    with pytest.raises(AuditDown):
        await CHANGES[name](desks)
    assert desks.snapshot() == before
    assert desks.sessions.get(token) is not None  # nothing ended
    desks.audit.fail = False
    await CHANGES[name](desks)
    after = desks.snapshot()
    assert after[0] != before[0] and after[2] == before[2] + 1


async def test_setting_a_password_and_enabling_commit_with_their_entries(desks: Desks) -> None:
    token = await _link_token(desks)
    await desks.accounts.disable("root", "bob")
    before = desks.snapshot()
    desks.audit.fail = True
    with pytest.raises(AuditDown):
        await desks.accounts.set_password(token, "a long new secret")
    with pytest.raises(AuditDown):
        await desks.accounts.enable("root", "bob")
    assert desks.snapshot() == before
    desks.audit.fail = False
    assert await desks.accounts.set_password(token, "a long new secret") == "eve"
    await desks.accounts.enable("root", "bob")
    assert desks.snapshot()[2] == before[2] + 2
    assert desks.directory.expert("bob") is not None
