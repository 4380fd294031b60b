"""Hostile payloads through the real broker: no crash, one ack each, never past a limit."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clinicam_app.broker import MosquittoBroker
from firmware.hardware.pca9685_sim import pulse_us
from tests.firmware.conftest import Rig, appliance_config, start_rig
from tests.firmware.test_command_api import publisher, send_raw, sniffer
from tests.helpers import wait_until

OPS = [
    "ptz.relative",
    "ptz.absolute",
    "ptz.continuous",
    "ptz.stop",
    "ptz.home",
    "preset.save",
    "preset.goto",
    "preset.delete",
    "focus",
    "colour",
    "colour.calibrate",
    "zoom",
    "stream",
    "privacy",
]
FIELDS = [
    "pan",
    "tilt",
    "pan_speed",
    "tilt_speed",
    "timeout_s",
    "slot",
    "name",
    "mode",
    "lens_position",
    "step",
    "awb",
    "gains",
    "brightness",
    "contrast",
    "saturation",
    "lighting",
    "level",
    "width",
    "height",
    "fps",
    "bitrate_kbps",
    "enabled",
    "id",
    "op",
    "__proto__",
]
BATCH = 50
EXAMPLES = 21  # 21 × 50 = 1,050 payloads

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324, 180.0000001, -85.0, 85.0, 8.0, 1.0]),
)
scalars = st.one_of(numbers, st.text(max_size=80), st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
command_like = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(min_size=1, max_size=70), numbers, st.none()),
        "op": st.one_of(st.sampled_from(OPS), st.text(max_size=20)),
    },
).flatmap(
    lambda base: st.dictionaries(st.sampled_from(FIELDS), values, max_size=6).map(
        lambda extra: {**base, **extra}
    )
)


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True, default=str).encode()


payloads = st.one_of(
    command_like.map(_encode),
    command_like.map(lambda d: _encode(d)[: len(_encode(d)) // 2]),  # truncated
    st.binary(max_size=200),
    values.map(_encode),
    st.just(b"{" * 6000),
)


class BackgroundRig:
    """The appliance on its own event loop thread, so hypothesis can drive it synchronously."""

    def __init__(self, broker: MosquittoBroker, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = appliance_config(tmp, broker.port, motion={"max_speed_deg_s": 600.0})
        self.rig: Rig = asyncio.run_coroutine_threadsafe(start_rig(config), self.loop).result(20)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.rig.appliance.stop(), self.loop).result(20)
        self.rig.sim.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def background_rig(broker: MosquittoBroker, tmp_path: Path) -> Iterator[BackgroundRig]:
    instance = BackgroundRig(broker, tmp_path)
    yield instance
    instance.close()


def _within_limits(regs: bytes) -> bool:
    for channel, limit in ((0, 85.0), (1, 45.0)):
        pulse = pulse_us(regs, channel)
        if pulse is None:
            continue  # released: no drive at all
        angle = (pulse - 750) / 1500 * 180 - 90
        if abs(angle) > limit + 0.7:  # one 12-bit PWM step of slack
            return False
    return True


def test_hostile_payloads(broker: MosquittoBroker, background_rig: BackgroundRig) -> None:
    spy = sniffer(broker, "server", "server-pw", ["clinicam/cam-a/ack"])
    sender = publisher(broker)
    sent = [0]
    rig = background_rig.rig
    out_of_limits: list[bytes] = []
    watching = threading.Event()

    def watch() -> None:  # sample the registers continuously while the fuzz runs
        while not watching.is_set():
            regs = bytes(rig.sim.chip.regs)
            if not _within_limits(regs):
                out_of_limits.append(regs)
            watching.wait(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.lists(payloads, min_size=BATCH, max_size=BATCH))
    def run_batch(batch: list[bytes]) -> None:
        for payload in batch:
            send_raw(sender, payload, sent[0].to_bytes(4, "big"))
            sent[0] += 1
        wait_until(lambda: len(spy.of("clinicam/cam-a/ack")) >= sent[0], 20, "acks")

    run_batch()
    watching.set()
    watcher.join(2)
    acks = [json.loads(p) for p in spy.of("clinicam/cam-a/ack")]
    assert sent[0] >= 1000
    assert len(acks) == sent[0]  # exactly one ack per command
    assert not [a for a in acks if "internal error" in (a.get("error") or "")]
    assert out_of_limits == []
    pan, tilt = rig.appliance.motion.target
    assert math.isfinite(pan) and abs(pan) <= 85 and abs(tilt) <= 45
    # still alive and obedient afterwards
    rig.appliance.privacy.set_private(False, "test")
    send_raw(sender, b'{"id": "final-check", "op": "ptz.absolute", "pan": 12, "tilt": 3}', b"F")
    wait_until(
        lambda: any(json.loads(p).get("id") == "final-check" for p in spy.of("clinicam/cam-a/ack")),
        5,
        "final ack",
    )
    final = next(
        json.loads(p)
        for p in spy.of("clinicam/cam-a/ack")
        if json.loads(p).get("id") == "final-check"
    )
    assert final["ok"] is True, final
    sender.loop_stop()
    spy.close()
