"""Accounts in Chromium against a real server process: an admin without the required second
factor sets it up on the sign-in page (QR code and key), signs in with the first code, and
the next sign-in asks for a code (a wrong one refused on the page); the admin creates an
account on /admin, whose one-time link sets its password. The pages pass axe (WCAG AA)."""

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
AXE = ROOT / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
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


def _violations(page: Any) -> list[str]:
    assert AXE.is_file(), "axe-core is missing: ./install.sh --role dev installs it (npm ci)"
    page.add_script_tag(path=str(AXE))
    return list(
        page.evaluate(
            "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
            ".violations.map(v => `${v.id}: ${v.help} — ` + v.nodes.slice(0, 4)"
            ".map(n => n.target.join(' ')).join(', '))",
            TAGS,
        )
    )


def _password_step(page: Any, url: str, user: str = "root", password: str = PASSWORD) -> None:
    page.goto(url + "/login")
    page.wait_for_selector("#language")  # the page's code runs
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login-button")


def test_an_admin_sets_up_a_second_factor_and_creates_an_account(server: str, browser: Any) -> None:
    context = browser.new_context(locale="en-GB", bypass_csp=True)  # bypass: axe
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    try:
        _password_step(page, server)
        page.wait_for_selector("#code", state="visible")
        assert page.is_visible("#enrol-qr")
        assert page.evaluate("() => document.getElementById('enrol-qr').naturalWidth") > 0
        assert _violations(page) == []
        secret = page.inner_text("#enrol-secret").strip()
        totp = pyotp.TOTP(secret)
        now = time.time()
        page.fill("#code", totp.at(now))
        page.click("#login-button")
        page.wait_for_url(server + "/")

        # /admin: the new account, and its one-time link
        page.goto(server + "/admin")
        page.wait_for_selector("#accounts tr[data-account=root]")
        assert "on" in page.inner_text("#accounts tr[data-account=root]")
        page.fill("#account-username", "wang")
        page.fill("#account-name", "Dr Wang")
        page.select_option("#account-role", "expert")
        page.fill("#account-zone", "Asia/Shanghai")
        page.click("#account-submit")
        page.wait_for_selector("#accounts tr[data-account=wang]")
        link = page.input_value("#account-link")
        assert "/set-password#token=" in link
        assert "waiting for a password" in page.inner_text("#accounts tr[data-account=wang]")
        assert _violations(page) == []

        newcomer = browser.new_context(locale="en-GB", bypass_csp=True).new_page()
        newcomer.set_default_timeout(TIMEOUT)
        newcomer.goto(link)
        newcomer.wait_for_selector("#language")
        assert "#" not in newcomer.url  # the token left the address bar
        newcomer.fill("#password", "wang")  # too short, and the user name
        newcomer.fill("#password-again", "wang")
        newcomer.click("#password-button")
        newcomer.wait_for_function(
            "() => document.getElementById('password-error').textContent !== ''"
        )
        newcomer.fill("#password", "river stones in spring")
        newcomer.fill("#password-again", "river stones in spring")
        newcomer.click("#password-button")
        newcomer.wait_for_selector("#password-done", state="visible")
        assert _violations(newcomer) == []
        newcomer.click("#password-done a")
        _password_step(newcomer, server, "wang", "river stones in spring")
        newcomer.wait_for_url(server + "/")  # an expert: no second factor asked
        newcomer.context.close()

        # the admin's next sign-in asks for a code; a wrong one is refused on the page
        context.clear_cookies()
        _password_step(page, server)
        page.wait_for_selector("#code", state="visible")
        assert not page.is_visible("#enrol-qr")
        page.fill("#code", "000000" if totp.at(now + 30) != "000000" else "111111")
        page.click("#login-button")
        page.wait_for_function("() => document.getElementById('login-error').textContent !== ''")
        assert page.url.endswith("/login")
        page.fill("#code", totp.at(now + 30))  # the next step's code (the first is used)
        page.click("#login-button")
        page.wait_for_url(server + "/")
    finally:
        context.close()
