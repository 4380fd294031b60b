"""Issue 15, class 1: wrong passwords and device tokens cost the event loop nothing.

One source fires 100 wrong device tokens and 100 wrong passwords while an expert works
from another address. Argon2 (passwords, and device token hashes from older releases)
never runs on the event loop's thread and runs only as often as the throttle allows; a
current device token ("<device>.<secret>", stored as a keyed HMAC) costs no argon2 at
all. The expert's requests succeed, the attacked account can still sign in from its
own address and the appliances keep working.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

import server.auth
from tests.server.abuse_helpers import (
    LEGACY_TOKEN,
    abuse_config,
    browser_from,
    device_get,
    login,
    running,
)

ATTACKER = "127.0.0.2"
EXPERT = "127.0.0.1"
MAX_FAILED = 3


class CountingHasher(PasswordHasher):
    """The real argon2id hasher, noting which thread each verification ran on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.threads.append(threading.get_ident())
        return super().verify(hash, password)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(server.auth, "_HASHER", counting)
    return counting


async def test_floods_of_bad_credentials_leave_the_loop_free(
    tmp_path: Path, hasher: CountingHasher
) -> None:
    from server.device_tokens import issue_device_token

    issued = issue_device_token(tmp_path, "cam-new")
    config = abuse_config(
        tmp_path,
        [{"device_id": "cam-new", "clinic": "New Clinic", "token_hash": issued.token_hash}],
        max_failed_logins=MAX_FAILED,
    )
    loop_thread = threading.get_ident()
    async with (
        running(config) as site,
        browser_from(EXPERT) as expert,
        browser_from(ATTACKER) as attacker,
    ):
        status, _ = await login(expert, site, "bob")
        assert status == 200
        hasher.threads.clear()

        async def expert_works() -> list[int]:
            statuses = []
            for _ in range(40):
                resp = await expert.get(str(site.make_url("/api/session")))
                await resp.read()
                statuses.append(resp.status)
                await asyncio.sleep(0)
            return statuses

        bad: list[Any] = []
        for n in range(100):
            bad.append(device_get(attacker, site, "cam-new", f"cam-new.wrong-{n}"))
            bad.append(device_get(attacker, site, "cam-old", f"wrong-{n}"))
            bad.append(login(attacker, site, "alice" if n % 2 else f"user{n}", "wrong"))
        work, *answers = await asyncio.gather(expert_works(), *bad)

        assert work == [200] * 40  # the expert never noticed
        statuses = [a if isinstance(a, int) else a[0] for a in answers]
        assert set(statuses) <= {401, 429, 503} and 200 not in statuses
        # argon2 ran only off the loop, and only as often as the throttle allows:
        # a few per (account, address) pair, capped per address; none for cam-new.
        assert loop_thread not in hasher.threads
        assert len(hasher.threads) <= 2 * 10 * MAX_FAILED

        # The appliances and the attacked account still work from their own address.
        assert await device_get(expert, site, "cam-new", issued.token) == 404
        assert await device_get(expert, site, "cam-old", LEGACY_TOKEN) == 404
        status, _ = await login(expert, site, "alice")
        assert status == 200


async def test_a_current_device_token_costs_no_argon2(
    tmp_path: Path, hasher: CountingHasher
) -> None:
    from server.device_tokens import issue_device_token

    issued = issue_device_token(tmp_path, "cam-new")
    assert issued.token.startswith("cam-new.") and issued.token_hash.startswith("hmac-sha256$")
    config = abuse_config(
        tmp_path,
        [{"device_id": "cam-new", "clinic": "New Clinic", "token_hash": issued.token_hash}],
    )
    async with running(config) as site, browser_from(ATTACKER) as http:
        hasher.threads.clear()
        for n in range(100):
            assert await device_get(http, site, "cam-new", f"cam-new.wrong-{n}") == 401
        assert await device_get(http, site, "cam-new", issued.token) == 404
        # another device's valid token is not this device's
        other = issue_device_token(tmp_path, "cam-other")
        assert await device_get(http, site, "cam-new", other.token) == 401
        assert hasher.threads == []
