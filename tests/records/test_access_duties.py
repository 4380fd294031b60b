"""Separation of duties and reliable grants (issue 15, classes 4 and 10).

Nobody decides on their own request: an admin cannot approve or deny their own access
request, nor review their own break-glass access; emergencies go through break-glass.
Two sessions of one user both keep working, and a request gets exactly the operations
it asked for, never an existing wider grant. Runs on SQLite and a real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from server.access.models import AccessGrant, AccessRequest
from server.records.models import ClinicalPhoto
from tests.records.api_helpers import (
    Site,
    audit_actions,
    count_rows,
    open_user,
    png_bytes,
    records_config,
    running_site,
)


@pytest.fixture
async def site(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    config = records_config(tmp_path, database_url)
    second_admin = config.experts[0].model_copy(
        update={"username": "root2", "display_name": "Root2", "role": "admin"}
    )
    config = config.model_copy(update={"experts": [*config.experts, second_admin]})
    async with running_site(config) as running:
        yield running


def _request_row(site: Site, request_id: int) -> AccessRequest:
    with site.database.session() as session:
        row = session.get_one(AccessRequest, request_id)
        session.expunge(row)
        return row


async def test_an_admin_cannot_decide_their_own_access_request(site: Site) -> None:
    root, root2 = await site.user("root"), await site.user("root2")
    pid = site.patient_ids()["P-2"]
    pending = await root.access("P-2")
    assert pending["http_status"] == 202
    grants_before = count_rows(site.database, AccessGrant)
    for approve in (True, False):
        resp = await root.request(
            "POST", f"/api/admin/requests/{pending['request_id']}", json={"approve": approve}
        )
        assert resp.status == 403, await resp.text()
        assert "own" in (await resp.json())["error"]
    row = _request_row(site, pending["request_id"])
    assert (row.status, row.decided_by, row.grant_id) == ("pending", None, None)
    assert count_rows(site.database, AccessGrant) == grants_before
    assert (await root.request("GET", f"/api/patients/{pid}/records")).status == 404
    actions = audit_actions(site.database, "root")
    assert "access.request_approved" not in actions
    assert actions.count("access.decision_refused") == 2
    # The desk says so, and another admin can decide.
    desk = await (await root.request("GET", "/api/admin/grants")).json()
    assert [r["own"] for r in desk["requests"]] == [True]
    resp = await root2.request(
        "POST", f"/api/admin/requests/{pending['request_id']}", json={"approve": True}
    )
    assert resp.status == 200
    collected = await root.access("P-2")
    assert collected["http_status"] == 201 and collected["basis"] == "approved by root2"


async def test_an_admin_cannot_review_their_own_break_glass(site: Site) -> None:
    root, root2 = await site.user("root"), await site.user("root2")
    resp = await root.request(
        "POST",
        "/api/break-glass",
        json={"patient": "P-2", "reason": "patient collapsed, need the allergy list"},
    )
    assert resp.status == 201
    grant_id = (await resp.json())["grant_id"]
    resp = await root.request("POST", f"/api/admin/grants/{grant_id}/review")
    assert resp.status == 403 and "own" in (await resp.json())["error"]
    with site.database.session() as session:
        assert session.get_one(AccessGrant, grant_id).reviewed_at is None
    assert "access.break_glass_reviewed" not in audit_actions(site.database, "root")
    resp = await root2.request("POST", f"/api/admin/grants/{grant_id}/review")
    assert resp.status == 200 and (await resp.json())["reviewed_by"] == "root2"


async def test_two_sessions_of_one_user_both_keep_their_grant(site: Site) -> None:
    pid = site.patient_ids()["P-1"]
    first = await open_user(site.server, "bob")
    second = await open_user(site.server, "bob")
    try:
        assert (await first.access("P-1"))["http_status"] == 201
        assert (await first.request("GET", f"/api/patients/{pid}/records")).status == 200
        assert (await second.access("P-1"))["http_status"] == 201
        for browser in (first, second, first):
            resp = await browser.request("GET", f"/api/patients/{pid}/records")
            assert resp.status == 200, await resp.text()
        with site.database.session() as session:
            grants = session.scalars(select(AccessGrant).where(AccessGrant.username == "bob"))
            assert len(list(grants)) == 1  # one grant, one token per session
    finally:
        await first.http.close()
        await second.http.close()


async def test_asking_for_view_never_hands_back_edit(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    wide = await alice.access("P-1", ("view", "edit"))
    assert wide["operations"] == ["edit", "view"]
    narrow = await alice.access("P-1", ("view",))
    assert narrow["http_status"] == 201 and narrow["operations"] == ["view"]
    resp = await alice.request("POST", f"/api/patients/{pid}/records", data=png_bytes(), headers={})
    assert resp.status == 403  # the cookie now holds the view-only token
    assert count_rows(site.database, ClinicalPhoto) == 0
    assert (await alice.request("GET", f"/api/patients/{pid}/records")).status == 200
    # The wide token still edits when presented explicitly.
    resp = await alice.request(
        "POST",
        f"/api/patients/{pid}/records",
        data=png_bytes(),
        headers={"X-Clinicam-Access": wide["token"]},
    )
    assert resp.status == 201
