"""One composite per main-window choice, encoded once, sent to every expert who chose it.

The mixer composes when a new frame of the patient's live view arrives, at most at the
output frame rate, and otherwise on a fixed tick at that rate (so webcams and shared
items still move when the appliance is quiet): a live frame waits for no tick. Each
time it takes the newest frame of
each source (latest wins, so a stalled source never stalls the output), composes one
frame per distinct main window and language among the connected viewers (every text
in it is drawn in the viewer's language), encodes each once with
H.264 and hands the packets to those experts' tracks; aiortc packs them into RTP
without re-encoding. A new viewer of a variant gets a keyframe at once; otherwise an
IDR every two seconds lets any receiver recover from loss.

A viewer also says the shape of their screen (:data:`~server.media.layout.PORTRAIT` on
a phone held upright): a portrait viewer's composite is laid out and encoded for a
portrait frame (its own compositor, ladder and encodes), shared with the viewers of the
same main window and shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import av
from aiortc import MediaStreamTrack
from av.video.reformatter import VideoReformatter

from clinicam.frametrace import FrameTrace
from clinicam.h264 import VIDEO_TIME_BASE, H264StreamEncoder
from clinicam.i18n import ENGLISH
from server.config import LiveViewConfig
from server.media.badges import Badge
from server.media.compositor import Compositor, TileSource
from server.media.downlink import (
    STILL_EVERY_S,
    DownlinkLadder,
    ViewerLink,
    composite_ladder,
    shaped,
)
from server.media.latency import LatencyStats
from server.media.layout import LANDSCAPE, LIVE, PORTRAIT, SHAPES, Layout, portrait_layout
from server.media.watermark import Watermark

_LOGGER = logging.getLogger(__name__)
QUEUE_MAX = 3  # frames waiting for the network: more means the link or the loop is behind
Encoded = tuple["av.Packet[Any]", FrameTrace | None]
KEYFRAME_INTERVAL_S = 2.0
KEYFRAME_REQUEST_GAP_S = 0.5
MIN_INTERVAL_SHARE = 0.8  # a live frame may be composed this soon (× period) after the last


class CompositeTrack(MediaStreamTrack):
    """What one expert receives: encoded packets of the variant they chose."""

    kind = "video"

    def __init__(
        self,
        on_keyframe_needed: Callable[[], None],
        latency: LatencyStats | None = None,
    ) -> None:
        super().__init__()
        self._queue: asyncio.Queue[Encoded] = asyncio.Queue(maxsize=QUEUE_MAX)
        self._need_keyframe = True
        self._on_keyframe_needed = on_keyframe_needed
        self._latency = latency
        self.main = "live"
        self.viewer = ""
        self.locale = ENGLISH  # the viewer's language: what the composite's texts are in
        self.shape = LANDSCAPE  # the viewer's screen: landscape or portrait
        self.link: ViewerLink | None = None  # this viewer's rung (server.media.downlink)
        self.variant = ""  # the encode it gets now
        self.flushes = 0
        self._last_keyframe_request = float("-inf")
        # when the appliance captured the live frame in the packet recv() gave last (µs
        # since 1970, its clock), None if that composite shows none: its RTP packets carry
        # it (server.media.capture_time)
        self.capture_us: int | None = None

    def push(self, packets: list[Encoded]) -> None:
        for packet, trace in packets:
            if self._need_keyframe and not packet.is_keyframe:
                continue
            if self._queue.full():  # the network cannot keep up: restart at a keyframe
                while not self._queue.empty():
                    self._queue.get_nowait()
                self.flushes += 1
                self._need_keyframe = True
                self._on_keyframe_needed()
                if not packet.is_keyframe:
                    continue
            self._need_keyframe = False
            self._queue.put_nowait((packet, trace))

    def request_keyframe(self) -> None:
        """The viewer lost pictures (PLI): the shared encoder's next frame is an IDR,
        at most every ``KEYFRAME_REQUEST_GAP_S`` so a struggling viewer cannot flood
        everyone who shares the encode with keyframes."""
        now = time.monotonic()
        if now - self._last_keyframe_request >= KEYFRAME_REQUEST_GAP_S:
            self._last_keyframe_request = now
            self._on_keyframe_needed()

    def restart(self) -> None:
        """Wait for the next keyframe (after switching variant)."""
        self._need_keyframe = True
        while not self._queue.empty():
            self._queue.get_nowait()

    async def recv(self) -> av.Packet[Any]:
        packet, trace = await self._queue.get()
        self.capture_us = trace.stamps.get("captured") if trace is not None else None
        if trace is not None and self._latency is not None:
            sent = trace.copy()  # viewers of one variant share the packet and its stamps
            sent.mark("composite_sent")
            self._latency.record(sent)
        return packet


class CompositeMixer:
    """The fixed-tick compose/encode loop of one consultation."""

    def __init__(
        self,
        config: LiveViewConfig,
        layout_for: Callable[[str], Layout],
        sources: Callable[[], Mapping[str, TileSource]],
        *,
        watermark: Callable[[str], str] | None = None,
        live_arrivals: set[asyncio.Event] | None = None,
        badges: Callable[[str], Sequence[Badge]] | None = None,
    ) -> None:
        """``watermark`` (viewer → name to show) gives every viewer their own marked encode;
        ``live_arrivals`` is the live feed's listener set: compose when a live frame comes;
        ``badges`` (main window → badges) marks states such as recording in a variant."""
        self._badges = badges
        self._config = config
        self._watermark = watermark
        self._marks: dict[tuple[str, str, str], Watermark] = {}
        self._layout_for = layout_for
        self._sources = sources
        self._shaped = {shape: shaped(config, shape) for shape in SHAPES}
        self._compositors = {
            shape: Compositor(c.width, c.height, stall_after_s=c.stall_after_s)
            for shape, c in self._shaped.items()
        }
        self._tracks: set[CompositeTrack] = set()
        self._encoders: dict[str, H264StreamEncoder] = {}
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.ticks_skipped = 0  # ticks not composed because the previous one ran late
        self.latency = LatencyStats()
        self.rate_share = 1.0  # < 1 when the hub is overloaded (server.media.pressure)
        self._encoded_share = 1.0  # the share the current encoders were made for
        self.ladders: dict[str, DownlinkLadder] = {
            shape: composite_ladder(c) for shape, c in self._shaped.items()
        }
        self.ladder = self.ladders[LANDSCAPE]
        self._scalers: dict[str, VideoReformatter] = {}  # one swscale context per variant
        self._arrived = asyncio.Event()
        self._arrivals = live_arrivals
        if live_arrivals is not None:
            live_arrivals.add(self._arrived)

    def _variant(self, track: CompositeTrack) -> str:
        """Viewers who chose the same main window, read the same language, whose links allow
        the same rung and whose screens have the same shape share one encode, unless
        watermarked: ``main NUL locale NUL viewer NUL rung NUL shape``."""
        viewer = track.viewer if self._watermark else ""
        rung = track.link.rung if track.link is not None else 0
        return f"{track.main}\x00{track.locale}\x00{viewer}\x00{rung}\x00{track.shape}"

    def layout(self, main: str, shape: str = LANDSCAPE) -> Layout:
        """The layout with ``main`` large for a screen of ``shape``."""
        layout = self._layout_for(main)
        if shape != PORTRAIT:
            return layout
        size = self._shaped[PORTRAIT]
        return portrait_layout(layout.windows, layout.main, size.width, size.height)

    def new_track(
        self, main: str, viewer: str = "", *, locale: str = ENGLISH, shape: str = LANDSCAPE
    ) -> CompositeTrack:
        """A composite for ``viewer``, its texts in ``locale`` ("zh-CN" or "en"), for a
        screen of ``shape`` (landscape or portrait)."""
        if shape not in SHAPES:
            raise ValueError(f"shape: {shape!r} is not one of {list(SHAPES)}")
        track = CompositeTrack(lambda: self._keyframe(self._variant(track)), self.latency)
        track.main = main
        track.viewer = viewer
        track.locale = locale
        track.shape = shape
        track.link = ViewerLink(self.ladders[shape])
        track.variant = self._variant(track)
        self._tracks.add(track)
        self._keyframe(self._variant(track))
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="composite")
        return track

    def choose(self, track: CompositeTrack, main: str) -> None:
        if track.main != main:
            track.main = main
            self._follow_variant(track)

    def _follow_variant(self, track: CompositeTrack) -> None:
        """The track's encode changed (main window or rung): start it at a keyframe."""
        variant = self._variant(track)
        if variant != track.variant:
            track.variant = variant
            track.restart()
            self._keyframe(variant)

    def remove(self, track: CompositeTrack) -> None:
        self._tracks.discard(track)
        track.stop()

    def _keyframe(self, main: str) -> None:
        encoder = self._encoders.get(main)
        if encoder is not None:
            encoder.request_keyframe()

    def _encoder(self, variant: str) -> H264StreamEncoder:
        """The variant's encoder, of its rung's size; at a reduced rate share also fewer
        bits (fewer packets); a still's encoder makes every frame a keyframe."""
        if variant not in self._encoders:
            cfg, share = self._config, self._encoded_share
            _, _, _, rung_index, shape = variant.split("\x00")
            rung = self.ladders[shape].rungs[int(rung_index)]
            fps = max(1, round(cfg.fps * share))
            keyint = 1 if rung.fps == 0 else max(1, round(fps * KEYFRAME_INTERVAL_S))
            self._encoders[variant] = H264StreamEncoder(
                rung.width, rung.height, fps, max(100, round(rung.ceiling_kbps * share)), keyint
            )
        return self._encoders[variant]

    def _mark(self, viewer: str, locale: str, frame: av.VideoFrame) -> av.VideoFrame:
        assert self._watermark is not None
        key = (viewer, locale, f"{frame.width}x{frame.height}")  # per viewer, language, shape
        mark = self._marks.get(key)
        if mark is None:
            mark = self._marks[key] = Watermark(
                self._watermark(viewer), frame.width, frame.height, locale
            )
        return mark.apply(frame)

    def _tick(
        self,
        variants: list[str],
        sources: Mapping[str, TileSource],
        pts: int,
        bitrates: Mapping[str, int] | None = None,
    ) -> dict[str, list[Encoded]]:
        out: dict[str, list[Encoded]] = {}
        composed: dict[tuple[str, str, str], tuple[av.VideoFrame, FrameTrace | None]] = {}
        live = sources.get(LIVE)
        still_due = self.ticks % max(1, round(STILL_EVERY_S * self._config.fps)) == 0
        for variant in variants:
            main, locale, viewer, rung_index, shape = variant.split("\x00")
            rung = self.ladders[shape].rungs[int(rung_index)]
            encoder = self._encoder(variant)
            if rung.fps == 0 and not (still_due or encoder.keyframe_pending):
                out[variant] = []  # audio only: a still every few seconds
                continue
            if (main, locale, shape) not in composed:
                badges = self._badges(main) if self._badges is not None else ()
                layout = self.layout(main, shape)
                frame = self._compositors[shape].compose(layout, sources, badges, locale)
                trace = live.trace.copy() if live is not None and live.trace else None
                if trace is not None:
                    trace.mark("composed")
                composed[main, locale, shape] = frame, trace
            frame, trace = composed[main, locale, shape]
            if self._watermark is not None:
                frame = self._mark(viewer, locale, frame)
            if (frame.width, frame.height) != (rung.width, rung.height):
                scaler = self._scalers.setdefault(variant, VideoReformatter())
                frame = scaler.reformat(
                    frame, rung.width, rung.height, interpolation="FAST_BILINEAR", threads=1
                )
            if bitrates is not None and variant in bitrates:
                encoder.set_bitrate(bitrates[variant])
            packets = encoder.encode(frame, pts)
            if trace is not None:
                trace = trace.copy()
                trace.mark("composite_encoded")
            out[variant] = [(p, trace) for p in packets]
        return out

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = last = time.monotonic()
        while True:
            period = 1.0 / (self._config.fps * self.rate_share)
            if self._encoded_share != self.rate_share:  # new rate: new encoders (an IDR)
                self._encoders.clear()
                self._encoded_share = self.rate_share
            live = [t for t in self._tracks if t.readyState == "live"]
            self._tracks = set(live)
            bitrates: dict[str, int] = {}
            for track in live:
                self._follow_variant(track)  # a viewer's link moved them to another rung
                kbps = track.link.bitrate_kbps() if track.link is not None else None
                if kbps is not None:
                    share = round(kbps * self.rate_share)
                    bitrates[track.variant] = min(bitrates.get(track.variant, share), share)
            variants = sorted({t.variant for t in live})
            for stale in set(self._encoders) - set(variants):
                del self._encoders[stale]  # nobody watches this variant any more
                self._scalers.pop(stale, None)
            self._arrived.clear()
            if variants:
                pts = round((time.monotonic() - t0) / VIDEO_TIME_BASE)  # never goes back
                packets = await loop.run_in_executor(
                    None, self._tick, variants, self._sources(), pts, bitrates
                )
                for track in live:
                    track.push(packets.get(track.variant, []))
                self.ticks += 1
            last = await self._wait_for_next(last, period)

    async def _wait_for_next(self, last: float, period: float) -> float:
        """Sleep until a live frame arrives (not sooner than the rate allows) or the next
        tick is due; returns the time the next composite starts."""
        now = time.monotonic()
        if now - last >= period:  # that one ran long: go on at once, never burst to catch up
            self.ticks_skipped += int((now - last) / period) - 1
            return now
        earliest = last + MIN_INTERVAL_SHARE * period
        if earliest > now:
            await asyncio.sleep(earliest - now)
        if not self._arrived.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, last + period - time.monotonic())):
                    await self._arrived.wait()
        return time.monotonic()

    async def close(self) -> None:
        if self._arrivals is not None:
            self._arrivals.discard(self._arrived)
        for track in list(self._tracks):
            self.remove(track)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
