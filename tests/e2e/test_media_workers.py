"""Two media workers behind one web front, in Chromium: two consultations land on
different workers; SIGKILL one; its room page reconnects by itself through the front and
its video flows again from the other worker, while the other page's never stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis

from tests.cluster.conftest import RedisServer
from tests.cluster.site import PASSWORD, Site

pytestmark = pytest.mark.e2e

FRAMES_JS = "() => document.getElementById('live').getVideoPlaybackQuality().totalVideoFrames"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Site, redis.Redis]]:
    server = RedisServer(tmp_path)
    server.start()
    (tmp_path / "site").mkdir()
    running = Site(tmp_path / "site", server.url)
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        running.start()
        yield running, client
    finally:
        client.close()
        running.stop()
        server.stop()


def _room(browser: Any, site: Site, username: str, cid: str) -> Any:
    page = browser.new_page()
    page.goto(f"{site.front.base}/login?next=/room/{cid}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_url(lambda url: urlparse(url).path == f"/room/{cid}")
    page.wait_for_function(f"() => ({FRAMES_JS})() > 5", timeout=30_000)
    return page


def test_a_room_page_comes_back_by_itself_after_its_worker_is_killed(
    site: tuple[Site, redis.Redis], browser: Any
) -> None:
    running, leases = site
    alice = _room(browser, running, "alice", "c1")
    bob = _room(browser, running, "bob", "c2")
    try:
        first, second = leases.get("site:lease:cam-1"), leases.get("site:lease:cam-2")
        assert first and second and first != second, (first, second)
        bob_before = bob.evaluate(FRAMES_JS)
        running.worker(first).kill()
        killed = time.monotonic()
        alice.wait_for_function(
            "() => /reconnect/i.test(document.getElementById('connection').textContent)",
            timeout=15_000,
        )  # the expert is told what is happening
        alice.wait_for_function(
            "() => document.getElementById('connection').textContent === ''", timeout=45_000
        )
        before = alice.evaluate(FRAMES_JS)
        alice.wait_for_function(f"() => ({FRAMES_JS})() > {before + 15}", timeout=30_000)
        print(f"the page's video flowed again {time.monotonic() - killed:.1f} s after the kill")
        assert leases.get("site:lease:cam-1") == second
        assert bob.evaluate(FRAMES_JS) > bob_before + 15  # the other room went on
    finally:
        alice.close()
        bob.close()
