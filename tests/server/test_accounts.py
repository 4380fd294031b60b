"""Accounts managed from /admin: a new account's one-time link, the password policy,
disabling and resetting, every change audited (and nothing audited when it fails)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar, WSCloseCode, WSMsgType, WSServerHandshakeError

from tests.records.api_helpers import (
    PASSWORD,
    Site,
    User,
    audit_actions,
    records_config,
    running_site,
)

NEW_PASSWORD = "violet tram at dusk"


@pytest.fixture
async def site(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    async with running_site(records_config(tmp_path, database_url)) as running:
        yield running


async def browser(site: Site, name: str) -> User:
    """A browser that has not signed in yet."""
    user = User(name, ClientSession(cookie_jar=CookieJar(unsafe=True)), site.server)
    site.users[f"{name}#{len(site.users)}"] = user  # closed with the site
    return user


async def sign_in(user: User, password: str) -> tuple[int, dict[str, Any]]:
    resp = await user.http.post(
        user.url("/api/login"), json={"username": user.name, "password": password}
    )
    body: dict[str, Any] = await resp.json()
    if resp.status == 200 and "csrf" in body:
        user.csrf = body["csrf"]
    return resp.status, body


async def call(user: User, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    resp = await user.request(method, path, **({} if body is None else {"json": body}))
    return resp.status, await resp.json()


def token_of(link: str) -> str:
    page, _, fragment = link.partition("#token=")
    assert page == "/set-password" and fragment
    return fragment


async def create_nurse(root: User) -> str:
    status, body = await call(
        root,
        "POST",
        "/api/admin/accounts",
        {
            "username": "nurse",
            "display_name": "Nurse Li",
            "role": "clinic",
            "clinic": "Hill Clinic",
            "email": "li@hill.example",
            "time_zone": "Asia/Shanghai",
        },
    )
    assert status == 201, body
    return token_of(body["link"])


async def set_password(site: Site, token: str, password: str) -> tuple[int, Any]:
    anyone = await browser(site, "anyone")
    resp = await anyone.http.post(
        anyone.url("/api/account/password"), json={"token": token, "password": password}
    )
    return resp.status, await resp.json()


async def test_a_new_account_sets_its_password_by_the_link_then_signs_in(site: Site) -> None:
    root = await site.user("root")
    token = await create_nurse(root)
    nurse = await browser(site, "nurse")
    assert (await sign_in(nurse, PASSWORD))[0] == 401  # no password yet that anyone knows
    page = await nurse.http.get(nurse.url("/set-password"))
    assert page.status == 200 and "set_password.js" in await page.text()

    status, body = await set_password(site, token, NEW_PASSWORD)
    assert status == 200 and body == {"user": "nurse"}
    status, _ = await sign_in(nurse, NEW_PASSWORD)
    assert status == 200
    status, session = await call(nurse, "GET", "/api/session")
    assert session["role"] == "clinic" and session["stations"][0]["device"] == "cam-1"
    # the link worked once
    assert (await set_password(site, token, "another long secret"))[0] == 404

    status, listing = await call(root, "GET", "/api/admin/accounts")
    mine = next(a for a in listing["accounts"] if a["username"] == "nurse")
    assert mine["time_zone"] == "Asia/Shanghai" and mine["link_expires"] is None
    assert listing["clinics"] == ["Hill Clinic"]
    actions = audit_actions(site.database)
    assert "account.create" in actions and "account.password" in actions


async def test_only_admins_manage_accounts(site: Site) -> None:
    alice = await site.user("alice")
    assert (await call(alice, "GET", "/api/admin/accounts"))[0] == 403
    status, _ = await call(alice, "POST", "/api/admin/accounts/bob/disable")
    assert status == 403
    assert "account.disable" not in audit_actions(site.database)


async def test_the_password_policy_refuses_weak_passwords(site: Site) -> None:
    root = await site.user("root")
    token = await create_nurse(root)
    for weak, code in [
        ("short1", "password_short"),
        ("my name is nurse!", "password_username"),
        ("Password123", "password_common"),
        ("aaaaaaaaaaaa", "password_common"),
    ]:
        status, body = await set_password(site, token, weak)
        assert (status, body.get("code")) == (400, code), (weak, body)
    assert "account.password" not in audit_actions(site.database)
    assert (await set_password(site, token, NEW_PASSWORD))[0] == 200  # the link still works


async def test_bad_accounts_are_refused_and_nothing_is_audited(site: Site) -> None:
    root = await site.user("root")
    before = audit_actions(site.database)
    base = {"username": "vet", "display_name": "Vet", "role": "expert"}
    refused = [
        ({**base, "username": "bob"}, 409),  # taken
        ({**base, "role": "clinic"}, 400),  # clinic staff need a clinic
        ({**base, "role": "clinic", "clinic": "Nowhere"}, 400),  # no appliance there
        ({**base, "clinic": "Hill Clinic"}, 400),  # an expert has no clinic
        ({**base, "time_zone": "Mars/Olympus"}, 400),
        ({**base, "email": "not-an-address"}, 400),
        ({**base, "role": "janitor"}, 400),
    ]
    for body, expected in refused:
        status, answer = await call(root, "POST", "/api/admin/accounts", body)
        assert status == expected, (body, answer)
    assert (await call(root, "POST", "/api/admin/accounts/root/disable"))[0] == 409  # oneself
    assert (await call(root, "PATCH", "/api/admin/accounts/root", {"role": "expert"}))[0] == 409
    assert (await call(root, "POST", "/api/admin/accounts/ghost/reset"))[0] == 404
    assert audit_actions(site.database) == before


async def test_disabling_ends_an_open_session_at_once(site: Site) -> None:
    root, bob = await site.user("root"), await site.user("bob")
    assert (await call(bob, "GET", "/api/session"))[0] == 200
    room = await bob.http.ws_connect(bob.url("/api/consultations/c1/ws"))
    assert (await room.receive_json(timeout=10))["type"]  # in the room
    assert (await call(root, "POST", "/api/admin/accounts/bob/disable"))[0] == 200
    assert (await call(bob, "GET", "/api/session"))[0] == 401
    while (message := await room.receive(timeout=10)).type == WSMsgType.TEXT:
        pass  # room news sent before the end
    assert message.type == WSMsgType.CLOSE and message.data == WSCloseCode.POLICY_VIOLATION
    with pytest.raises(WSServerHandshakeError) as refused:
        await bob.http.ws_connect(bob.url("/api/consultations/c1/ws"))
    assert refused.value.status == 401
    again = await browser(site, "bob")
    assert (await sign_in(again, PASSWORD))[0] == 401
    assert (await call(root, "POST", "/api/admin/accounts/bob/disable"))[0] == 409
    assert (await call(root, "POST", "/api/admin/accounts/bob/enable"))[0] == 200
    assert (await sign_in(again, PASSWORD))[0] == 200
    actions = audit_actions(site.database, "root")
    assert actions.count("account.disable") == 1 and actions.count("account.enable") == 1


async def test_a_reset_stops_the_old_password_and_gives_a_new_link(site: Site) -> None:
    root, carol = await site.user("root"), await site.user("carol")
    status, body = await call(root, "POST", "/api/admin/accounts/carol/reset")
    assert status == 200
    assert (await call(carol, "GET", "/api/session"))[0] == 401  # her session ended
    fresh = await browser(site, "carol")
    assert (await sign_in(fresh, PASSWORD))[0] == 401
    assert (await set_password(site, token_of(body["link"]), NEW_PASSWORD))[0] == 200
    assert (await sign_in(fresh, NEW_PASSWORD))[0] == 200
    assert "account.reset" in audit_actions(site.database, "root")


async def test_an_admin_changes_role_name_and_clinic(site: Site) -> None:
    root = await site.user("root")
    status, body = await call(
        root, "PATCH", "/api/admin/accounts/carol", {"role": "clinic", "clinic": "Hill Clinic"}
    )
    assert status == 200 and body["role"] == "clinic" and body["clinic"] == "Hill Clinic"
    status, body = await call(
        root, "PATCH", "/api/admin/accounts/carol", {"role": "chair", "display_name": "Dr Carol"}
    )
    assert status == 200 and (body["role"], body["clinic"]) == ("chair", None)
    assert site.state.directory.expert("carol").display_name == "Dr Carol"  # type: ignore[union-attr]
    assert audit_actions(site.database, "root").count("account.change") == 2
