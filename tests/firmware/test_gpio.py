"""The status LED and privacy button on real gpiozero devices over ``MockFactory`` pins."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from gpiozero import LED, Button
from gpiozero.pins.mock import MockFactory
from pydantic import ValidationError

from firmware.hardware.gpio import (
    PATTERNS,
    GpioConfig,
    GpioStatusLight,
    LightPattern,
    NullStatusLight,
    PrivacySwitch,
    build_gpio,
)
from firmware.media.privacy import privacy_frame

BLINKING = [pattern for pattern in LightPattern if not PATTERNS[pattern].solid]
LONGEST_TEST_PERIOD_S = 2.0  # long patterns are time-scaled down to this
TOLERANCE = 0.5  # ±50 %: this machine is noisy
TOLERANCE_FLOOR_S = 0.04


@pytest.fixture
def factory() -> Iterator[Any]:
    """A private mock pin factory (gpiozero's global ``Device.pin_factory`` is untouched)."""
    pins = MockFactory()
    yield pins
    pins.close()


def _wait_until(predicate: Callable[[], bool], timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def _press(pin: Any, bounce_s: float) -> None:
    """Push and release the button (pull-up: pressed = low), waiting out the bounce time."""
    pin.drive_low()
    time.sleep(bounce_s * 1.5)
    pin.drive_high()
    time.sleep(bounce_s * 1.5)


def _segments(states: list[Any]) -> list[tuple[bool, float]]:
    """Completed (state, seconds) runs of a mock pin after ``clear_states()``.

    MockPin's ``states[k].timestamp`` is how long ``states[k - 1].state`` lasted;
    ``states[0]`` is the state when the history was cleared and ``states[1]`` the
    first switch-on, so runs start at ``states[1]``.
    """
    return [(bool(states[k - 1].state), float(states[k].timestamp)) for k in range(2, len(states))]


def _close_enough(observed: float, expected: float) -> bool:
    return abs(observed - expected) <= max(TOLERANCE * expected, TOLERANCE_FLOOR_S)


# --- privacy button ------------------------------------------------------------------


def test_button_press_toggles_privacy_and_fires_callbacks(factory: Any) -> None:
    config = GpioConfig(button_bounce_s=0.01)
    light, switch = build_gpio(config, backend="sim", pin_factory=factory)
    events: list[bool] = []
    switch.on_change(events.append)
    button_pin = factory.pin(config.button_pin)
    try:
        assert switch.is_private is False
        assert button_pin.state is True  # pulled up, not pressed

        _press(button_pin, config.button_bounce_s)
        assert _wait_until(lambda: events == [True])
        assert switch.is_private is True

        _press(button_pin, config.button_bounce_s)
        assert _wait_until(lambda: events == [True, False])
        assert switch.is_private is False
    finally:
        light.close()
        switch.close()


def test_release_alone_does_not_toggle(factory: Any) -> None:
    switch = PrivacySwitch(27, bounce_time=0.01, pin_factory=factory)
    events: list[bool] = []
    switch.on_change(events.append)
    pin = factory.pin(27)
    try:
        pin.drive_low()
        assert _wait_until(lambda: events == [True])
        time.sleep(0.05)
        pin.drive_high()  # releasing must not toggle back
        time.sleep(0.05)
        assert events == [True]
        assert switch.is_private is True
    finally:
        switch.close()


def test_set_private_fires_callbacks_once_per_change(factory: Any) -> None:
    switch = PrivacySwitch(27, bounce_time=0.01, pin_factory=factory)
    first: list[bool] = []
    second: list[bool] = []
    switch.on_change(first.append)
    switch.on_change(second.append)
    try:
        assert switch.set_private(True, "server") is True
        assert switch.set_private(True, "server again") is False  # same value: no event
        assert first == second == [True]
        assert switch.is_private is True

        _press(factory.pin(27), 0.01)  # the button toggles from the server-set state
        assert _wait_until(lambda: first == [True, False])

        assert switch.set_private(False, "command") is False
        assert switch.set_private(True, "command") is True
        assert first == second == [True, False, True]
    finally:
        switch.close()


def test_concurrent_set_private_fires_once() -> None:
    switch = PrivacySwitch(None)
    events: list[bool] = []
    switch.on_change(events.append)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        switch.set_private(True, "race")

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert events == [True]
    assert switch.is_private is True


def test_failing_callback_does_not_stop_the_others() -> None:
    switch = PrivacySwitch(None)
    events: list[bool] = []

    def broken(value: bool) -> None:
        raise RuntimeError("boom")

    switch.on_change(broken)
    switch.on_change(events.append)
    assert switch.set_private(True, "test") is True
    assert events == [True]
    assert switch.is_private is True


# --- status LED ----------------------------------------------------------------------


def test_pattern_table_shapes_are_distinct() -> None:
    shapes = {(timing.solid, timing.steps) for timing in PATTERNS.values()}
    assert set(PATTERNS) == set(LightPattern)
    assert len(shapes) == len(LightPattern)
    assert PATTERNS[LightPattern.STREAMING].solid
    assert PATTERNS[LightPattern.PRIVACY].pulses == 2
    assert PATTERNS[LightPattern.PROVISION_OK].pulses == 3
    assert PATTERNS[LightPattern.PROVISION_FAILED].pulses == 9


def test_each_pattern_produces_its_documented_timing(factory: Any) -> None:
    # All patterns run side by side, each on its own pin, so the test takes one window.
    pins = [5, 6, 12, 13, 16, 19, 20]
    runs: list[tuple[LightPattern, GpioStatusLight, Any, float]] = []
    for pin, pattern in zip(pins, BLINKING, strict=False):
        scale = min(1.0, LONGEST_TEST_PERIOD_S / PATTERNS[pattern].period)
        light = GpioStatusLight(pin, pin_factory=factory, time_scale=scale)
        runs.append((pattern, light, factory.pin(pin), scale))
    window = LONGEST_TEST_PERIOD_S + 0.5
    for pattern, light, mock_pin, _ in runs:
        mock_pin.clear_states()
        light.show(pattern)
    time.sleep(window)
    histories = [list(mock_pin.states) for _, _, mock_pin, _ in runs]
    for _, light, _, _ in runs:
        light.close()

    for (pattern, _, _, scale), history in zip(runs, histories, strict=True):
        timing = PATTERNS[pattern]
        expected = [(index % 2 == 0, step * scale) for index, step in enumerate(timing.steps)]
        observed = _segments(history)
        # One whole cycle: its last "off" only ends when the next cycle switches on.
        assert len(observed) >= len(expected), (pattern, observed)
        first_cycle = observed[: len(expected)]
        assert sum(state for state, _ in first_cycle) == timing.pulses, (pattern, first_cycle)
        for (state, seconds), (want_state, want_seconds) in zip(first_cycle, expected, strict=True):
            assert state is want_state, (pattern, first_cycle)
            assert _close_enough(seconds, want_seconds), (pattern, first_cycle, expected)
        # Counting flashes over the whole window (robust to per-step jitter).
        flashes = sum(1 for entry in history[1:] if entry.state)
        expected_flashes = window / (timing.period * scale) * timing.pulses
        assert 0.5 * expected_flashes <= flashes <= expected_flashes + timing.pulses, (
            pattern,
            flashes,
            expected_flashes,
        )


def test_streaming_is_solid_on(factory: Any) -> None:
    light = GpioStatusLight(17, pin_factory=factory)
    pin = factory.pin(17)
    try:
        pin.clear_states()
        light.show(LightPattern.STREAMING)
        time.sleep(0.3)
        assert [state.state for state in pin.states] == [False, True]
        assert pin.state is True
    finally:
        light.close()
    assert pin.state is False


@pytest.mark.parametrize("old", [LightPattern.FAULT, LightPattern.PRIVACY])
def test_switching_pattern_stops_the_old_one(factory: Any, old: LightPattern) -> None:
    before = set(threading.enumerate())
    light = GpioStatusLight(17, pin_factory=factory)
    pin = factory.pin(17)
    try:
        light.show(old)
        assert _wait_until(lambda: len(pin.states) >= 3)  # it is blinking
        assert set(threading.enumerate()) - before  # on a background thread
        light.show(LightPattern.STREAMING)
        assert light.pattern is LightPattern.STREAMING
        assert set(threading.enumerate()) - before == set()  # old pattern's thread gone
        pin.clear_states()
        time.sleep(0.4)  # longer than any gap of FAULT or PRIVACY's double blink
        assert [state.state for state in pin.states] == [True]  # no more changes
    finally:
        light.close()


def test_show_returns_immediately(factory: Any) -> None:
    light = GpioStatusLight(17, pin_factory=factory)
    try:
        for pattern in [*LightPattern, LightPattern.BOOTING]:
            started = time.monotonic()
            light.show(pattern)
            assert time.monotonic() - started < 0.25, pattern
    finally:
        light.close()


def test_close_stops_threads_and_releases_pins(factory: Any) -> None:
    before = set(threading.enumerate())
    config = GpioConfig()
    light, switch = build_gpio(config, backend="sim", pin_factory=factory)
    light.show(LightPattern.PROVISION_FAILED)
    assert _wait_until(lambda: factory.pin(config.led_pin).state is True)
    assert set(threading.enumerate()) - before

    light.close()
    switch.close()
    light.close()  # idempotent
    switch.close()

    assert set(threading.enumerate()) - before == set()
    assert factory.pin(config.led_pin).state is False
    light.show(LightPattern.FAULT)  # after close: ignored, no thread, no error
    assert set(threading.enumerate()) - before == set()
    # Both pins are free again.
    LED(config.led_pin, pin_factory=factory).close()
    Button(config.button_pin, pin_factory=factory).close()


def test_disabled_gpio_uses_no_pins(factory: Any) -> None:
    config = GpioConfig(enabled=False)
    light, switch = build_gpio(config, backend="sim", pin_factory=factory)
    assert isinstance(light, NullStatusLight)
    light.show(LightPattern.ONLINE)
    assert light.pattern is LightPattern.ONLINE
    assert switch.set_private(True, "server") is True
    assert switch.is_private is True
    LED(config.led_pin, pin_factory=factory).close()
    Button(config.button_pin, pin_factory=factory).close()
    light.close()
    switch.close()


def test_sim_backend_makes_its_own_factory() -> None:
    light, switch = build_gpio(GpioConfig(), backend="sim")
    try:
        assert isinstance(light, GpioStatusLight)
        light.show(LightPattern.ONLINE)
    finally:
        light.close()
        switch.close()


# --- configuration -------------------------------------------------------------------


def test_config_defaults() -> None:
    config = GpioConfig()
    assert (config.enabled, config.led_pin, config.button_pin) == (True, 17, 27)
    assert config.button_bounce_s == pytest.approx(0.05)


def test_config_refuses_equal_pins() -> None:
    with pytest.raises(ValidationError, match="led_pin and button_pin must differ"):
        GpioConfig(led_pin=22, button_pin=22)


@pytest.mark.parametrize(
    ("field", "value"),
    [("led_pin", 1), ("led_pin", 28), ("button_pin", 0), ("button_pin", 40)],
)
def test_config_refuses_out_of_range_pins(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as info:
        GpioConfig.model_validate({field: value})
    assert [error["loc"] for error in info.value.errors()] == [(field,)]
    assert field in str(info.value)


def test_config_refuses_negative_bounce_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="button_bounce_s"):
        GpioConfig(button_bounce_s=-0.1)
    with pytest.raises(ValidationError, match="led_pim"):
        GpioConfig.model_validate({"led_pim": 5})


# --- privacy frame -------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(320, 240), (1280, 720)])
def test_privacy_frame_is_dark_with_text_in_the_middle(width: int, height: int) -> None:
    frame = privacy_frame(width, height)
    assert frame.format.name == "yuv420p"
    assert (frame.width, frame.height) == (width, height)
    luma = frame.to_ndarray()[:height]  # yuv420p: the Y plane comes first
    assert np.mean(luma < 50) > 0.9  # mostly dark
    third = height // 3
    bright = luma > 150
    assert bright[third : 2 * third].sum() > 20  # the text, in the middle third
    assert bright[:third].sum() == 0
    assert bright[2 * third :].sum() == 0


def test_privacy_frame_returns_a_new_frame_each_time() -> None:
    assert privacy_frame(320, 240) is not privacy_frame(320, 240)


@pytest.mark.parametrize(("width", "height"), [(0, 240), (321, 240), (320, 241)])
def test_privacy_frame_refuses_unusable_sizes(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="even"):
        privacy_frame(width, height)
