"""The model card page (issue 18): /models/<version>/card for signed-in readers in their
language, its data from /api/models/<version>/card (the card in use or the registry's
copy, with the registry status)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import ClientSession

from tests.records.api_helpers import Site
from tests.records.test_consent_withdrawal import _consent, _register


async def test_the_card_of_the_model_in_use(site: Site) -> None:
    bob = await site.user("bob")
    resp = await bob.request("GET", "/api/models/relevance-demo-1/card")
    found = await resp.json()
    assert resp.status == 200, found
    assert found["in_use"] is True and found["status"] is None
    card = found["card"]
    assert card["version"] == "relevance-demo-1" and card["intended_use_zh"]
    for section in ("out_of_scope_use", "factors", "ethical_considerations", "caveats"):
        assert card[section], section
    assert card["evaluation"]["emr_baseline"]["test"]["n"] == 142
    resp = await bob.request(
        "GET", "/models/relevance-demo-1/card", headers={"Accept-Language": "zh-CN"}
    )
    html = await resp.text()
    assert resp.status == 200 and '<html lang="zh-CN">' in html
    assert "/static/model_card.js" in html


async def test_unknown_versions_and_strangers_are_refused(site: Site) -> None:
    bob = await site.user("bob")
    resp = await bob.request(
        "GET", "/api/models/relevance-nope/card", headers={"Accept-Language": "zh-CN"}
    )
    assert resp.status == 404
    assert "relevance-nope" in (await resp.json())["error"]
    assert "模型卡" in (await resp.json())["error"]
    async with ClientSession() as stranger:
        url = site.server.make_url("/models/relevance-demo-1/card")
        resp = await stranger.get(url, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"].startswith("/login")
        resp = await stranger.get(site.server.make_url("/api/models/relevance-demo-1/card"))
        assert resp.status == 401


async def test_a_withdrawn_models_card_says_so(site: Site, tmp_path: Path) -> None:
    ids = site.patient_ids()
    assert await _consent(site, "alice", "P-1", True) == 201
    _register(site, tmp_path, "relevance-b", True, [ids["P-1"]])
    assert await _consent(site, "alice", "P-1", False) == 201
    bob = await site.user("bob")
    found = await (await bob.request("GET", "/api/models/relevance-b/card")).json()
    assert found["status"] == "withdrawn" and found["in_use"] is False
    assert found["training_patients"] == 1
    assert "training consent withdrawn" in found["decision"]
