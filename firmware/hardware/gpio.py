"""The appliance's GPIO: one status LED with blink patterns and a privacy push-button.

Both run on gpiozero. The pin factory is always passed to each device (``pin_factory=``);
gpiozero's process-wide ``Device.pin_factory`` is never touched. On a Pi
(``backend = "pi"``) gpiozero picks lgpio or RPi.GPIO itself; in CI and on a laptop
(``backend = "sim"``) the pins are gpiozero's ``MockFactory`` pins.

Status LED patterns
-------------------

Each pattern repeats until the next one is shown. Times are in seconds; "on" and "off"
alternate, starting with "on".

==================  =========================================  ==========================
Pattern             What the LED does                          Meaning
==================  =========================================  ==========================
BOOTING             fast blink: 0.1 on, 0.1 off (5 per s)      starting, not yet online
ONLINE              heartbeat: 0.1 on, 1.9 off (every 2 s)     connected, no consultation
STREAMING           solid on                                   a consultation is live
PRIVACY             double blink: 0.1 on, 0.15 off, 0.1 on,    privacy mode: camera
                    1.15 off (every 1.5 s)                     paused, picture hidden
FAULT               rapid flicker: 0.05 on, 0.05 off           needs attention (see log)
                    (10 per s)
PROVISION_OK        three long: 0.6 on, 0.3 off, 0.6 on,       provisioning succeeded
                    0.3 off, 0.6 on, 1.2 off (every 3.6 s)
PROVISION_FAILED    SOS (... --- ...): dots 0.15 on, dashes    provisioning failed
                    0.45 on, 0.15 off inside a letter, 0.45
                    off between letters, 1.05 off after the
                    last S (every 5.1 s)
==================  =========================================  ==========================

LED off means no power or the firmware is not running.

Privacy button
--------------

Each press of the button (wired between its GPIO and ground; the internal pull-up is
used) toggles privacy mode. The server and remote commands can set it too
(:meth:`PrivacySwitch.set_private`); every change, whatever its origin, is reported to
the callbacks registered with :meth:`PrivacySwitch.on_change`. Contact bounce is
filtered by gpiozero (``button_bounce_s``).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, Protocol, Self

from pydantic import Field, model_validator

from clinicam.configfile import StrictModel
from clinicam.i18n import _

_LOGGER = logging.getLogger(__name__)

_JOIN_TIMEOUT_S: Final = 2.0


class LightPattern(enum.Enum):
    """What the status LED is telling the people in the room (see the module table)."""

    BOOTING = "booting"
    ONLINE = "online"
    STREAMING = "streaming"
    PRIVACY = "privacy"
    FAULT = "fault"
    PROVISION_OK = "provision_ok"
    PROVISION_FAILED = "provision_failed"


@dataclass(frozen=True)
class LightTiming:
    """One cycle of a pattern, repeated: alternating on/off seconds, starting with on.

    No steps means solid on.
    """

    steps: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.steps) % 2:
            raise ValueError("steps must alternate on and off (even count)")
        if any(step <= 0.0 for step in self.steps):
            raise ValueError("every step must be longer than 0 s")

    @property
    def solid(self) -> bool:
        """The LED stays on."""
        return not self.steps

    @property
    def pulses(self) -> int:
        """Number of flashes per cycle (0 when solid)."""
        return len(self.steps) // 2

    @property
    def period(self) -> float:
        """Length of one cycle in seconds (0 when solid)."""
        return sum(self.steps)


_DOT: Final = 0.15
_DASH: Final = 0.45
_GAP: Final = 0.15
_LETTER_GAP: Final = 0.45
_WORD_GAP: Final = 1.05
_MORSE_S: Final = (_DOT, _GAP, _DOT, _GAP, _DOT)
_MORSE_O: Final = (_DASH, _GAP, _DASH, _GAP, _DASH)

PATTERNS: Final[Mapping[LightPattern, LightTiming]] = MappingProxyType(
    {
        LightPattern.BOOTING: LightTiming((0.1, 0.1)),
        LightPattern.ONLINE: LightTiming((0.1, 1.9)),
        LightPattern.STREAMING: LightTiming(()),
        LightPattern.PRIVACY: LightTiming((0.1, 0.15, 0.1, 1.15)),
        LightPattern.FAULT: LightTiming((0.05, 0.05)),
        LightPattern.PROVISION_OK: LightTiming((0.6, 0.3, 0.6, 0.3, 0.6, 1.2)),
        LightPattern.PROVISION_FAILED: LightTiming(
            (*_MORSE_S, _LETTER_GAP, *_MORSE_O, _LETTER_GAP, *_MORSE_S, _WORD_GAP)
        ),
    }
)
"""The documented timing of every pattern (the module docstring's table)."""


class StatusLight(Protocol):
    """The appliance's status LED."""

    def show(self, pattern: LightPattern) -> None:
        """Switch to ``pattern``; returns at once, the pattern runs in the background."""
        ...

    def close(self) -> None:
        """Stop any pattern, switch the LED off and release the pin."""
        ...


class GpioConfig(StrictModel):
    """The status LED and the privacy button (BCM GPIO numbers)."""

    enabled: bool = Field(True, description="Use the LED and button (false: no GPIO at all).")
    led_pin: int = Field(17, ge=2, le=27, description="BCM GPIO of the status LED (2..27).")
    button_pin: int = Field(
        27, ge=2, le=27, description="BCM GPIO of the privacy button, to ground (2..27)."
    )
    button_bounce_s: float = Field(
        0.05, ge=0.0, le=1.0, description="Button debounce time in seconds (0: none)."
    )

    @model_validator(mode="after")
    def _distinct_pins(self) -> Self:
        if self.led_pin == self.button_pin:
            raise ValueError(
                _("led_pin and button_pin must differ (both are GPIO{pin})", pin=self.led_pin)
            )
        return self


class NullStatusLight:
    """A status light that shows nothing (``gpio.enabled = false``); remembers the pattern."""

    def __init__(self) -> None:
        self.pattern: LightPattern | None = None

    def show(self, pattern: LightPattern) -> None:
        """Remember ``pattern`` and log it."""
        if pattern is not self.pattern:
            _LOGGER.debug("status light (none fitted): %s", pattern.name)
        self.pattern = pattern

    def close(self) -> None:
        """Nothing to release."""


class GpioStatusLight:
    """The status LED on a GPIO pin, driven by gpiozero's ``LED``.

    Single-pulse patterns use gpiozero's background ``blink``; multi-pulse ones (double
    blink, three long, SOS) run on a small daemon thread of this class. ``time_scale``
    multiplies every duration (tests run long patterns faster).
    """

    def __init__(
        self, pin: int, *, pin_factory: object | None = None, time_scale: float = 1.0
    ) -> None:
        if time_scale <= 0.0:
            raise ValueError("time_scale must be above 0")
        from gpiozero import LED  # optional dependency (appliance extra)

        self._pin = pin
        self._time_scale = time_scale
        self._led: Any = LED(pin, initial_value=False, pin_factory=pin_factory)
        self._lock = threading.Lock()
        self._pattern: LightPattern | None = None
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._closed = False

    @property
    def pattern(self) -> LightPattern | None:
        """The pattern being shown, None before the first :meth:`show` or after close."""
        return self._pattern

    def show(self, pattern: LightPattern) -> None:
        """Switch to ``pattern`` (no-op if already shown or after :meth:`close`)."""
        with self._lock:
            if self._closed:
                _LOGGER.debug("status light closed; not showing %s", pattern.name)
                return
            if pattern is self._pattern:
                return
            self._stop_pattern()
            timing = PATTERNS[pattern]
            steps = tuple(step * self._time_scale for step in timing.steps)
            if timing.solid:
                self._led.on()
            elif timing.pulses == 1:
                self._led.blink(on_time=steps[0], off_time=steps[1], n=None, background=True)
            else:
                stop = threading.Event()
                thread = threading.Thread(
                    target=self._play,
                    args=(steps, stop),
                    name=f"status-light-gpio{self._pin}",
                    daemon=True,
                )
                self._stop, self._thread = stop, thread
                thread.start()
            self._pattern = pattern
            _LOGGER.debug("status light GPIO%d: %s", self._pin, pattern.name)

    def close(self) -> None:
        """Stop the pattern, switch the LED off and release the pin (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop_pattern()
            self._pattern = None
            self._led.close()

    def _stop_pattern(self) -> None:
        """Stop our thread (if any) and gpiozero's blink, LED off. Caller holds the lock."""
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(_JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                _LOGGER.warning("status light thread %s did not stop", self._thread.name)
        self._thread, self._stop = None, None
        self._led.off()  # also stops (and joins) gpiozero's blink thread

    def _play(self, steps: tuple[float, ...], stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                for index, duration in enumerate(steps):
                    if stop.is_set():
                        return
                    self._led.value = index % 2 == 0
                    if stop.wait(duration):
                        return
        except Exception:
            _LOGGER.exception("status light GPIO%d pattern failed", self._pin)


PrivacyCallback = Callable[[bool], None]


class PrivacySwitch:
    """Privacy mode on/off: toggled by the push-button, or set by the server/commands.

    ``pin=None`` means no button is fitted (:meth:`set_private` still works). Callbacks
    run on the thread that made the change (gpiozero's event thread for a press) in the
    order the changes happened; they must be quick and must not wait for another thread
    that changes privacy. A failing callback is logged and the others still run.
    """

    def __init__(
        self,
        pin: int | None,
        *,
        bounce_time: float | None = 0.05,
        pin_factory: object | None = None,
        initial: bool = False,
    ) -> None:
        self._private = initial
        self._state_lock = threading.Lock()
        self._change_lock = threading.RLock()  # serialises change + notification
        self._callbacks: list[PrivacyCallback] = []
        self._button: Any = None
        if pin is not None:
            from gpiozero import Button  # optional dependency (appliance extra)

            self._button = Button(
                pin, pull_up=True, bounce_time=bounce_time or None, pin_factory=pin_factory
            )
            self._button.when_pressed = self._pressed

    @property
    def is_private(self) -> bool:
        """True while privacy mode is on (camera paused)."""
        with self._state_lock:
            return self._private

    def on_change(self, callback: PrivacyCallback) -> None:
        """Call ``callback(new_state)`` after every change."""
        with self._state_lock:
            self._callbacks.append(callback)

    def set_private(self, value: bool, reason: str) -> bool:
        """Set privacy mode; ``reason`` is logged. Returns False if it was already so."""
        with self._change_lock:
            if self.is_private == value:
                _LOGGER.debug("privacy already %s (%s)", "on" if value else "off", reason)
                return False
            self._apply(value, reason)
            return True

    def close(self) -> None:
        """Release the button pin (idempotent); :meth:`set_private` keeps working."""
        with self._change_lock:
            button, self._button = self._button, None
        if button is not None:
            button.close()

    def _pressed(self) -> None:
        with self._change_lock:
            self._apply(not self.is_private, "button")

    def _apply(self, value: bool, reason: str) -> None:
        with self._state_lock:
            self._private = value
            callbacks = list(self._callbacks)
        _LOGGER.info("privacy mode %s (%s)", "on" if value else "off", reason)
        for callback in callbacks:
            try:
                callback(value)
            except Exception:
                _LOGGER.exception("privacy callback %r failed", callback)


def build_gpio(
    config: GpioConfig,
    *,
    backend: Literal["pi", "sim"],
    pin_factory: object | None = None,
) -> tuple[StatusLight, PrivacySwitch]:
    """The status light and privacy switch for ``config``.

    ``backend="sim"`` uses a fresh gpiozero ``MockFactory`` unless ``pin_factory`` is
    given (tests pass theirs to drive the button pin). ``backend="pi"`` passes
    ``pin_factory`` (normally None) to gpiozero, which then picks lgpio or RPi.GPIO.
    With ``config.enabled`` false no pin is used: a :class:`NullStatusLight` and a
    button-less :class:`PrivacySwitch`.
    """
    if not config.enabled:
        return NullStatusLight(), PrivacySwitch(None)
    if backend == "sim" and pin_factory is None:
        from gpiozero.pins.mock import MockFactory  # optional dependency (appliance extra)

        pin_factory = MockFactory()
    light = GpioStatusLight(config.led_pin, pin_factory=pin_factory)
    try:
        switch = PrivacySwitch(
            config.button_pin, bounce_time=config.button_bounce_s, pin_factory=pin_factory
        )
    except BaseException:
        light.close()
        raise
    _LOGGER.info(
        "GPIO (%s): status LED on GPIO%d, privacy button on GPIO%d",
        backend,
        config.led_pin,
        config.button_pin,
    )
    return light, switch
