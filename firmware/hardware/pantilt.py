"""Pan-tilt head on two servos through adafruit-circuitpython-servokit (PCA9685).

The same class drives a real PCA9685 on the Pi's I2C bus and the simulated chip:
only the bus object differs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from firmware.config import AxisCalibration, PanTiltConfig

_LOGGER = logging.getLogger(__name__)


class ServoPanTilt:
    """A :class:`~firmware.hardware.protocols.PanTilt` on a PCA9685 via servokit."""

    def __init__(self, config: PanTiltConfig, *, i2c: Any) -> None:
        from adafruit_servokit import ServoKit  # imported here: it pulls in Blinka

        self._config = config
        self._kit = ServoKit(channels=16, i2c=i2c, address=config.i2c_address, frequency=50)
        self._lock = threading.Lock()
        for axis in (config.pan, config.tilt):
            servo = self._kit.servo[axis.channel]
            servo.actuation_range = axis.actuation_range_deg
            servo.set_pulse_width_range(axis.min_pulse_us, axis.max_pulse_us)
        self._position = (0.0, 0.0)
        self._limp_at: tuple[float, float] | None = None
        self._drive(0.0, 0.0)

    @staticmethod
    def _clamp(axis: AxisCalibration, deg: float) -> float:
        return min(max(deg, axis.min_deg), axis.max_deg)

    @staticmethod
    def servo_angle(axis: AxisCalibration, deg: float) -> float:
        """Servo horn angle for a head angle, after centre offset and inversion."""
        signed = -deg if axis.invert else deg
        return axis.centre_deg + signed

    def _drive(self, pan: float, tilt: float) -> None:
        for axis, deg in ((self._config.pan, pan), (self._config.tilt, tilt)):
            self._kit.servo[axis.channel].angle = self.servo_angle(axis, deg)

    @property
    def position(self) -> tuple[float, float]:
        with self._lock:
            return self._position

    @property
    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        pan, tilt = self._config.pan, self._config.tilt
        return (pan.min_deg, pan.max_deg), (tilt.min_deg, tilt.max_deg)

    def move_to(self, pan: float, tilt: float) -> tuple[float, float]:
        target = (self._clamp(self._config.pan, pan), self._clamp(self._config.tilt, tilt))
        with self._lock:
            self._drive(*target)
            self._position = target
            self._limp_at = None
        return target

    def _read_back(self) -> tuple[float, float] | None:
        """The head angles of the PCA9685's duty cycles, as servokit reads them back."""
        head = []
        for axis in (self._config.pan, self._config.tilt):
            servo = self._kit.servo[axis.channel].angle
            if servo is None:  # no pulses on this channel
                return None
            signed = servo - axis.centre_deg
            head.append(-signed if axis.invert else signed)
        return head[0], head[1]

    def driven(self) -> tuple[float, float]:
        with self._lock:
            if self._limp_at is not None:
                return self._limp_at
            return self._read_back() or self._position

    def release(self) -> None:
        with self._lock:
            # a limp servo stays where its last pulses put it
            self._limp_at = self._read_back() or self._limp_at or self._position
            for axis in (self._config.pan, self._config.tilt):
                self._kit.servo[axis.channel].angle = None
