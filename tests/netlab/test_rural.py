"""The whole system on a 3G clinic link (R17), real processes on the link testbed: the
video keeps flowing with the encoder stepped down, camera commands are acknowledged, and
after a 5 s outage the stream comes back by itself and the archive has no hole (the
appliance back-fills what the outage kept from the server)."""

from __future__ import annotations

import pytest

from tests.netlab.profiles import PROFILES
from tests.netlab.rural import figures, live_fps, run_on_link

pytestmark = pytest.mark.netlab


def test_a_3g_clinic_link_with_an_outage() -> None:
    result = run_on_link(PROFILES["3g"], 30.0, outage_s=5.0, settle_s=3.0, backfill_wait_s=30.0)
    got = figures(result)
    probe = result.probe
    assert result.outage is not None
    outage_start = result.outage[0]
    flowing = live_fps(probe["frames"], outage_start - 8, outage_start)
    assert flowing >= 2.0, f"the live view stalled on 3G before the outage: {got}"
    rungs = {event[1].get("rung") for event in probe["links"]}
    targets = [event[1].get("target_kbps") or 10_000 for event in probe["links"]]
    assert min(targets) < 600 and rungs - {"1/4", None}, f"the encoder did not step down: {got}"
    acked = [c for c in probe["control"] if c[2] == 200]
    assert len(acked) >= 10, f"camera commands were not acknowledged: {probe['control']}"
    assert got["resume_after_outage_s"] is not None and got["resume_after_outage_s"] < 10, got
    assert got["archive_gap_s"] is not None and got["archive_gap_s"] <= 1.0, (
        f"the archive has a hole after the back-fill: {got}, runs {result.coverage}"
    )
