"""A hobby servo driven by a simulated PCA9685 line: it moves at a finite speed.

The servo watches its channel's registers (not the driver's variables), turns the
pulse width into a target angle with its own physical pulse range, and slews toward
it at ``seconds_per_60deg`` (0.1 s per 60° by default, like an SG90/MG90S).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from firmware.hardware.pca9685_sim import SimPCA9685


class SimServo:
    """Position of one servo over time, from the pulses on its PCA9685 channel."""

    def __init__(
        self,
        chip: SimPCA9685,
        channel: int,
        *,
        min_pulse_us: float = 750.0,
        max_pulse_us: float = 2250.0,
        range_deg: float = 180.0,
        seconds_per_60deg: float = 0.1,
        start_deg: float = 90.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chip = chip
        self._channel = channel
        self._min_pulse = min_pulse_us
        self._max_pulse = max_pulse_us
        self._range = range_deg
        self._speed = 60.0 / seconds_per_60deg if seconds_per_60deg > 0 else float("inf")
        self._clock = clock
        self._lock = threading.Lock()
        self._from_deg = start_deg
        self._target_deg = start_deg
        self._since = clock()
        chip.add_listener(self._on_registers_written)

    def _pulse_to_deg(self, pulse: float) -> float:
        frac = (pulse - self._min_pulse) / (self._max_pulse - self._min_pulse)
        return min(max(frac, 0.0), 1.0) * self._range

    def _on_registers_written(self) -> None:
        pulse = self._chip.pulse_us(self._channel)
        if pulse is None:
            return  # no pulses: the servo goes limp and stays where it is
        target = self._pulse_to_deg(pulse)
        with self._lock:
            if abs(target - self._target_deg) < 1e-9:
                return
            now = self._clock()
            self._from_deg = self._angle_at(now)
            self._target_deg = target
            self._since = now

    def _angle_at(self, now: float) -> float:
        travelled = self._speed * (now - self._since)
        gap = self._target_deg - self._from_deg
        if abs(gap) <= travelled:
            return self._target_deg
        return self._from_deg + travelled * (1 if gap > 0 else -1)

    @property
    def angle(self) -> float:
        """Where the horn is now, in degrees of the servo's own range."""
        with self._lock:
            return self._angle_at(self._clock())

    @property
    def target(self) -> float:
        """Where the horn is heading."""
        with self._lock:
            return self._target_deg
