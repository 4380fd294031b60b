"""Two languages in a real browser against the real demo (issue 17).

A browser that asks for Chinese (Accept-Language zh-CN) gets the sign-in page and the
lobby in Chinese; the language switch changes to English, and that choice is the
person's: after signing out, a fresh Chinese browser signing in as the same person sees
English, while another person in a Chinese browser still sees Chinese.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import demo_info, launch_demo, stop_demo

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
TIMEOUT = 15_000  # ms


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("languages") / "state"
    proc = launch_demo(state, PASSWORD, log=state.parent / "demo.log")
    try:
        yield demo_info(proc, state)
    finally:
        if proc.poll() is None:
            stop_demo(proc, whole_group=True)


def _chinese_page(browser: Any) -> Any:
    """A fresh browser context (own cookies) whose Accept-Language is zh-CN."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 720})
    context.set_default_timeout(TIMEOUT)
    return context.new_page()


def _sign_in(page: Any, demo: dict[str, Any], user: str) -> None:
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_url(demo["url"] + "/")
    _wait_for_lobby(page)


def _wait_for_lobby(page: Any) -> None:
    """Until the lobby shows who is signed in (its code runs once the catalogue is applied)."""
    page.wait_for_function("() => document.getElementById('who').textContent !== ''")


def _open_login(page: Any, demo: dict[str, Any]) -> None:
    page.goto(demo["url"] + "/login")
    page.wait_for_selector("#language")  # mounted once the catalogue is loaded and applied


def _language(page: Any) -> str:
    return str(page.evaluate("() => document.documentElement.lang"))


def test_chinese_browser_switches_to_english_and_it_sticks(
    demo: dict[str, Any], browser: Any
) -> None:
    user = demo["username"]
    page = _chinese_page(browser)
    try:
        _open_login(page, demo)
        assert _language(page) == "zh-CN"
        assert page.inner_text("#login-button") == "登录"
        assert page.inner_text("label[for=username]") == "用户名"
        assert page.title() == "Clinicam — 登录"
        assert page.input_value("#language") == "zh-CN"

        _sign_in(page, demo, user)
        assert _language(page) == "zh-CN"
        assert page.inner_text("header h1") == "Clinicam — 我的会诊"
        assert page.inner_text("#logout") == "退出登录"
        assert page.inner_text("#consultations a.join").strip() == "加入"
        assert "患者" in page.inner_text("#consultations li")

        # the records page too, including the texts its code writes
        page.goto(demo["url"] + "/records?patient=P-0001")
        page.wait_for_selector("#no-access", state="visible")
        assert page.inner_text("#no-access-title") == "无权查看 P-0001 的病历"
        assert page.inner_text("#request-view") == "申请查看权限"
        page.goto(demo["url"] + "/")
        _wait_for_lobby(page)

        with page.expect_navigation():  # the switch stores the choice and reloads
            page.select_option("#language", "en")
        _wait_for_lobby(page)
        assert _language(page) == "en"
        assert page.inner_text("header h1") == "Clinicam — your consultations"
        assert page.inner_text("#consultations a.join").strip() == "Join"
        assert page.input_value("#language") == "en"

        page.click("#logout")
        page.wait_for_url(demo["url"] + "/login")
    finally:
        page.context.close()

    # a fresh Chinese browser: no cookie, no session; the sign-in page speaks Chinese ...
    again = _chinese_page(browser)
    other = _chinese_page(browser)
    try:
        _open_login(again, demo)
        assert _language(again) == "zh-CN"
        assert again.inner_text("#login-button") == "登录"
        # ... and once signed in, the person's own choice wins over the browser's
        _sign_in(again, demo, user)
        assert _language(again) == "en"
        assert again.inner_text("header h1") == "Clinicam — your consultations"
        assert again.inner_text("#logout") == "Sign out"

        # the choice was this person's only: another one still gets Chinese
        _open_login(other, demo)
        _sign_in(other, demo, "admin")
        assert _language(other) == "zh-CN"
        assert other.inner_text("#logout") == "退出登录"
    finally:
        again.context.close()
        other.context.close()
