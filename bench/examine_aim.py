"""Figures for click to centre (issue 22), for ``bench/examine.py``.

The simulated appliance (servokit over the register-level PCA9685, servos that slew,
the motion controller's slew-rate limit, the virtual camera) takes commands through its
router as it does from MQTT. Each trial points the head and zooms so that the scene's
magenta marker sits somewhere off-centre, finds the marker in a rendered frame (where an
expert would click), sends one ``ptz.look_at`` there, then watches the frames: the
error is where the marker ends up (% of the frame width from the centre), the time is
from the command until the frames stop changing (the camera has settled).

Baseline, same trials: the pad's fixed 5° steps (the room's default), pressed as often
as a perfect expert would need (rounded to whole steps), measured the same way.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from firmware.hardware.scene import MARKER_PAN_DEG, MARKER_TILT_DEG
from tests.firmware.conftest import Rig, appliance_config, start_rig
from tests.marker import Marker, find_marker

PAD_STEP_DEG = 5.0
FRAME_S = 1 / 30
SETTLED_PCT = 0.5  # frames within this (% of width) of the final position: settled
WATCH_S = 1.5


class Trials:
    """One simulated appliance and the commands of the trials."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.n = 0

    async def send(self, **command: Any) -> dict[str, Any]:
        self.n += 1
        command.update(id=f"b{self.n}", not_after=time.time() + 10)
        ack = await self.rig.appliance.api.router.handle(json.dumps(command).encode())
        assert ack.ok, ack.error
        return ack.model_dump()

    def look(self) -> Marker | None:
        return find_marker(self.rig.sim.camera.capture().to_ndarray(format="rgb24"))

    async def watch(self) -> tuple[list[tuple[float, Marker | None]], float]:
        """Frames for WATCH_S after now: (seconds since start, marker)."""
        start = time.perf_counter()
        seen: list[tuple[float, Marker | None]] = []
        while (now := time.perf_counter() - start) < WATCH_S:
            seen.append((now, self.look()))
            await asyncio.sleep(FRAME_S)
        return seen, start

    async def place(self, u: float, v: float, zoom: float) -> None:
        """Head and zoom such that the marker shows at (u, v) of the view (±1 at the edges)."""
        hfov, vfov = self.rig.sim.camera.lens.hfov_deg, self.rig.sim.camera.lens.vfov_deg
        pan = MARKER_PAN_DEG - u * hfov / 2 / zoom
        tilt = MARKER_TILT_DEG - v * vfov / 2 / zoom
        await self.send(op="zoom", level=zoom)
        await self.send(op="ptz.absolute", pan=pan, tilt=tilt)
        while self.rig.appliance.motion.moving:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # the servos' own travel


def settle(seen: list[tuple[float, Marker | None]], aspect: float) -> tuple[float, float]:
    """(error % of width at the end, ms until every later frame is within SETTLED_PCT)."""
    final = seen[-1][1]
    assert final is not None, "the marker left the view"
    settled_at = seen[-1][0]
    for at, marker in reversed(seen):
        if marker is None or 100 * abs(marker.x - final.x) > SETTLED_PCT:
            break
        if 100 * abs(marker.y - final.y) / aspect > SETTLED_PCT:
            break
        settled_at = at
    return final.off_centre_pct(aspect), 1000 * settled_at


async def _run(quick: bool) -> dict[str, float]:
    rng = random.Random(22)
    count = 6 if quick else 24
    with tempfile.TemporaryDirectory() as tmp:
        config = appliance_config(Path(tmp), 1, sim={"servo_seconds_per_60deg": 0.1})
        rig = await start_rig(config, connect=False)
        trials = Trials(rig)
        width, height = rig.sim.camera.size
        aspect = width / height
        errors, times, pad_errors, pad_presses = [], [], [], []
        by_zoom: dict[float, list[float]] = {}
        try:
            for i in range(count):
                zoom = (1.0, 2.0, 3.0)[i % 3]
                u, v = rng.uniform(-0.7, 0.7), rng.uniform(-0.6, 0.6)
                await trials.place(u, v, zoom)
                start = trials.look()
                assert start is not None
                await trials.send(op="ptz.look_at", x=start.x, y=start.y)
                error, ms = settle((await trials.watch())[0], aspect)
                errors.append(error)
                by_zoom.setdefault(zoom, []).append(error)
                times.append(ms)
                # the baseline: the same view, the pad's fixed steps
                await trials.place(u, v, zoom)
                lens = rig.sim.camera.lens
                d_pan, d_tilt = u * lens.hfov_deg / 2 / zoom, v * lens.vfov_deg / 2 / zoom
                steps = round(d_pan / PAD_STEP_DEG), round(d_tilt / PAD_STEP_DEG)
                for axis, n in zip(("pan", "tilt"), steps, strict=True):
                    for _ in range(abs(n)):
                        await trials.send(
                            op="ptz.relative", **{axis: PAD_STEP_DEG * (1 if n > 0 else -1)}
                        )
                pad_presses.append(abs(steps[0]) + abs(steps[1]))
                after = (await trials.watch())[0][-1][1]
                pad_errors.append(after.off_centre_pct(aspect) if after else 100.0)
        finally:
            await rig.appliance.stop()
            rig.sim.close()
    return {
        "centre_error_pct": round(statistics.median(errors), 2),
        "centre_error_max_pct": round(max(errors), 2),
        "centre_time_ms": round(statistics.median(times)),
        "centre_time_max_ms": round(max(times)),
        "centre_trials": count,
        **{
            f"centre_error_pct_zoom{zoom:g}": round(statistics.median(found), 2)
            for zoom, found in sorted(by_zoom.items())
        },
        "pad_error_pct": round(statistics.median(pad_errors), 2),
        "pad_presses": statistics.median(pad_presses),
        "pad_step_deg": PAD_STEP_DEG,
    }


def figures(quick: bool) -> dict[str, float]:
    """Click-to-centre figures and the pad's baseline (see the module's docstring)."""
    return asyncio.run(_run(quick))
