"""Software H.264 encoder standing in for the Pi's hardware encoder.

It produces Annex-B packets with SPS/PPS repeated on every IDR, which is what the
Pi 4's V4L2 encoder emits; the WebRTC track passes them through without re-encoding.

The bitrate can be lowered and raised again while it runs (:meth:`set_bitrate`), as the
Pi's hardware encoder's can, so following the link costs no keyframe. libx264 takes a
new average bitrate on the next frame only with VBV on, and never above the one it was
opened with: that is the encoder's *ceiling*. VBV also bounds every frame, keyframes
included, to half a second of the ceiling, so a slow link is not flooded by one IDR.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

VIDEO_TIME_BASE = Fraction(1, 90_000)
VBV_BUFFER_S = 0.5  # the largest burst, in seconds of the ceiling bitrate


class H264StreamEncoder:
    """Frames in, H.264 packets out (one per frame: no B-frames, no look-ahead)."""

    def __init__(
        self, width: int, height: int, fps: int, bitrate_kbps: int, keyframe_interval: int
    ) -> None:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuv420p"
        ctx.time_base = VIDEO_TIME_BASE
        ctx.framerate = Fraction(fps, 1)
        ctx.bit_rate = bitrate_kbps * 1000
        ctx.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "maxrate": str(bitrate_kbps * 1000),
            "bufsize": str(round(bitrate_kbps * 1000 * VBV_BUFFER_S)),
            "x264-params": (
                f"keyint={keyframe_interval}:min-keyint={keyframe_interval}"
                ":scenecut=0:repeat-headers=1"
                # Say which YUV this is (PyAV converts RGB with BT.601, limited range):
                # a decoder left to guess takes BT.709 for HD and shifts every colour.
                ":colorprim=smpte170m:transfer=smpte170m:colormatrix=smpte170m:range=tv"
            ),
        }
        self._ctx = ctx
        self._force_keyframe = True
        self.ceiling_kbps = bitrate_kbps
        self.bitrate_kbps = bitrate_kbps
        self._opened = False

    def set_bitrate(self, kbps: int) -> None:
        """A new average bitrate from the next frame on (at most the ceiling)."""
        self.bitrate_kbps = max(1, min(kbps, self.ceiling_kbps))
        if self._opened:
            self._ctx.bit_rate = self.bitrate_kbps * 1000

    def request_keyframe(self) -> None:
        """Make the next frame an IDR (e.g. after a receiver's PLI)."""
        self._force_keyframe = True

    @property
    def keyframe_pending(self) -> bool:
        """The next frame will be an IDR (asked for, or the first)."""
        return self._force_keyframe

    def encode(self, frame: av.VideoFrame, pts: int) -> list[av.Packet[Any]]:
        """Encode one frame with ``pts`` in 1/90000 s units."""
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        if self._force_keyframe:
            frame.pict_type = av.video.frame.PictureType.I
            self._force_keyframe = False
        else:
            frame.pict_type = av.video.frame.PictureType.NONE
        packets = list(self._ctx.encode(frame))
        if not self._opened:  # libx264 is open now: a lower rate no longer lowers the ceiling
            self._opened = True
            self._ctx.bit_rate = self.bitrate_kbps * 1000
        for packet in packets:
            packet.time_base = VIDEO_TIME_BASE
        return packets
