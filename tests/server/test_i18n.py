"""Two languages: the reader's locale (own choice, cookie, browser, site), pages served in
it, error bodies translated, the choice stored with its audit entry, and the catalogue
check that CI runs."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from clinicam.i18n import CHINESE, ENGLISH, _, catalogue, environment_locale, negotiate, translate
from server.app import build_app
from server.audit.log import AuditEntry
from server.auth import hash_secret
from server.config import ServerConfig
from server.state import STATE

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {"alice": "alice-pw"}


def _config(state_dir: Path, language: str = "en") -> ServerConfig:
    return ServerConfig.model_validate(
        {
            "state_dir": str(state_dir),
            "language": language,
            "http": {"cookie_secure": False},
            "mqtt": {"port": 1, "username": "server", "password": "x"},
            "experts": [
                {"username": u, "display_name": u.title(), "password_hash": hash_secret(p)}
                for u, p in PASSWORDS.items()
            ],
        }
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(_config(tmp_path), asyncio.get_running_loop())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _login(client: TestClient[Any, Any], user: str = "alice") -> str:
    resp = await client.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    assert resp.status == 200
    return str((await resp.json())["csrf"])


def test_negotiation_order() -> None:
    assert negotiate("fr;q=1, zh-CN;q=0.8, en;q=0.5") == CHINESE
    assert negotiate("en-GB,en;q=0.9,zh;q=0.8") == ENGLISH
    assert negotiate("zh-TW") == CHINESE
    assert negotiate("en", chosen="zh-CN") == CHINESE  # the person's choice wins
    assert negotiate("de, fr", default="zh-CN") == CHINESE  # else the site's
    assert negotiate("zh;q=0, en;q=0.1") == ENGLISH  # q=0 means "not this"
    assert negotiate(None) == ENGLISH
    assert environment_locale({"LANG": "zh_CN.UTF-8"}) == CHINESE
    assert environment_locale({"LANG": "C.UTF-8"}) == ENGLISH
    assert environment_locale({"LANG": "zh_CN.UTF-8", "CLINICAM_LANG": "en"}) == ENGLISH


def test_a_marked_message_is_english_until_rendered_and_survives_pickling() -> None:
    message = _("language not offered: {locale}", locale="fr")
    assert message == "language not offered: fr"
    assert translate(message, CHINESE) == "不支持该语言：fr"
    assert translate(pickle.loads(pickle.dumps(message)), CHINESE) == "不支持该语言：fr"
    assert translate("plain", CHINESE) == "plain"
    assert catalogue(ENGLISH) == {}
    assert all(catalogue(CHINESE).values())


async def test_pages_speak_the_browsers_language(client: TestClient[Any, Any]) -> None:
    zh = await client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert zh.status == 200 and '<html lang="zh-CN">' in await zh.text()
    assert zh.headers["Content-Language"] == CHINESE
    en = await client.get("/login", headers={"Accept-Language": "en-US"})
    assert '<html lang="en">' in await en.text()


async def test_errors_are_answered_in_the_readers_language(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/login",
        data=b"{not json",
        headers={"Content-Type": "application/json", "Accept-Language": "zh-CN"},
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "请求内容不是有效的 JSON"
    resp = await client.post(
        "/api/login", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (await resp.json())["error"] == "body is not valid JSON"


async def test_the_choice_sticks_for_the_person_and_is_audited(
    client: TestClient[Any, Any],
) -> None:
    csrf = await _login(client)
    refused = await client.post(
        "/api/locale", json={"locale": "fr"}, headers={"X-CSRF-Token": csrf}
    )
    assert refused.status == 400
    no_token = await client.post("/api/locale", json={"locale": "zh-CN"})
    assert no_token.status == 403
    chosen = await client.post(
        "/api/locale", json={"locale": "zh-CN"}, headers={"X-CSRF-Token": csrf}
    )
    assert chosen.status == 200 and (await chosen.json())["stored"] is True
    client.session.cookie_jar.clear_domain("127.0.0.1")  # the cookie is not what holds it
    csrf = await _login(client)
    page = await client.get("/", headers={"Accept-Language": "en-US"})
    assert '<html lang="zh-CN">' in await page.text()
    state = client.server.app[STATE]
    with state.database.session() as session:
        entries = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "account.language"))
        )
    assert [(e.actor, e.detail["to"]) for e in entries] == [("alice", "zh-CN")]


async def test_before_signing_in_the_choice_is_a_cookie(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/api/locale", json={"locale": "zh-CN"})
    assert resp.status == 200 and (await resp.json())["stored"] is False
    page = await client.get("/login", headers={"Accept-Language": "en"})
    assert '<html lang="zh-CN">' in await page.text()
    info = await (await client.get("/api/locale")).json()
    assert info["locale"] == CHINESE and set(info["offered"]) == {CHINESE, ENGLISH}


def test_the_catalogue_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "i18n_check.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
