"""Two experts type into the consultation's shared notes at the same time, in Chromium:
both texts survive on both pages, and after a reload (issue 20, shared notes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import zip_longest
from typing import Any
from urllib.parse import urlparse

import pytest
import sqlalchemy

from tests.helpers import running_demo, wait_until

pytestmark = pytest.mark.e2e

PASSWORD = "two experts take notes"
ROOM = "/room/demo-consultation"
START = "Findings:\n\nPlan:\n"
ALICE_WORDS = " rash on the left forearm"
BOB_WORDS = " emollient twice a day"
VALUE = "() => document.getElementById('notes-text').value"
STATUS = "() => document.getElementById('notes-status').dataset.status || ''"
CARET_AFTER = """(marker) => { const a = document.getElementById('notes-text'); a.focus();
  const at = a.value.indexOf(marker) + marker.length; a.setSelectionRange(at, at); }"""


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, demo_database: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("notes") / "state"
    url = demo_database[1] if demo_database else f"sqlite:///{state / 'server' / 'clinicam.db'}"
    with running_demo(state, PASSWORD, "--experts", "2", *demo_database) as info:
        yield {**info, "database": url}


def _open(browser: Any, url: str, user: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(f"{url}/login?next={ROOM}")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_url(lambda u: urlparse(u).path == ROOM)
    page.wait_for_function("() => typeof room !== 'undefined' && room !== null", timeout=60_000)
    page.wait_for_function(f"() => ({STATUS})() === 'saved'", timeout=30_000)
    return page


def _value(page: Any) -> str:
    return str(page.evaluate(VALUE))


def _note_edits(database: str) -> list[tuple[str, dict[str, Any]]]:
    """The audit trail's entries for the notes: (actor, detail), from the site's database."""
    engine = sqlalchemy.create_engine(database)
    try:
        with engine.connect() as db:
            rows = db.execute(
                sqlalchemy.text(
                    "SELECT actor, detail FROM audit_entries"
                    " WHERE action = 'consultation.notes_edit'"
                )
            ).all()
    finally:
        engine.dispose()
    return [
        (actor, detail if isinstance(detail, dict) else json.loads(detail))
        for actor, detail in rows
    ]


def test_two_experts_typing_at_once_keep_both_texts(demo: dict[str, Any], browser: Any) -> None:
    alice = _open(browser, demo["url"], "demo")
    bob = _open(browser, demo["url"], "expert2")
    alice.click("#notes-text")
    alice.keyboard.type(START)
    wait_until(lambda: _value(bob) == START, 20, "the start of the notes on bob's page")

    # each puts the caret in their own line, and they type at the same time
    alice.evaluate(CARET_AFTER, "Findings:")
    bob.evaluate(CARET_AFTER, "Plan:")
    for a, b in zip_longest(ALICE_WORDS, BOB_WORDS, fillvalue=""):
        if a:
            alice.keyboard.type(a)
        if b:
            bob.keyboard.type(b)
        alice.wait_for_timeout(60)  # typing speed, not a check
    want = "Findings:" + ALICE_WORDS + "\n\nPlan:" + BOB_WORDS + "\n"

    def both_have_it() -> bool:
        return _value(alice) == want and _value(bob) == want

    wait_until(both_have_it, 30, "both texts on both pages")
    for page in (alice, bob):
        page.wait_for_function(f"() => ({STATUS})() === 'saved'", timeout=20_000)
        assert "Saved" in page.inner_text("#notes-status")

    # same place, same moment: both insertions stay
    alice.evaluate(CARET_AFTER, "Plan:")
    bob.evaluate(CARET_AFTER, "Plan:")
    alice.keyboard.type(" [A]")
    bob.keyboard.type(" [B]")
    wait_until(
        lambda: _value(alice) == _value(bob) and "[A]" in _value(bob) and "[B]" in _value(alice),
        30,
        "both same-place insertions on both pages",
    )
    final = _value(alice)
    assert ALICE_WORDS in final and BOB_WORDS in final
    # neither page took the other's text while it had its own unsent: the server merged
    edits = _note_edits(demo["database"])
    assert {actor for actor, _ in edits} == {"demo", "expert2"}
    assert any(detail["merged"] for _, detail in edits)
    assert all("rash" not in json.dumps(detail) for _, detail in edits)  # never the text

    for page in (alice, bob):
        page.reload()
        page.wait_for_function(f"() => ({STATUS})() === 'saved'", timeout=30_000)
        assert _value(page) == final
    assert "last edit by" in alice.inner_text("#notes-status")
