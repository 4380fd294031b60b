"""A consultation from request to end, in Chromium (issue 19): the clinic's nurse asks for
one from the lobby, the chair schedules it and invites two experts, both experts and the
clinic station join, the chair ends it, and the lobby shows it under "past"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.e2e.test_conference import _y4m
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, start_demo, stop_demo

pytestmark = pytest.mark.e2e

PASSWORD = "a day at the clinic"
SOON_JS = """() => {  // two minutes from now, as a datetime-local value in this browser's zone
  const d = new Date(Date.now() + 120000), p = (n) => String(n).padStart(2, '0');
  const day = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  return `${day}T${p(d.getHours())}:${p(d.getMinutes())}`;
}"""


@pytest.fixture()
def demo(tmp_path: Path, demo_database: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    proc, info = start_demo(tmp_path / "state", PASSWORD, "--experts", "3", *demo_database)
    try:
        yield info
    finally:
        if proc.poll() is None:
            stop_demo(proc, whole_group=True)


def _sign_in(browser: Any, url: str, user: str, path: str = "/") -> Any:
    page = browser.new_page()
    page.goto(f"{url}/login?next={path}")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_url(lambda u: urlparse(u).path == path)
    return page


def test_request_schedule_join_end_past(demo: dict[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url = demo["url"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        nurse = _sign_in(browser, url, "nurse")
        nurse.wait_for_selector("#ask-section:not([hidden])")
        nurse.fill("#ask-patient", "P-0001")
        nurse.select_option("#ask-appliance", "appliance-1")
        nurse.fill("#ask-reason", "Rash on the left forearm for two weeks")
        nurse.fill("#ask-specialty", "Dermatology")
        nurse.click("#ask-send")
        asked = nurse.locator("#requests li[data-state=requested]")
        asked.wait_for(timeout=20_000)
        cid = asked.get_attribute("data-cid")
        assert cid

        chair = _sign_in(browser, url, "demo")
        request = chair.locator(f"#requests li[data-cid='{cid}']")
        request.wait_for(timeout=20_000)
        request.locator("input.start").fill(chair.evaluate(SOON_JS))
        request.locator("input[value=expert2]").check()
        request.locator("input[value=expert3]").check()
        request.locator("button.schedule").click()
        chair.locator(f"#consultations li[data-cid='{cid}'][data-state=scheduled]").wait_for(
            timeout=20_000
        )

        experts = {}
        for user, colour in (("expert2", (0, 200, 0)), ("expert3", (0, 0, 255))):
            cam = _y4m(tmp_path / f"{user}.y4m", colour)
            own = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={cam}"],
            )
            lobby = _sign_in(own, url, user)
            join = lobby.locator(f"#consultations li[data-cid='{cid}'] a.join")
            join.wait_for(timeout=20_000)  # the invitation is in their lobby
            join.click()
            lobby.wait_for_url(lambda u: urlparse(u).path == f"/room/{cid}")
            lobby.wait_for_function(
                "() => document.getElementById('live').videoWidth > 0", timeout=60_000
            )
            experts[user] = (own, lobby)

        station = browser.new_page()
        station.goto(demo["station"])  # the appliance's kiosk: it joins the live one
        station.wait_for_function(
            "() => document.getElementById('experts').videoWidth > 0", timeout=60_000
        )
        for _own, room in experts.values():
            room.wait_for_function(
                "() => room && room.online.length === 2 && "
                "document.getElementById('station-status').textContent"
                ".startsWith('Clinic station: connected')",
                timeout=30_000,
            )

        chair.reload()
        chair.on("dialog", lambda dialog: dialog.accept())
        live = chair.locator(f"#consultations li[data-cid='{cid}'][data-state=live]")
        live.wait_for(timeout=20_000)
        live.locator("button.end").click()
        for _own, room in experts.values():
            room.wait_for_function(
                "() => document.getElementById('connection').textContent"
                " === 'This consultation has ended.'",
                timeout=20_000,
            )
        chair.locator(f"#past li[data-cid='{cid}'][data-state=ended]").wait_for(timeout=20_000)
        nurse.reload()
        nurse.locator(f"#past li[data-cid='{cid}'][data-state=ended]").wait_for(timeout=20_000)
        station.wait_for_function(
            "() => document.getElementById('status').textContent.includes('Waiting')",
            timeout=30_000,
        )
        for own, _room in experts.values():
            own.close()
        browser.close()
