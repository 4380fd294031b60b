"""A PCA9685 16-channel PWM controller modelled at register level, on a fake I2C bus.

adafruit-circuitpython-servokit runs unchanged on top: it computes the pulse widths
and writes MODE1, PRE_SCALE and the LEDn_ON/OFF registers exactly as on a Pi. The
register image can be mirrored into a 256-byte file so that another process (a test,
a technician's tool) can read what the driver wrote.
"""

from __future__ import annotations

import errno
import logging
import mmap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

_LOGGER = logging.getLogger(__name__)

REG_MODE1 = 0x00
REG_MODE2 = 0x01
REG_LED0_ON_L = 0x06
REG_PRE_SCALE = 0xFE
MODE1_RESTART = 0x80
MODE1_AI = 0x20
MODE1_SLEEP = 0x10
LED_FULL_BIT = 0x10  # bit 4 of LEDn_ON_H / LEDn_OFF_H
OSCILLATOR_HZ = 25_000_000
NUM_CHANNELS = 16
REGISTER_COUNT = 256


class I2CDevice(Protocol):
    """What the fake bus needs from a simulated chip."""

    def write(self, data: bytes) -> None:
        """Handle one write transaction (first byte = register pointer)."""

    def read(self, count: int) -> bytes:
        """Handle one read transaction from the current pointer."""
        ...


class SimI2CBus:
    """Enough of ``busio.I2C`` for Adafruit drivers: locking, write, write-then-read."""

    def __init__(self) -> None:
        self._devices: dict[int, I2CDevice] = {}
        self._lock = threading.Lock()
        self._locked = False

    def attach(self, address: int, device: I2CDevice) -> None:
        """Put ``device`` on the bus at ``address``."""
        self._devices[address] = device

    def _device(self, address: int) -> I2CDevice:
        try:
            return self._devices[address]
        except KeyError:
            raise OSError(errno.EREMOTEIO, f"no I2C device at 0x{address:02x}") from None

    def try_lock(self) -> bool:
        with self._lock:
            if self._locked:
                return False
            self._locked = True
            return True

    def unlock(self) -> None:
        with self._lock:
            self._locked = False

    def scan(self) -> list[int]:
        return sorted(self._devices)

    def writeto(
        self, address: int, buffer: bytes | bytearray, *, start: int = 0, end: int | None = None
    ) -> None:
        self._device(address).write(bytes(buffer[start:end]))

    def readfrom_into(
        self, address: int, buffer: bytearray, *, start: int = 0, end: int | None = None
    ) -> None:
        stop = len(buffer) if end is None else end
        buffer[start:stop] = self._device(address).read(stop - start)

    def writeto_then_readfrom(
        self,
        address: int,
        buffer_out: bytes | bytearray,
        buffer_in: bytearray,
        *,
        out_start: int = 0,
        out_end: int | None = None,
        in_start: int = 0,
        in_end: int | None = None,
    ) -> None:
        self.writeto(address, buffer_out, start=out_start, end=out_end)
        self.readfrom_into(address, buffer_in, start=in_start, end=in_end)

    def deinit(self) -> None:
        """Nothing to release."""


class SimPCA9685:
    """Register model of one PCA9685 (datasheet reset values, auto-increment, sleep rules)."""

    def __init__(self, *, register_file: Path | None = None) -> None:
        self._file_map: mmap.mmap | None = None
        if register_file is not None:
            register_file.parent.mkdir(parents=True, exist_ok=True)
            with register_file.open("w+b") as fh:
                fh.write(bytes(REGISTER_COUNT))
                fh.flush()
                self._file_map = mmap.mmap(fh.fileno(), REGISTER_COUNT)
            self.regs: bytearray | mmap.mmap = self._file_map
        else:
            self.regs = bytearray(REGISTER_COUNT)
        self._pointer = 0
        self._listeners: list[Callable[[], None]] = []
        self.power_on_reset()

    def power_on_reset(self) -> None:
        """Datasheet reset state: sleeping, all-call on, every LED full off, 200 Hz."""
        self.regs[0:REGISTER_COUNT] = bytes(REGISTER_COUNT)
        self.regs[REG_MODE1] = 0x11
        self.regs[REG_MODE2] = 0x04
        self.regs[0x02], self.regs[0x03], self.regs[0x04], self.regs[0x05] = 0xE2, 0xE4, 0xE8, 0xE0
        for ch in range(NUM_CHANNELS):
            self.regs[REG_LED0_ON_L + 4 * ch + 3] = LED_FULL_BIT
        self.regs[REG_PRE_SCALE] = 0x1E

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every write transaction (a servo watching its line)."""
        self._listeners.append(callback)

    def write(self, data: bytes) -> None:
        if not data:
            return  # address probe
        self._pointer = data[0]
        for value in data[1:]:
            self._store(self._pointer, value)
            if self.regs[REG_MODE1] & MODE1_AI:
                self._pointer = (self._pointer + 1) % REGISTER_COUNT
        if len(data) > 1:
            for callback in self._listeners:
                callback()

    def _store(self, reg: int, value: int) -> None:
        if reg == REG_PRE_SCALE and not self.regs[REG_MODE1] & MODE1_SLEEP:
            _LOGGER.debug("PRE_SCALE write ignored: chip not sleeping")
            return
        if reg == REG_MODE1 and value & MODE1_RESTART:
            value &= ~MODE1_RESTART & 0xFF  # writing 1 clears RESTART
        self.regs[reg] = value & 0xFF

    def read(self, count: int) -> bytes:
        out = bytearray()
        for _ in range(count):
            out.append(self.regs[self._pointer])
            if self.regs[REG_MODE1] & MODE1_AI:
                self._pointer = (self._pointer + 1) % REGISTER_COUNT
        return bytes(out)

    # Helpers for readers of the register image (servo model, tests).
    def pwm_frequency_hz(self) -> float:
        return pwm_frequency_hz(bytes(self.regs))

    def pulse_us(self, channel: int) -> float | None:
        return pulse_us(bytes(self.regs), channel)

    def close(self) -> None:
        if self._file_map is not None:
            self.regs = bytearray(self._file_map)
            self._file_map.close()
            self._file_map = None


def channel_counts(regs: bytes, channel: int) -> tuple[int, int]:
    """(ON, OFF) 13-bit values of one channel, including the full-on/off bit 12."""
    base = REG_LED0_ON_L + 4 * channel
    on = regs[base] | regs[base + 1] << 8
    off = regs[base + 2] | regs[base + 3] << 8
    return on, off


def pwm_frequency_hz(regs: bytes) -> float:
    """Output frequency from PRE_SCALE (internal 25 MHz oscillator)."""
    return OSCILLATOR_HZ / (4096 * (regs[REG_PRE_SCALE] + 1))


def pulse_us(regs: bytes, channel: int) -> float | None:
    """High time of ``channel`` in microseconds; None when the output is full off or asleep."""
    on, off = channel_counts(regs, channel)
    if regs[REG_MODE1] & MODE1_SLEEP or off & 0x1000:
        return None
    period_us = 1e6 / pwm_frequency_hz(regs)
    if on & 0x1000:
        return period_us
    high = ((off & 0x0FFF) - (on & 0x0FFF)) % 4096
    return high * period_us / 4096
