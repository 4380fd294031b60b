"""Audio into the room: each remote voice, buffered near real time for the mix.

Each incoming track is turned into 48 kHz mono (a channel average in numpy for Opus's
48 kHz; other rates go through a resampler in a worker thread, so the event loop runs no
codec work) and buffered (at most 200 ms: a slow source loses its oldest audio rather
than building delay). The mixing thread (:mod:`server.media.audio_mix`) takes one 20 ms
chunk from every source each tick. A backlog that a burst or a stall left behind does
not stay: when a source's buffer has not fallen below 40 ms for a whole second, what is
above 40 ms is dropped (once, at a chunk boundary), so every voice stays as close to
real time as its arrival jitter allows — also the patient's microphone, which fills
while no room listens yet. Each source keeps the level of its last chunk, for "who is
speaking" and for the experts' view of the station.

Sources are filled on the event loop and drained by the mixing thread: every change to
a buffer holds the source's lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

_LOGGER = logging.getLogger(__name__)
RATE = 48_000
CHUNK = 960  # 20 ms
MAX_BUFFER = RATE // 5  # 200 ms
KEEP = RATE // 25  # 40 ms: what a source keeps against arrival jitter
TRIM_EVERY = 50  # takes (1 s): a backlog that never went below KEEP in that time is cut
SILENCE_DBFS = -100.0


def mono_48k(frame: av.AudioFrame) -> np.ndarray | None:
    """Interleaved s16 at 48 kHz (what Opus decodes to) as mono samples, by averaging the
    channels in numpy; None for anything that needs a real resampler."""
    channels = len(frame.layout.channels)
    if frame.sample_rate != RATE or frame.format.name != "s16" or channels not in (1, 2):
        return None
    interleaved = frame.to_ndarray().reshape(-1)
    if channels == 1:
        return interleaved.astype(np.int16, copy=False)
    pairs = interleaved.reshape(-1, 2).astype(np.int32)
    return ((pairs[:, 0] + pairs[:, 1]) >> 1).astype(np.int16)


class AudioSource:
    """Drains one remote audio track into a bounded mono buffer."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._buffer: deque[np.ndarray] = deque()
        self._buffered = 0
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self.level_dbfs = SILENCE_DBFS  # of the last chunk taken (silence if none)
        self._takes = 0
        self._lowest = MAX_BUFFER  # the smallest backlog left after a take, this second
        self.trimmed = 0  # samples dropped to stay near real time

    @property
    def attached(self) -> bool:
        """Whether a remote track is feeding this source."""
        return self._task is not None and not self._task.done()

    def attach(self, track: MediaStreamTrack) -> None:
        self.detach()
        self._task = asyncio.create_task(self._drain(track), name=f"audio-{self.name}")

    def detach(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        with self._lock:
            self._buffer.clear()
            self._buffered = 0

    async def _drain(self, track: MediaStreamTrack) -> None:
        resampler: av.AudioResampler | None = None
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            samples = mono_48k(frame)
            if samples is not None:
                self.push(samples)
                continue
            if resampler is None:  # another rate or format: a real resampler, off the loop
                resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for out in await asyncio.to_thread(resampler.resample, frame):
                self.push(out.to_ndarray().reshape(-1).astype(np.int16))

    def push(self, samples: np.ndarray) -> None:
        with self._lock:
            self._push(samples)

    def _push(self, samples: np.ndarray) -> None:
        self._buffer.append(samples)
        self._buffered += len(samples)
        excess = self._buffered - MAX_BUFFER
        while excess > 0:  # keep only the newest 200 ms
            head = self._buffer[0]
            if len(head) <= excess:
                self._buffer.popleft()
                excess -= len(head)
                self._buffered -= len(head)
            else:
                self._buffer[0] = head[excess:]
                self._buffered -= excess
                excess = 0

    def take(self, count: int) -> np.ndarray | None:
        """The next ``count`` samples, or None if fewer are buffered (silence this tick)."""
        with self._lock:
            return self._take(count)

    def _take(self, count: int) -> np.ndarray | None:
        if self._buffered < count:
            self.level_dbfs = SILENCE_DBFS
            return None
        out = np.empty(count, dtype=np.int16)
        filled = 0
        while filled < count:
            head = self._buffer[0]
            n = min(count - filled, len(head))
            out[filled : filled + n] = head[:n]
            filled += n
            if n == len(head):
                self._buffer.popleft()
            else:
                self._buffer[0] = head[n:]
        self._buffered -= count
        self.level_dbfs = level_dbfs(out)
        self._lowest = min(self._lowest, self._buffered)
        self._takes += 1
        if self._takes >= TRIM_EVERY:
            if self._lowest > KEEP:
                self._drop_oldest(self._lowest - KEEP)
            self._takes, self._lowest = 0, MAX_BUFFER
        return out

    def _drop_oldest(self, count: int) -> None:
        self.trimmed += count
        self._buffered -= count
        while count > 0:
            head = self._buffer[0]
            if len(head) <= count:
                self._buffer.popleft()
                count -= len(head)
            else:
                self._buffer[0] = head[count:]
                count = 0


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of s16 ``samples`` in dB below full scale (silence: -100)."""
    if not len(samples):
        return SILENCE_DBFS
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    return max(SILENCE_DBFS, 20.0 * float(np.log10(rms / 32768.0))) if rms > 0 else SILENCE_DBFS
