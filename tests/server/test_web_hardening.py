"""Issue 15, class 8: login CSRF, security headers on every response, login throttling
that does not lock out everyone behind one clinic router."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from tests.server.abuse_helpers import abuse_config, browser_from, login, running

SECURITY_HEADERS = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
)


@pytest.fixture
async def site(tmp_path: Path) -> object:
    async with running(abuse_config(tmp_path, [], max_failed_logins=3)) as server:
        yield server


async def _post_login(http: ClientSession, site: TestServer, **kwargs: object) -> tuple[int, bool]:
    resp = await http.post(str(site.make_url("/api/login")), **kwargs)  # type: ignore[arg-type]
    await resp.read()
    return resp.status, "clinicam_session" in resp.cookies


async def test_a_cross_site_form_cannot_log_the_browser_in(site: TestServer) -> None:
    body = '{"username": "alice", "password": "alice-pw"}'
    async with browser_from("127.0.0.1") as http:
        # a <form enctype="text/plain"> on another site: no preflight, body looks like JSON
        status, cookie = await _post_login(
            http, site, data=body, headers={"Content-Type": "text/plain"}
        )
        assert (status, cookie) == (415, False)
        for headers in (
            {"Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ):
            status, cookie = await _post_login(
                http, site, data=body, headers={"Content-Type": "application/json", **headers}
            )
            assert (status, cookie) == (403, False), headers
        # the login page itself: same origin
        own = f"http://{site.host}:{site.port}"
        status, cookie = await _post_login(
            http,
            site,
            data=body,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Origin": own,
                "Sec-Fetch-Site": "same-origin",
            },
        )
        assert (status, cookie) == (200, True)


async def test_unauthenticated_posts_from_other_sites_are_refused(site: TestServer) -> None:
    async with browser_from("127.0.0.1") as http:
        resp = await http.post(
            str(site.make_url("/api/appliances/cam-old/stream")),
            data="x",
            headers={"Origin": "https://evil.example", "Content-Type": "text/plain"},
        )
        assert resp.status == 403


async def test_every_response_carries_the_security_headers(site: TestServer) -> None:
    async with browser_from("127.0.0.1") as http, browser_from("127.0.0.1") as bob:
        assert (await login(bob, site, "bob"))[0] == 200
        answers = {
            "redirect": await http.get(str(site.make_url("/room/c1")), allow_redirects=False),
            "404": await bob.get(str(site.make_url("/no/such/page"))),
            "405 signed in": await bob.get(str(site.make_url("/api/logout"))),
            "static 404": await http.get(str(site.make_url("/static/no-such.js"))),
            "405": await http.delete(str(site.make_url("/api/login"))),
            "401": await http.get(str(site.make_url("/api/session"))),
            "page": await http.get(str(site.make_url("/login"))),
        }
        assert answers["redirect"].status == 302
        assert answers["404"].status == 404 and answers["static 404"].status == 404
        assert answers["405"].status == 405 and answers["405 signed in"].status == 405
        for what, resp in answers.items():
            missing = [h for h in SECURITY_HEADERS if h not in resp.headers]
            assert not missing, f"{what} ({resp.status}) lacks {missing}"
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


async def test_one_attacker_behind_the_clinic_router_locks_out_no_one_else(
    site: TestServer,
) -> None:
    async with (
        browser_from("127.0.0.2") as attacker,
        browser_from("127.0.0.2") as colleague,
        browser_from("127.0.0.1") as alice_at_home,
    ):
        answers = [(await login(attacker, site, "alice", "guess"))[0] for _ in range(6)]
        assert answers == [401] * 3 + [429] * 3  # this pair is throttled
        # alice from her own address and bob behind the same router are not
        assert (await login(alice_at_home, site, "alice"))[0] == 200
        assert (await login(colleague, site, "bob"))[0] == 200


async def test_looser_caps_per_address_and_per_account(site: TestServer) -> None:
    async with browser_from("127.0.0.3") as sprayer, browser_from("127.0.0.1") as elsewhere:
        # one address guessing many names: stopped by the per-address cap (10 × 3)
        answers = [(await login(sprayer, site, f"name{n}", "guess"))[0] for n in range(40)]
        assert answers[:30] == [401] * 30 and set(answers[30:]) == {429}
        assert (await login(sprayer, site, "bob"))[0] == 429
        assert (await login(elsewhere, site, "bob"))[0] == 200
    # one account guessed from many addresses: stopped by the per-account cap (4 × 3)
    statuses = []
    for n in range(6):
        async with browser_from(f"127.0.1.{n + 1}") as http:
            statuses += [(await login(http, site, "carol", "guess"))[0] for _ in range(3)]
    assert statuses[:12] == [401] * 12 and set(statuses[12:]) == {429}
