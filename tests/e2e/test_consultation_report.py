"""The chair ends a consultation, writes and signs its report, and the report is in the
patient's records with a valid signature; its PDF holds the findings (real demo, Chromium)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from pypdf import PdfReader

from tests.helpers import running_demo

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
TIMEOUT = 20_000
FINDINGS = "Eczema of the left forearm, no infection — 左前臂湿疹，无感染"


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, demo_database: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("report-demo") / "state"
    with running_demo(state, PASSWORD, *demo_database) as info:
        yield info


def test_chair_ends_signs_and_the_report_is_in_the_records(
    demo: dict[str, Any], browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "end the consultation?"
    try:
        page.goto(demo["url"] + "/login")
        page.fill("#username", demo["username"])
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_url(demo["url"] + "/")
        page.click('li[data-cid="demo-consultation"] a.report')
        page.wait_for_selector("#report-form", state="visible")
        page.fill("#findings", FINDINGS)
        page.fill("#recommendation", "Emollient twice a day; review in four weeks.")
        page.wait_for_selector("#end-section", state="visible")  # still open: end it here
        page.click("#end")
        page.wait_for_selector("#end-section", state="hidden")
        page.fill("#password", "not my password")
        page.click("#sign")
        page.wait_for_function(
            "() => document.querySelector('#form-status').classList.contains('error')"
        )
        assert page.locator("#versions li").count() == 0
        page.fill("#password", PASSWORD)
        page.click("#sign")
        page.wait_for_selector('#versions li[data-version="1"]')

        page.goto(demo["url"] + "/records?patient=P-0001")
        page.wait_for_selector("#no-access", state="visible")
        page.fill("#access-reason", "the consultation's report")
        page.click("#request-edit")
        page.wait_for_selector("#records", state="visible")
        item = page.locator("#reports .report-item").first
        item.locator(".badge").wait_for()
        assert "signature valid" in item.locator(".badge").inner_text()
        assert FINDINGS in item.inner_text()
        href = item.locator("a", has_text="PDF").get_attribute("href")
        assert href is not None
        response = context.request.get(demo["url"] + href)
        assert response.status == 200
        text = PdfReader(io.BytesIO(response.body())).pages[0].extract_text()
        assert "左前臂湿疹，无感染" in text
    finally:
        context.close()
