"""Live stream settings and counters shared by the video track, commands and telemetry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clinicam.protocol import StreamSettings as StreamCommand
from clinicam.protocol import StreamState

if TYPE_CHECKING:
    from firmware.media.adaptation import RateController


@dataclass(frozen=True)
class EncoderInfo:
    """What an encoder can do (published in the capabilities)."""

    name: str
    max_width: int
    max_height: int
    max_fps: int


# The Pi 4's hardware H.264 encoder stops at 1080p30; in simulation libx264 stands in
# for it and goes up to 4K.
ENCODERS = {
    "sim": EncoderInfo("libx264 (software, stands in for the Pi's H.264 encoder)", 3840, 2160, 60),
    "pi": EncoderInfo("H.264 (Pi 4 hardware encoder; software on a Pi 5)", 1920, 1080, 30),
}


@dataclass(frozen=True)
class StreamSettings:
    width: int
    height: int
    fps: int
    bitrate_kbps: int
    keyframe_interval_s: float


class StreamOutput:
    """Current settings (versioned, so the track notices changes) and what was sent."""

    def __init__(self, settings: StreamSettings, backend: str, *, adaptive: bool = False) -> None:
        self._lock = threading.Lock()
        self._settings = settings
        self.adaptive = adaptive
        self.link: RateController | None = None  # follows the link while a stream is up
        self.recording: Callable[[], dict[str, int]] | None = None  # the local recording
        self.version = 0
        self.encoder = ENCODERS[backend]
        self.connected = False
        self.frames_sent = 0
        self.bytes_sent = 0
        self.frames_dropped = 0

    @property
    def settings(self) -> StreamSettings:
        with self._lock:
            return self._settings

    def check(self, command: StreamCommand) -> str | None:
        """Why ``command`` exceeds this encoder, or None if it fits."""
        enc = self.encoder
        if command.width > enc.max_width or command.height > enc.max_height:
            return (
                f"width/height: {command.width}x{command.height} exceeds this encoder's "
                f"maximum {enc.max_width}x{enc.max_height}"
            )
        if command.fps > enc.max_fps:
            return f"fps: {command.fps} exceeds this encoder's maximum {enc.max_fps}"
        return None

    def update(self, command: StreamCommand) -> None:
        with self._lock:
            self._settings = StreamSettings(
                command.width,
                command.height,
                command.fps,
                command.bitrate_kbps,
                self._settings.keyframe_interval_s,
            )
            self.version += 1

    def follow_link(self) -> RateController | None:
        """A fresh controller for a new stream session (None when not adaptive)."""
        from firmware.media.adaptation import RateController

        self.link = RateController(self.settings, time.monotonic) if self.adaptive else None
        return self.link

    def effective(self) -> tuple[StreamSettings, tuple[int, int]]:
        """What to encode now, and a key that changes when the size or frame rate does."""
        link = self.link
        if link is None:
            return self.settings, (self.version, 0)
        if link.top != self.settings:  # the operator changed the stream: adapt below that
            link.set_top(self.settings)
        return link.settings(), (self.version, link.version)

    def allowed_kbps(self) -> int | None:
        """What the link allows the encoder now (None when the stream does not adapt)."""
        return self.link.bitrate_kbps() if self.link is not None else None

    def target_bitrate_kbps(self, fallback: int) -> int:
        """The bitrate the encoder should aim for now."""
        allowed = self.allowed_kbps()
        return fallback if allowed is None else allowed

    def state(self) -> StreamState:
        s = self.settings
        return StreamState(
            width=s.width,
            height=s.height,
            fps=s.fps,
            bitrate_kbps=s.bitrate_kbps,
            connected=self.connected,
        )

    def count(self, sent_bytes: int) -> None:
        self.frames_sent += 1
        self.bytes_sent += sent_bytes
