"""Clinic staff register a patient from the lobby's link, with consent, and find them (issue
19 item 2), in a real browser against the demo; the page has no WCAG 2.1 AA violation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_accessibility import _sign_in, _violations
from tests.helpers import running_demo

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
TIMEOUT = 15_000


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, demo_database: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("clinic-demo") / "state"
    with running_demo(state, PASSWORD, *demo_database) as info:
        yield info


def test_clinic_staff_register_a_patient_and_find_them(demo: dict[str, Any], browser: Any) -> None:
    context = browser.new_context(  # a tablet at the clinic; axe-core injected (CSP bypassed)
        viewport={"width": 1024, "height": 768}, locale="zh-CN", bypass_csp=True
    )
    context.set_default_timeout(TIMEOUT)
    try:
        page = context.new_page()
        _sign_in(page, demo, "nurse")
        page.click("#clinic-link")
        page.wait_for_url(demo["url"] + "/clinic")
        page.wait_for_selector("#register-form")
        assert page.get_attribute("html", "lang") == "zh-CN"
        assert page.is_hidden("#reg-clinic-field")  # staff register for their own clinic
        page.fill("#reg-identifier", "T-2026-001")
        page.fill("#reg-name", "王芳")
        page.select_option("#reg-sex", "female")
        page.fill("#reg-birth", "1958-07-01")
        page.check("#reg-consent-export")
        page.click("#register")
        page.wait_for_selector("#results tr")
        assert "T-2026-001" in page.inner_text("#status")
        assert "王芳" in page.inner_text("#results")
        page.fill("#reg-identifier", "T-2026-001")  # the same identifier again
        page.fill("#reg-name", "李娜")
        page.fill("#reg-birth", "1970-01-01")
        page.click("#register")
        page.wait_for_selector("#status.error")
        assert "T-2026-001" in page.inner_text("#status")
        page.fill("#search-q", "芳")
        page.click("#search")
        page.wait_for_function(
            "() => document.querySelectorAll('#results tr').length === 1"
            " && document.querySelector('#results').innerText.includes('王芳')"
        )
        assert _violations(page) == []
    finally:
        context.close()
