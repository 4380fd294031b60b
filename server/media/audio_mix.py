"""What each listener hears: everyone but themselves, mixed and sent in real time.

Who hears whom (R1, R16): a listener never hears itself, nor the sources it is made
deaf to (the clinic station does not hear the appliance's microphone beside it). A
source may stand in for another: while the clinic station's microphone is attached,
the appliance's microphone is left out of every mix, so the patient's voice never
arrives twice (echo, a doubled voice); when the station leaves, the appliance's
microphone is heard again.

When (R16's mouth-to-ear budget): a mixing thread per consultation ticks every 20 ms by
the monotonic clock, apart from the event loop, so neither a busy loop nor the video
encoders decide when a voice leaves. Each tick takes one chunk from every source, mixes
one chunk per listener and encodes it with that listener's own voice-grade Opus encoder
(:func:`clinicam.opus.voice_codec`); the event loop only hands the finished packet to
aiortc, which packs it into RTP. Timestamps follow the clock. A tick the thread could
not run on time (the machine was busy) is skipped — its chunks taken and dropped, its
timestamp left out, one lost packet for the receiver to conceal — rather than sent late
in a burst: a receiver sizes its jitter buffer by the worst lateness it has seen, and
every later word would wait that long. For the same reason a sender that fell behind on
a stalled loop sends only the newest packets (:data:`BACKLOG_MAX`), not the backlog;
a loop that is late but keeps pace loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack

from clinicam.opus import voice_codec
from server.media.audio import CHUNK, RATE, AudioSource

_LOGGER = logging.getLogger(__name__)
TICK_S = CHUNK / RATE  # 20 ms
LATE_TICKS = 3  # a tick due this many periods ago or more is skipped, not sent late
BACKLOG_MAX = 3  # packets (60 ms) a sender behind may still send late; older ones go
QUEUE_MAX = 10
TIME_BASE = Fraction(1, RATE)
EVERYONE = ""  # the mix of every source heard (the call's recording), never a listener


class MixTrack(MediaStreamTrack):
    """What one listener hears: Opus packets, encoded by the mixing thread."""

    kind = "audio"

    def __init__(self, listener: str, deaf_to: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.listener = listener
        self.deaf_to = deaf_to
        self.queue: asyncio.Queue[av.Packet[Any]] = asyncio.Queue(maxsize=QUEUE_MAX)
        self.stale = 0  # packets left out because a newer one was waiting
        self._codec = voice_codec()  # used by the mixing thread only

    def encode(self, samples: np.ndarray, pts: int) -> list[av.Packet[Any]]:
        """One 20 ms chunk as Opus, stamped ``pts`` (mixing thread)."""
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = TIME_BASE
        packets = self._codec.encode(frame)
        for packet in packets:  # the encoder's own pts lag by its look-ahead: use the clock's
            packet.pts = pts
            packet.time_base = TIME_BASE
        return packets

    def deliver(self, packet: av.Packet[Any]) -> None:
        """Queue a packet for the sender (event loop); a stalled sender loses the oldest."""
        if self.queue.full():
            self.queue.get_nowait()
            self.stale += 1
        self.queue.put_nowait(packet)

    async def recv(self) -> av.Packet[Any]:  # aiortc packs ready packets too
        while self.queue.qsize() > BACKLOG_MAX:  # a stalled sender: the newest go, not all
            self.queue.get_nowait()
            self.stale += 1
        return await self.queue.get()


class AudioMixer:
    """Mixes every source for every listener, excluding the listener's own voice.

    ``clocked=False`` leaves the mixing to whoever calls :meth:`mix_once` (tests).
    """

    def __init__(self, *, clocked: bool = True) -> None:
        self.sources: dict[str, AudioSource] = {}
        self.listeners: dict[str, MixTrack] = {}
        self.stand_ins: dict[str, str] = {}  # source → the source it replaces while attached
        self.silenced: set[str] = set()  # sources nobody hears (the station in privacy mode)
        self.skipped = 0  # ticks the thread could not run on time
        # Hears every tick's full mix in the mixing thread, after the listeners' packets
        # left (the call's recording, O4); None: no full mix is made.
        self.record_tap: Callable[[np.ndarray], None] | None = None
        self._clocked = clocked
        self._lock = threading.Lock()  # the dicts above change on the loop, read in the thread
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def source(self, name: str) -> AudioSource:
        with self._lock:
            if name not in self.sources:
                self.sources[name] = AudioSource(name)
            return self.sources[name]

    def listen(self, listener: str, *, deaf_to: frozenset[str] = frozenset()) -> MixTrack:
        """A track of everything but ``listener``'s own voice and the ``deaf_to`` sources."""
        track = MixTrack(listener, deaf_to)
        with self._lock:
            self.listeners[listener] = track
        if self._clocked and self._thread is None:
            loop = asyncio.get_running_loop()
            self._thread = threading.Thread(
                target=self._run, args=(loop,), name="audio-mix", daemon=True
            )
            self._thread.start()
        return track

    def unlisten(self, track: MixTrack) -> None:
        with self._lock:
            if self.listeners.get(track.listener) is track:
                del self.listeners[track.listener]
        track.stop()

    def stand_in(self, source: str, replaces: str) -> None:
        """While ``source`` is attached, leave ``replaces`` out of every mix."""
        with self._lock:
            self.stand_ins[source] = replaces

    def silence(self, source: str, silent: bool) -> None:
        """Leave ``source`` out of every mix (privacy at the station), or hear it again."""
        with self._lock:
            (self.silenced.add if silent else self.silenced.discard)(source)

    def mix_once(self) -> dict[str, np.ndarray]:
        """Take one chunk from every source; each listener's mix of the others."""
        with self._lock:
            sources = list(self.sources.items())
            listeners = list(self.listeners.values())
            left_out = set(self.silenced)
            left_out.update(
                replaced
                for source, replaced in self.stand_ins.items()
                if (s := self.sources.get(source)) is not None and s.attached
            )
        chunks = {name: s.take(CHUNK) for name, s in sources}  # every source is drained
        mixes: dict[str, np.ndarray] = {}
        for track in listeners:
            total = np.zeros(CHUNK, dtype=np.int32)
            for name, chunk in chunks.items():
                if chunk is None or name in left_out:
                    continue
                if name != track.listener and name not in track.deaf_to:
                    total += chunk
            mixes[track.listener] = np.clip(total, -32768, 32767).astype(np.int16)
        if self.record_tap is not None:
            total = np.zeros(CHUNK, dtype=np.int32)
            for name, chunk in chunks.items():
                if chunk is not None and name not in left_out:
                    total += chunk
            mixes[EVERYONE] = np.clip(total, -32768, 32767).astype(np.int16)
        return mixes

    def figures(self) -> dict[str, Any]:
        """Where voices were shortened to stay in real time (for the latency endpoint)."""
        with self._lock:
            listeners = list(self.listeners.values())
            sources = list(self.sources.values())
        return {
            "ticks_skipped": self.skipped,
            "stale_packets": {t.listener: t.stale for t in listeners},
            "trimmed_ms": {s.name: round(1000 * s.trimmed / RATE) for s in sources},
        }

    def _send(self, pts: int, hand_over: Callable[..., Any]) -> None:
        mixes = self.mix_once()
        everyone = mixes.pop(EVERYONE, None)
        with self._lock:
            tracks = [t for t in self.listeners.values() if t.listener in mixes]
        for track in tracks:
            for packet in track.encode(mixes[track.listener], pts):
                hand_over(track.deliver, packet)
        tap = self.record_tap
        if everyone is not None and tap is not None:
            tap(everyone)

    def _skip(self, ticks: int) -> None:
        """Drop what ``ticks`` missed ticks would have carried: the voices stay current."""
        with self._lock:
            sources = list(self.sources.values())
        for source in sources:
            for _ in range(min(ticks, 10)):  # 200 ms is all a source keeps
                if source.take(CHUNK) is None:
                    break
        self.skipped += ticks

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        start = time.monotonic()
        done = 0  # ticks sent or skipped since start
        while not self._stop.is_set():
            due = start + done * TICK_S
            wait = due - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
                continue
            behind = int(-wait / TICK_S)
            if behind >= LATE_TICKS:
                self._skip(behind)
                done += behind
            try:
                self._send(done * CHUNK, loop.call_soon_threadsafe)
            except Exception:  # a broken tick must not silence the room for good
                if loop.is_closed():  # the server is going away
                    return
                _LOGGER.exception("audio mix tick failed")
            done += 1

    async def close(self) -> None:
        for track in list(self.listeners.values()):
            self.unlisten(track)
        for source in list(self.sources.values()):
            source.detach()
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 1.0)
            self._thread = None
