"""Every command has a deadline; after it nothing runs, and no id is forgotten before it.

The router on the simulated rig (no broker): its real handlers move the simulated head.
Clocks are passed in where a test needs time to pass.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from clinicam.const import MAX_COMMAND_LIFETIME_S
from firmware.app import Appliance
from firmware.control.router import CommandRouter
from tests.firmware.conftest import Rig, appliance_config, start_rig


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    instance = await start_rig(
        appliance_config(tmp_path, 1, motion={"max_speed_deg_s": 600.0}), connect=False
    )
    yield instance
    await instance.appliance.stop()
    instance.sim.close()


def _payload(**command: Any) -> bytes:
    return json.dumps(command).encode()


class Clocks:
    """A wall clock and a monotonic clock that only move when told to."""

    def __init__(self) -> None:
        self.wall, self.mono = 1_700_000_000.0, 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def _router(appliance: Appliance, clocks: Clocks, limit: int) -> CommandRouter:
    control = appliance.control
    return CommandRouter(
        control.handlers(),
        state=control.state,
        private=lambda: False,
        clock=lambda: clocks.mono,
        wall_clock=lambda: clocks.wall,
        ledger_limit=limit,
    )


async def test_a_replay_after_many_newer_commands_does_not_run_again(rig: Rig) -> None:
    router = rig.appliance.api.router
    lives_until = time.monotonic() + 20  # the message expiry of every command below
    first = await router.handle(_payload(id="replayed", op="ptz.relative", pan=1), lives_until)
    assert first.ok
    for n in range(600):  # more newer ids than the old ledger kept (512)
        filler = _payload(id=f"n{n}", op="zoom", level=1)
        assert (await router.handle(filler, lives_until)).ok
    again = await router.handle(_payload(id="replayed", op="ptz.relative", pan=1), lives_until)
    assert again.duplicate  # recognised: acknowledged again …
    assert rig.appliance.motion.target == (1, 0)  # … and not run again


async def test_a_command_past_its_deadline_never_runs_whatever_its_message_expiry(
    rig: Rig,
) -> None:
    router = rig.appliance.api.router
    late = _payload(id="late", op="ptz.absolute", pan=40, tilt=0, not_after=time.time() - 0.5)
    ack = await router.handle(late, time.monotonic() + 10)  # e.g. re-sent after a reconnect
    assert not ack.ok and ack.error is not None and ack.error.startswith("expired")
    on_time = _payload(id="on-time", op="ptz.absolute", pan=20, tilt=0, not_after=time.time() + 5)
    assert (await router.handle(on_time)).ok  # the deadline alone is enough
    assert rig.appliance.motion.target == (20, 0)
    assert router.executed == 1


async def test_a_command_without_a_deadline_or_with_a_far_one_is_refused(rig: Rig) -> None:
    router = rig.appliance.api.router
    ack = await router.handle(_payload(id="forever", op="ptz.home"))
    assert not ack.ok and ack.error is not None and "no deadline" in ack.error
    far = time.time() + MAX_COMMAND_LIFETIME_S + 60  # would have to be remembered that long
    ack = await router.handle(_payload(id="far", op="ptz.relative", pan=9, not_after=far))
    assert not ack.ok and ack.error is not None and "clock" in ack.error
    assert router.executed == 0 and rig.appliance.motion.target == (0, 0)


async def test_a_full_ledger_refuses_instead_of_forgetting(rig: Rig) -> None:
    clocks = Clocks()
    router = _router(rig.appliance, clocks, limit=4)
    for n in range(4):  # the ledger fills with commands that live 2 s
        ack = await router.handle(_payload(id=f"f{n}", op="ptz.stop", not_after=clocks.wall + 2))
        assert ack.ok
    long_lived = _payload(id="long", op="ptz.relative", pan=7, not_after=clocks.wall + 10)
    ack = await router.handle(long_lived)
    assert not ack.ok and ack.error is not None and ack.error.startswith("busy")
    assert (await router.handle(_payload(id="f0", op="ptz.stop"))).duplicate  # not forgotten
    clocks.advance(3)  # the fillers are over; there is room again …
    again = await router.handle(long_lived)  # … but a copy of the refused one must not run
    assert not again.ok and again.error is not None and again.error.startswith("busy")
    assert rig.appliance.motion.target == (0, 0)
    clocks.advance(8)  # every refused command is past its deadline: back to normal
    fresh = _payload(id="fresh", op="ptz.relative", pan=3, not_after=clocks.wall + 2)
    assert (await router.handle(fresh)).ok
    assert rig.appliance.motion.target == (3, 0)
    assert not (await router.handle(long_lived)).ok  # expired by now
