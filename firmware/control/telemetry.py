"""Periodic telemetry: temperature, load, stream rate and drops (not retained)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from clinicam.const import TOPIC_TELEMETRY
from firmware.control.link import DeviceLink
from firmware.media.output import StreamOutput

_LOGGER = logging.getLogger(__name__)
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature_c(path: Path = THERMAL_ZONE) -> float | None:
    """SoC temperature in °C, or None where the kernel does not report one."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


class Telemetry:
    """Samples and publishes every ``interval_s`` seconds."""

    def __init__(self, link: DeviceLink, output: StreamOutput, interval_s: float) -> None:
        self._link = link
        self._output = output
        self._interval = interval_s
        self._started = time.monotonic()
        self._last = (time.monotonic(), output.frames_sent, output.bytes_sent)

    def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        out = self._output
        then, frames, sent = self._last
        self._last = (now, out.frames_sent, out.bytes_sent)
        span = max(now - then, 1e-6)
        return {
            "cpu_temp_c": cpu_temperature_c(),
            "load_1m": round(os.getloadavg()[0], 2),
            "fps": round((out.frames_sent - frames) / span, 1),
            "bitrate_kbps": round((out.bytes_sent - sent) * 8 / span / 1000, 1),
            "frames_sent": out.frames_sent,
            "dropped_frames": out.frames_dropped,
            "uptime_s": round(now - self._started),
            "link": asdict(out.link.figures()) if out.link is not None else None,
            "recording": out.recording() if out.recording is not None else None,
        }

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._link.publish(TOPIC_TELEMETRY, json.dumps(self.sample()).encode())
