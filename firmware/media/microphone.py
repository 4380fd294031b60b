"""The patient's microphone (R1: experts hear the patient), muted in privacy mode.

On a Pi the microphone is an ALSA capture device (a USB microphone or a HAT), read
through PyAV by aiortc's MediaPlayer. The simulation is a quiet synthetic "room"
(a soft 220 Hz hum with a slow swell) so a listener can hear that the path works.
Either way a privacy gate sits in front: while the privacy switch is on, only
silence leaves the appliance.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack

_LOGGER = logging.getLogger(__name__)
RATE = 48_000
SAMPLES = 960  # 20 ms
TIME_BASE = fractions.Fraction(1, RATE)
SIM_TONE_HZ = 220.0
SIM_LEVEL = 0.08  # of full scale


class SimMicrophone(MediaStreamTrack):
    """20 ms frames of a soft synthetic tone, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._pts / RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        t = (self._pts + np.arange(SAMPLES)) / RATE
        swell = 0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t)
        wave = SIM_LEVEL * swell * np.sin(2 * np.pi * SIM_TONE_HZ * t)
        frame = av.AudioFrame.from_ndarray(
            (wave * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += SAMPLES
        return frame


class PrivacyGatedAudio(MediaStreamTrack):
    """Passes ``source`` through, or silence of the same shape while ``private()``."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, private: Callable[[], bool]) -> None:
        super().__init__()
        self._source = source
        self._private = private

    async def recv(self) -> Any:
        frame = await self._source.recv()
        if not self._private() or not isinstance(frame, av.AudioFrame):
            return frame
        silent = np.zeros_like(frame.to_ndarray())
        quiet = av.AudioFrame.from_ndarray(
            silent, format=frame.format.name, layout=frame.layout.name
        )
        quiet.sample_rate, quiet.pts, quiet.time_base = (
            frame.sample_rate,
            frame.pts,
            frame.time_base,
        )
        return quiet

    def stop(self) -> None:
        super().stop()
        self._source.stop()


def open_microphone(
    backend: str, device: str, private: Callable[[], bool]
) -> MediaStreamTrack | None:
    """The patient microphone for ``backend`` ("sim" or "pi"), or None if there is none."""
    if backend == "sim":
        return PrivacyGatedAudio(SimMicrophone(), private)
    from aiortc.contrib.media import MediaPlayer

    try:
        player = MediaPlayer(device, format="alsa", options={"channels": "1"})
    except (av.FFmpegError, OSError) as exc:
        _LOGGER.warning("no microphone at ALSA device %r: %s (video only)", device, exc)
        return None
    if player.audio is None:
        return None
    return PrivacyGatedAudio(player.audio, private)
