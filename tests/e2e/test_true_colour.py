"""True colour (issue 22) in the browser: ``clinicam demo --colour-card`` lights the
simulated clinic with a tungsten lamp and holds the 24-patch card up in the camera's view.
The expert holding control clicks "Calibrate colour"; the appliance finds the card, fits
and applies gains and a colour-correction matrix; the room's indicator says how well, and
the card as the expert's browser shows it (two H.264 encodes later) is measured too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from clinicam.colourcard import mean_delta_e
from firmware.control.card_finder import find_card
from tests.helpers import join_demo_room, running_demo

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
GRAB_RGB_JS = """([x, y, w, h]) => {
  const v = document.getElementById('live');
  const c = document.createElement('canvas');
  c.width = 640; c.height = 360;
  const g = c.getContext('2d');
  g.drawImage(v, x, y, w, h, 0, 0, c.width, c.height);
  return Array.from(g.getImageData(0, 0, c.width, c.height).data);
}"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("demo") / "state"
    with running_demo(state, PASSWORD, "--colour-card") as info:
        yield info


def _card_delta_e(page: Any) -> float:
    """Mean ΔE2000 of the card in the live view, as the browser shows it."""
    tiles = {t[0]: t[1:] for t in page.evaluate("() => room.tiles")}
    rgba = np.array(page.evaluate(GRAB_RGB_JS, list(tiles["live"])), dtype=np.uint8)
    reading = find_card(rgba.reshape(360, 640, 4)[..., :3].copy())
    assert reading is not None, "the card is not in the live view"
    return mean_delta_e(reading.patches)


def test_calibrating_on_the_card_makes_the_colour_true(demo: dict[str, Any], browser: Any) -> None:
    page = browser.new_page()
    try:
        join_demo_room(page, demo, PASSWORD)
        page.wait_for_function(
            "() => !document.getElementById('camera-controls').disabled", timeout=30_000
        )
        page.wait_for_function(
            "() => document.getElementById('live').readyState >= 2", timeout=30_000
        )
        page.wait_for_function("() => typeof room !== 'undefined' && room !== null")
        assert page.inner_text("#colour-state") == "colour not calibrated"
        page.wait_for_timeout(1000)  # a few frames of the picture
        before = _card_delta_e(page)
        print(f"browser-side mean ΔE2000 before: {before:.2f}")
        assert before > 6.0  # the tungsten cast is there to see

        page.click("#colour-calibrate")
        page.wait_for_function(
            "() => document.getElementById('camera-status').textContent"
            ".startsWith('Colour calibrated')",
            timeout=30_000,
        )
        status = page.inner_text("#camera-status")
        found = re.fullmatch(r"Colour calibrated: ΔE ([\d.]+) → ([\d.]+)", status)
        assert found is not None, status
        assert float(found[1]) > 8.0 and float(found[2]) < 3.0
        page.wait_for_function(
            "() => document.getElementById('colour-state').textContent"
            ".startsWith('colour calibrated, ΔE')",
            timeout=20_000,
        )
        shown = float(page.inner_text("#colour-state").rsplit(" ", 1)[1])
        assert shown == pytest.approx(float(found[2]), abs=0.051)

        page.wait_for_timeout(1500)  # the new colour through both encoders
        after = _card_delta_e(page)
        print(f"browser-side mean ΔE2000 after: {after:.2f}")
        # The appliance measured under 3 above; what the expert sees is under 3 as well,
        # after two H.264 encodes, 4:2:0 chroma and the composite's scaling (the streams
        # say they are BT.601: a browser left to guess took BT.709 and lost about 1.6).
        assert after < 3.0 and after < before / 2.5
    finally:
        page.close()
