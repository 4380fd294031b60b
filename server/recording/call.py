"""One consultation's recording, taken from the media the room already has.

Nothing is decoded twice: the recording composes the room's newest decoded frames (the
same :class:`~server.media.compositor.TileSource` mapping the experts' composites are
made from) into one neutral layout, the patient's live view large and the experts'
webcams around it, with their names; never an expert's own main-window choice, never
the decision-support chart. Sound is the room's mixer's full mix (every expert and the
clinic's microphone, as the mixer hears them), handed over by the mixing thread each
20 ms. The recording's own cost is one small composite and one small H.264 + AAC encode
(640×360 at 10 fps by default), run in the default executor like the composites.

While nobody is in the call the open segment is closed and nothing is written; when the
room is gone the recording ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from server.archive.call_writer import SegmentedRecording
from server.config import RecordingConfig
from server.media.audio_mix import AudioMixer
from server.media.compositor import Compositor, TileSource
from server.media.layout import LIVE, PRESENTATION, compute_layout, expert_window

_LOGGER = logging.getLogger(__name__)
MAX_AUDIO_BACKLOG = 250  # chunks (5 s) kept if the recording falls behind


def recording_windows(experts: Sequence[str]) -> list[str]:
    """The neutral layout's windows: the experts, what is presented, the patient's view."""
    return [*(expert_window(name) for name in experts), PRESENTATION, LIVE]


class CallRecording:
    """Composes, hears and writes one consultation while it runs."""

    def __init__(
        self,
        config: RecordingConfig,
        experts: Sequence[str],
        sources: Callable[[], Mapping[str, TileSource]],
        audio: AudioMixer,
        writer: SegmentedRecording,
        *,
        in_call: Callable[[], bool],
        alive: Callable[[], bool],
        locale: str,
    ) -> None:
        self._config = config
        self._layout = compute_layout(recording_windows(experts), LIVE, config.width, config.height)
        self._compositor = Compositor(config.width, config.height)
        self._sources = sources
        self._audio = audio
        self.writer = writer
        self._in_call = in_call
        self._alive = alive
        self._locale = locale
        self._heard: list[tuple[np.ndarray, float]] = []
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.frames = 0
        self.cpu_s = 0.0  # thread CPU time spent composing, encoding and filing

    def start(self) -> None:
        self._audio.record_tap = self._hear
        self._task = asyncio.create_task(self._run(), name="call-recording")

    def _hear(self, samples: np.ndarray) -> None:
        """The full mix of one 20 ms tick (the mixing thread)."""
        with self._lock:
            if len(self._heard) < MAX_AUDIO_BACKLOG:
                self._heard.append((samples, time.monotonic() - self._t0))

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0

    def _step(self, sources: Mapping[str, TileSource], elapsed: float) -> None:
        started = time.thread_time()
        with self._lock:
            heard, self._heard = self._heard, []
        for samples, at in heard:  # before the frame: they belong to the open segment
            self.writer.add_audio(samples, at)
        frame = self._compositor.compose(self._layout, sources, (), self._locale)
        self.writer.add_video(frame, elapsed)
        self.frames += 1
        self.cpu_s += time.thread_time() - started

    def _pause(self, elapsed: float) -> None:
        with self._lock:
            self._heard.clear()
        self.writer.pause(elapsed)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self._config.fps
        next_at = time.monotonic()
        while self._alive() and not self._stopping:
            try:
                if self._in_call():
                    await loop.run_in_executor(None, self._step, self._sources(), self._elapsed())
                else:
                    await loop.run_in_executor(None, self._pause, self._elapsed())
            except Exception:  # the live call goes on whatever happens to its recording
                _LOGGER.exception("recording of a consultation failed; it stops here")
                break
            next_at = max(next_at + period, time.monotonic())  # late: go on, never burst
            await asyncio.sleep(next_at - time.monotonic())
        await self._finish()

    async def _finish(self) -> None:
        if self._audio.record_tap == self._hear:
            self._audio.record_tap = None
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self.writer.close, self._elapsed()
            )
        except Exception:
            _LOGGER.exception("the last segment of a recording could not be finished")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """End the recording now: the open segment is finished and filed."""
        self._stopping = True
        if self._task is not None:
            await self._task
