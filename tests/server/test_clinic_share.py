"""R16: a record item shared in the room reaches the clinic station only when an expert
explicitly shows it there; every change is audited; bad requests change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.media.layout import PRESENTATION, RELEVANCE, expert_window, station_main
from tests.records.api_helpers import Site, audit_actions, png_bytes, records_config, running_site


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as running:
        yield running


async def _present(site: Site) -> dict[str, object]:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.access("P-1", ("view", "edit"))
    resp = await alice.request("POST", f"/api/patients/{pid}/records", data=png_bytes())
    assert resp.status == 201, await resp.text()
    photo = await resp.json()
    resp = await alice.request(
        "POST",
        f"/api/patients/{pid}/records/clinical_photo/{photo['id']}/present",
        json={"consultation": "c1"},
    )
    assert resp.status == 200, await resp.text()
    info: dict[str, object] = await resp.json()
    return info


def _station_windows(site: Site) -> tuple[str, ...]:
    room = site.state.rooms.get(site.state.config.consultations[0])
    return room.layout_for(station_main(room.station.main_window)).windows


async def test_the_clinic_sees_a_shared_item_only_after_an_expert_shows_it(site: Site) -> None:
    alice = await site.user("alice")
    room = site.state.rooms.get(site.state.config.consultations[0])
    presented = await _present(site)
    assert presented["by"] == "alice"
    assert room.presentation_info is not None and room.presentation_info["clinic"] is False
    assert PRESENTATION not in _station_windows(site), "presented to the experts only"

    resp = await alice.request("PATCH", "/api/consultations/c1/presentation", json={"clinic": True})
    assert resp.status == 200 and (await resp.json())["clinic"] is True
    windows = _station_windows(site)
    assert windows[0] == PRESENTATION, "shown large at the bedside"
    assert RELEVANCE not in windows, "never the decision-support view"
    assert audit_actions(site.database, "alice")[-1] == "record.shown_to_clinic"

    await _present(site)  # a new item: back to the experts only
    assert room.presentation_info is not None and room.presentation_info["clinic"] is False
    assert PRESENTATION not in _station_windows(site)
    assert _station_windows(site)[0] == expert_window("alice")

    resp = await alice.request("PATCH", "/api/consultations/c1/presentation", json={"clinic": True})
    assert resp.status == 200
    resp = await alice.request(
        "PATCH", "/api/consultations/c1/presentation", json={"clinic": False}
    )
    assert resp.status == 200
    assert PRESENTATION not in _station_windows(site)
    assert audit_actions(site.database, "alice")[-1] == "record.hidden_from_clinic"


async def test_bad_share_requests_change_nothing(site: Site) -> None:
    alice, carol = await site.user("alice"), await site.user("carol")
    path = "/api/consultations/c1/presentation"
    resp = await alice.request("PATCH", path, json={"clinic": True})
    assert resp.status == 409 and "nothing is presented" in (await resp.json())["error"]
    await _present(site)
    before = audit_actions(site.database)
    for body in ({"clinic": "yes"}, {}, {"clinic": True, "extra": 1}):
        resp = await alice.request("PATCH", path, json=body)
        assert resp.status == 400, body
    resp = await alice.request("PATCH", path, data=b"{not json")
    assert resp.status == 400
    resp = await carol.request("PATCH", path, json={"clinic": True})  # not invited
    assert resp.status == 403
    resp = await alice.request(
        "PATCH", "/api/consultations/nope/presentation", json={"clinic": True}
    )
    assert resp.status == 404
    room = site.state.rooms.get(site.state.config.consultations[0])
    assert room.presentation_info is not None and room.presentation_info["clinic"] is False
    assert audit_actions(site.database) == before
