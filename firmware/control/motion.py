"""Slew-rate-limited motion of the pan-tilt head.

Every move — relative, absolute, preset, home — sets a *target*; a 50 Hz loop walks
the commanded position toward it at no more than ``max_speed_deg_s``, so the camera
never jerks. Continuous moves set a velocity with a dead-man deadline: without a
refresh before the deadline the head stops by itself. When nothing has moved for
``idle_release_s`` the servos are released (no PWM: no hum, no jitter); the next
move drives them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from firmware.config import MotionConfig
from firmware.hardware.protocols import PanTilt

_LOGGER = logging.getLogger(__name__)


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def _approach(current: float, target: float, max_step: float) -> float:
    gap = target - current
    if abs(gap) <= max_step:
        return target
    return current + (max_step if gap > 0 else -max_step)


class MotionController:
    """Owns the head's motion; call from the event loop only."""

    def __init__(
        self,
        pantilt: PanTilt,
        config: MotionConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pantilt = pantilt
        self._config = config
        self._clock = clock
        self.on_settled: Callable[[], None] | None = None
        self._pan_limits, self._tilt_limits = pantilt.limits
        self._position = pantilt.position
        self._target = self._position
        self._velocity = (0.0, 0.0)
        self._deadline = 0.0
        self._last_motion = clock()
        self._released = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((pan min, pan max), (tilt min, tilt max)) in degrees from centre."""
        return self._pan_limits, self._tilt_limits

    @property
    def position(self) -> tuple[float, float]:
        """Where the servos are being driven now."""
        return self._position

    @property
    def target(self) -> tuple[float, float]:
        """Where the head is heading."""
        return self._target

    def driven(self) -> tuple[float, float]:
        """Where the servos' pulses send the head now (to the PWM's resolution)."""
        return self._pantilt.driven()

    @property
    def moving(self) -> bool:
        return self._position != self._target or self._velocity != (0.0, 0.0)

    @property
    def released(self) -> bool:
        return self._released

    def clamp(self, pan: float, tilt: float) -> tuple[float, float]:
        """(pan, tilt) inside the soft limits; a move past a limit slides along it."""
        return _clamp(pan, self._pan_limits), _clamp(tilt, self._tilt_limits)

    def go_to(self, pan: float, tilt: float) -> tuple[float, float]:
        """Head for (pan, tilt), clamped; cancels any continuous move."""
        self._velocity = (0.0, 0.0)
        self._target = self.clamp(pan, tilt)
        self._wake.set()
        return self._target

    def go_by(self, pan: float, tilt: float) -> tuple[float, float]:
        """The seed's adjustment: target = current target + (pan, tilt)."""
        return self.go_to(self._target[0] + pan, self._target[1] + tilt)

    def continuous(self, pan_speed: float, tilt_speed: float, timeout_s: float) -> None:
        """Move at a velocity until :meth:`stop` or until ``timeout_s`` without a refresh."""
        self._velocity = (pan_speed, tilt_speed)
        self._deadline = self._clock() + timeout_s
        self._wake.set()

    def stop(self) -> tuple[float, float]:
        """Stop where the head is now."""
        self._velocity = (0.0, 0.0)
        self._target = self._position
        self._wake.set()
        return self._target

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="motion")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def step(self, dt: float) -> bool:
        """Advance the motion by ``dt`` seconds; returns True if the servos were driven."""
        now = self._clock()
        if self._velocity != (0.0, 0.0):
            if now > self._deadline:
                _LOGGER.info("continuous move stopped: no refresh within its timeout (dead-man)")
                self._velocity = (0.0, 0.0)
                self._target = self._position
            else:
                vp, vt = self._velocity
                self._target = self.clamp(self._position[0] + vp * dt, self._position[1] + vt * dt)
        max_step = self._config.max_speed_deg_s * dt
        nxt = (
            _approach(self._position[0], self._target[0], max_step),
            _approach(self._position[1], self._target[1], max_step),
        )
        if nxt != self._position or (self._released and self.moving):
            self._position = self._pantilt.move_to(*nxt)
            self._last_motion = now
            self._released = False
            if not self.moving and self.on_settled is not None:
                self.on_settled()
            return True
        idle_after = self._config.idle_release_s
        if idle_after > 0 and not self._released and now - self._last_motion >= idle_after:
            self._pantilt.release()
            self._released = True
            _LOGGER.debug("servos released after %.1f s idle", idle_after)
        return False

    async def _run(self) -> None:
        period = 1.0 / self._config.update_hz
        last = self._clock()
        while True:
            if not self.moving:
                # Idle: sleep until a command wakes us (first step at once: low latency)
                # or until it is time to release the servos.
                self._wake.clear()
                timeout = None
                if self._config.idle_release_s > 0 and not self._released:
                    timeout = max(
                        0.0, self._last_motion + self._config.idle_release_s - self._clock()
                    )
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                last = self._clock() - period
            now = self._clock()
            self.step(min(now - last, 4 * period))
            last = now
            if self.moving:
                await asyncio.sleep(period)
