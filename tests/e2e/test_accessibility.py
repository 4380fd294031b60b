"""WCAG 2.1 AA: axe-core (from npm, ``tests/a11y``) finds no violations on the login,
lobby, room, records, model card, admin and clinic-station pages, in English and in Chinese; the
room works from the keyboard alone.

axe-core is injected into each page as it runs in the demo (real server, real data);
a violation names the rule, the elements and axe's help link.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import running_demo

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
AXE = Path(__file__).resolve().parents[1] / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
LANGUAGES = ["en-US", "zh-CN"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("demo") / "state"
    with running_demo(state, PASSWORD) as info:
        yield info


def _violations(page: Any) -> list[str]:
    assert AXE.is_file(), "axe-core is missing: ./install.sh --role dev installs it (npm ci)"
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => `${v.id} (${v.impact}): ${v.help} — ` +"
        " v.nodes.slice(0, 4).map(n => n.target.join(' ')).join(', ') + ` ${v.helpUrl}`)",
        TAGS,
    )
    return list(result)


def _sign_in(page: Any, demo: dict[str, Any], user: str) -> None:
    page.goto(demo["url"] + "/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_url(demo["url"] + "/")


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page_meets_wcag_aa(demo: dict[str, Any], browser: Any, language: str) -> None:
    found: dict[str, list[str]] = {}
    context = browser.new_context(locale=language, bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(demo["url"] + "/login")
        page.wait_for_selector("#login-form")
        found["login"] = _violations(page)
        _sign_in(page, demo, demo["username"])
        page.wait_for_selector("a.join")
        found["lobby"] = _violations(page)
        page.goto(demo["consultation"])
        page.wait_for_function(
            "() => document.getElementById('live').readyState >= 2", timeout=30_000
        )
        found["room"] = _violations(page)
        page.goto(demo["url"] + "/records")
        page.wait_for_load_state("networkidle")
        found["records"] = _violations(page)
        page.goto(demo["url"] + "/models/relevance-demo-1/card")
        page.wait_for_selector("#card:not([hidden])")
        found["model card"] = _violations(page)
        page.goto(demo["url"] + "/api/docs")
        page.wait_for_selector("#operations article")
        found["api docs"] = _violations(page)
        admin = context.new_page()
        admin.context.clear_cookies()
        _sign_in(admin, demo, "admin")
        admin.goto(demo["url"] + "/admin")
        admin.wait_for_load_state("networkidle")
        found["admin"] = _violations(admin)
        station = browser.new_context(locale=language, bypass_csp=True).new_page()
        station.goto(demo["station"])
        station.wait_for_load_state("networkidle")
        found["station"] = _violations(station)
        station.context.close()
    finally:
        context.close()
    problems = [f"{name}: {v}" for name, vs in found.items() for v in vs]
    assert not problems, "\n".join(problems)


def test_the_room_works_from_the_keyboard(demo: dict[str, Any], browser: Any) -> None:
    """Tab reaches the camera pad, a tile choice and the floor request, each with a
    visible focus ring, and Enter/Space act on them."""
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        _sign_in(page, demo, demo["username"])
        page.goto(demo["consultation"])
        page.wait_for_function(
            "() => document.getElementById('live').readyState >= 2", timeout=30_000
        )
        reached: list[dict[str, Any]] = []
        for _ in range(60):
            page.keyboard.press("Tab")
            reached.append(
                page.evaluate(
                    "() => { const e = document.activeElement; const s = getComputedStyle(e);"
                    " return {id: e.id, tag: e.tagName,"
                    " pad: 'home' in e.dataset ? 'home'"
                    " : (e.dataset.pan || '') + (e.dataset.tilt || ''),"
                    " name: e.getAttribute('aria-label') ||"
                    " e.textContent.trim().slice(0, 40), outline: s.outlineStyle !== 'none' &&"
                    " parseFloat(s.outlineWidth) >= 2 || s.boxShadow !== 'none'}; }"
                )
            )
        names = " | ".join(f"{r['id'] or r['tag']}:{r['name']}" for r in reached)
        assert all(r["outline"] for r in reached if r["tag"] != "BODY"), names
        pad = {r["pad"] for r in reached if r["pad"]}
        assert len(pad) == 5, names  # four directions and home
        assert "main-window" in {r["id"] for r in reached}, names  # the tile choice
        # Choosing a window from the keyboard changes this expert's main window.
        page.focus("#main-window")
        before = page.evaluate("() => room.main")
        page.keyboard.press("ArrowDown")
        page.wait_for_function("(b) => room.main !== b", arg=before, timeout=10_000)
    finally:
        context.close()
