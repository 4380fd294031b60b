"""Fixtures: real servers on loopback, simulated hardware, a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clinicam.broker import BrokerUser, MosquittoBroker
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, free_port


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto with a server user and two device users."""
    users = [
        BrokerUser("server", "server-pw", is_server=True),
        BrokerUser("cam-a", "cam-a-pw"),
        BrokerUser("cam-b", "cam-b-pw"),
    ]
    instance = MosquittoBroker(tmp_path / "broker", users, host="127.0.0.1", port=free_port())
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never a downloaded browser).

    Module-scoped: sync Playwright runs its own event loop, which must be gone before
    the asyncio tests of other modules start.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
