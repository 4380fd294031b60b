"""Signing in with a required second factor, in Chromium against a real server process:
an admin without one sets it up on the sign-in page (QR code and key), signs in with the
first code, and the next sign-in asks for a code; a wrong one is refused on the page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from server.auth import hash_secret
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "amber kite over water"
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 15_000  # ms


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("two-factor")
    port = free_port()
    config = folder / "server.toml"
    config.write_text(
        f"""state_dir = "{folder / "state"}"
[http]
port = {port}
cookie_secure = false
[mqtt]
port = 1
username = "server"
password = "x"
[accounts]
totp_required_roles = ["admin"]
[[experts]]
username = "root"
display_name = "Root"
role = "admin"
password_hash = "{hash_secret(PASSWORD)}"
"""
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clinicam_app", "server", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            try:
                with urllib.request.urlopen(url + "/login", timeout=5) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        wait_until(up, 60, "the server to start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _password_step(page: Any, url: str) -> None:
    page.goto(url + "/login")
    page.wait_for_selector("#language")  # the page's code runs
    page.fill("#username", "root")
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector("#code", state="visible")


def test_an_admin_sets_up_and_then_uses_a_second_factor(server: str, browser: Any) -> None:
    context = browser.new_context(locale="en-GB")
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    try:
        _password_step(page, server)
        assert page.is_visible("#enrol-qr")
        assert page.evaluate("() => document.getElementById('enrol-qr').naturalWidth") > 0
        secret = page.inner_text("#enrol-secret").strip()
        totp = pyotp.TOTP(secret)
        now = time.time()
        page.fill("#code", totp.at(now))
        page.click("#login-button")
        page.wait_for_url(server + "/")
        page.goto(server + "/admin")
        page.wait_for_selector("#accounts tr[data-account=root]")
        assert "on" in page.inner_text("#accounts tr[data-account=root]")
        context.clear_cookies()

        _password_step(page, server)
        assert not page.is_visible("#enrol-qr")  # set up already: only the code
        page.fill("#code", "000000" if totp.at(now + 30) != "000000" else "111111")
        page.click("#login-button")
        page.wait_for_function("() => document.getElementById('login-error').textContent !== ''")
        assert page.url.endswith("/login")
        page.fill("#code", totp.at(now + 30))  # the next step's code (the first is used)
        page.click("#login-button")
        page.wait_for_url(server + "/")
    finally:
        context.close()
