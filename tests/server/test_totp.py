"""Two-factor sign-in (TOTP): a site requires it of admins; a wrong or replayed code is
refused; anyone may set it up for themselves, and then sign-in asks for the code."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from server.config import AccountsConfig
from server.directory.totp import STEP_S
from tests.records.api_helpers import PASSWORD, Site, audit_actions, records_config, running_site
from tests.server.test_accounts import browser, call, sign_in


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    config = config.model_copy(update={"accounts": AccountsConfig(totp_required_roles=["admin"])})
    async with running_site(config) as running:
        yield running


async def second_step(user: Any, path: str, body: dict[str, str]) -> tuple[int, Any]:
    resp = await user.http.post(user.url(path), json=body)
    answer = await resp.json()
    if resp.status == 200 and "csrf" in answer:
        user.csrf = answer["csrf"]
    return resp.status, answer


def code_at(secret: str, when: float) -> str:
    return pyotp.TOTP(secret).at(when)


async def test_an_admin_must_set_up_a_second_factor_then_give_codes(site: Site) -> None:
    root = await browser(site, "root")
    status, first = await sign_in(root, PASSWORD)
    assert status == 200 and first["second_factor"] == "enrol" and "csrf" not in first
    assert (await call(root, "GET", "/api/session"))[0] == 401  # nothing before the set-up
    pending = first["pending"]
    status, enrolment = await second_step(root, "/api/login/enrol", {"pending": pending})
    assert status == 200 and enrolment["uri"].startswith("otpauth://totp/")
    assert enrolment["svg"].lstrip().startswith("<svg")
    secret = enrolment["secret"]
    now = time.time()
    status, _ = await second_step(root, "/api/login/code", {"pending": pending, "code": "000000"})
    assert status == 401
    status, _ = await second_step(
        root, "/api/login/code", {"pending": pending, "code": code_at(secret, now)}
    )
    assert status == 200 and (await call(root, "GET", "/api/session"))[0] == 200
    assert "account.totp" in audit_actions(site.database, "root")

    # The next sign-in asks for a code; the one just used is refused (replay)
    again = await browser(site, "root")
    status, second = await sign_in(again, PASSWORD)
    assert second["second_factor"] == "code"
    used = {"pending": second["pending"], "code": code_at(secret, now)}
    assert (await second_step(again, "/api/login/code", used))[0] == 401
    wrong = {"pending": second["pending"], "code": "123456"}
    if wrong["code"] in (code_at(secret, now + d * STEP_S) for d in (-1, 0, 1)):
        wrong["code"] = "654321"
    assert (await second_step(again, "/api/login/code", wrong))[0] == 401
    later = {"pending": second["pending"], "code": code_at(secret, now + STEP_S)}
    assert (await second_step(again, "/api/login/code", later))[0] == 200
    assert (await call(again, "GET", "/api/session"))[0] == 200

    # that code again, or an older one: refused
    third = await browser(site, "root")
    status, body = await sign_in(third, PASSWORD)
    for code in (code_at(secret, now + STEP_S), code_at(secret, now)):
        attempt = {"pending": body["pending"], "code": code}
        assert (await second_step(third, "/api/login/code", attempt))[0] == 401
    failures = audit_actions(site.database, "root").count("login.failed")
    assert failures == 5  # the wrong first code, replay, wrong, replay, older


async def test_wrong_codes_are_throttled_like_passwords(site: Site) -> None:
    """Five wrong codes (the site's max_failed_logins): the pending sign-in is gone, and
    the password itself is now throttled from this address."""
    root = await browser(site, "root")
    _, first = await sign_in(root, PASSWORD)
    _, enrolment = await second_step(root, "/api/login/enrol", {"pending": first["pending"]})
    right = code_at(enrolment["secret"], time.time())
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        attempt = {"pending": first["pending"], "code": wrong}
        assert (await second_step(root, "/api/login/code", attempt))[0] == 401
    attempt = {"pending": first["pending"], "code": right}
    assert (await second_step(root, "/api/login/code", attempt))[0] == 401
    assert (await sign_in(root, PASSWORD))[0] == 429


async def test_the_password_does_not_wipe_the_count_of_wrong_codes(site: Site) -> None:
    now = [1000.0]
    site.state.throttle.clock = lambda: now[0]
    root = await browser(site, "root")
    _, first = await sign_in(root, PASSWORD)
    for _ in range(5):
        attempt = {"pending": first["pending"], "code": "x"}
        assert (await second_step(root, "/api/login/code", attempt))[0] == 401
    now[0] += 2  # the first lock (1 s) is over
    status, again = await sign_in(root, PASSWORD)
    assert status == 200 and again["second_factor"] == "enrol"
    attempt = {"pending": again["pending"], "code": "x"}
    assert (await second_step(root, "/api/login/code", attempt))[0] == 401
    assert (await sign_in(root, PASSWORD))[0] == 429  # six wrong codes: a longer lock


async def test_anyone_may_set_up_a_second_factor_for_themselves(site: Site) -> None:
    bob = await site.user("bob")  # not required of an expert: signed in with the password
    status, enrolment = await call(bob, "POST", "/api/account/totp")
    assert status == 200
    bad = await call(bob, "POST", "/api/account/totp/confirm", {"code": "12"})
    assert bad[0] == 400
    now = time.time()
    status, _ = await call(
        bob, "POST", "/api/account/totp/confirm", {"code": code_at(enrolment["secret"], now)}
    )
    assert status == 200
    fresh = await browser(site, "bob")
    _, body = await sign_in(fresh, PASSWORD)
    assert body["second_factor"] == "code"
    attempt = {"pending": body["pending"], "code": code_at(enrolment["secret"], now + STEP_S)}
    assert (await second_step(fresh, "/api/login/code", attempt))[0] == 200
    listing = await call(await second_admin(site), "GET", "/api/admin/accounts")
    assert next(a for a in listing[1]["accounts"] if a["username"] == "bob")["totp"] is True


async def second_admin(site: Site) -> Any:
    """An admin signed in through the required set-up (for the listing)."""
    root = await browser(site, "root")
    _, first = await sign_in(root, PASSWORD)
    _, enrolment = await second_step(root, "/api/login/enrol", {"pending": first["pending"]})
    code = code_at(enrolment["secret"], time.time())
    status, _ = await second_step(
        root, "/api/login/code", {"pending": first["pending"], "code": code}
    )
    assert status == 200
    return root


async def test_a_promotion_to_a_role_that_needs_a_second_factor_ends_the_session(
    site: Site,
) -> None:
    bob = await site.user("bob")
    root = await second_admin(site)
    assert (await call(bob, "GET", "/api/session"))[0] == 200
    status, _ = await call(root, "PATCH", "/api/admin/accounts/bob", {"role": "admin"})
    assert status == 200
    assert (await call(bob, "GET", "/api/session"))[0] == 401  # set it up first
    fresh = await browser(site, "bob")
    assert (await sign_in(fresh, PASSWORD))[1]["second_factor"] == "enrol"
