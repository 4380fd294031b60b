"""Software H.264 encoder standing in for the Pi's hardware encoder.

It produces Annex-B packets with SPS/PPS repeated on every IDR, which is what the
Pi 4's V4L2 encoder emits; the WebRTC track passes them through without re-encoding.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

VIDEO_TIME_BASE = Fraction(1, 90_000)


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
            "x264-params": (
                f"keyint={keyframe_interval}:min-keyint={keyframe_interval}"
                ":scenecut=0:repeat-headers=1"
            ),
        }
        self._ctx = ctx
        self._force_keyframe = True

    def request_keyframe(self) -> None:
        """Make the next frame an IDR (e.g. after a receiver's PLI)."""
        self._force_keyframe = True

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
        for packet in packets:
            packet.time_base = VIDEO_TIME_BASE
        return packets
