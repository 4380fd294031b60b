"""Fixtures shared by the updater tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clinicam.test_update import WATCHDOG_USEC, Appliance


@pytest.fixture
def appliance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Appliance]:
    rig = Appliance(tmp_path)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", WATCHDOG_USEC)  # the unit's WatchdogSec=, shortened
    monkeypatch.setenv("CLINICAM_HEALTH_FILE", str(rig.health))
    monkeypatch.setenv("FAKE_ROOT", str(rig.root))
    monkeypatch.setenv("FAKE_SERVICE_DIR", str(rig.service))
    yield rig
    rig.stop()
