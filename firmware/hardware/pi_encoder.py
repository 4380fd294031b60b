"""The Pi 4's hardware H.264 encoder behind the appliance's encoder interface (R17).

picamera2 feeds the camera's video stream straight into the VideoCore encoder
(``/dev/video11`` through V4L2) and calls an output with every access unit; this one
hands them to the appliance's outputs on the event loop. The bitrate follows the link
while running through the V4L2 control ``V4L2_CID_MPEG_VIDEO_BITRATE`` (no keyframe), a
keyframe is forced with ``V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME`` (PLI), and a new
adaptation rung (size, frame rate) restarts camera and encoder. In privacy mode the
hardware encoder stops and the software encoder sends the privacy card instead.

Imported only with ``backend = "pi"``. Not run in CI (no Pi there): the software
encoder implements the same interface and the tests exercise that shape.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from clinicam.frametrace import now_us
from firmware.hardware.protocols import Camera
from firmware.media.encoders import (
    EncodedFrame,
    EncodedOutput,
    PrivacyCard,
    SoftwareVideoEncoder,
    deliver,
)
from firmware.media.output import StreamOutput, StreamSettings
from firmware.media.privacy import privacy_frame

_LOGGER = logging.getLogger(__name__)
VIDIOC_S_CTRL = 0xC008561C  # _IOWR('V', 28, struct v4l2_control)
V4L2_CID_MPEG_VIDEO_BITRATE = 0x009909CF
V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME = 0x009909E5
CHECK_S = 0.1


def hardware_encoder(
    camera: Camera,
    output: StreamOutput,
    private: Callable[[], bool],
    privacy_card: PrivacyCard = privacy_frame,
) -> PiVideoEncoder | None:
    """The hardware encoder if this Pi has one (a Pi 4; a Pi 5 does not)."""
    try:
        from picamera2.encoders import H264Encoder  # noqa: F401
    except ImportError:
        return None
    picam = getattr(camera, "picamera2", None)
    if picam is None:
        return None
    return PiVideoEncoder(camera, picam, output, private, privacy_card)


class PiVideoEncoder:
    """picamera2's H264Encoder feeding the appliance's outputs."""

    def __init__(
        self,
        camera: Camera,
        picam: Any,
        output: StreamOutput,
        private: Callable[[], bool],
        privacy_card: PrivacyCard = privacy_frame,
    ) -> None:
        self._camera = camera
        self._picam = picam
        self._output = output
        self._private = private
        self.outputs: list[EncodedOutput] = []
        self._card = SoftwareVideoEncoder(
            camera, output, private=lambda: True, privacy_card=privacy_card
        )
        self._card.outputs = self.outputs  # the same outputs, whichever encodes
        self._encoder: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bitrate_bps = 0

    def _control(self, control: int, value: int) -> None:
        device = getattr(self._encoder, "vd", None)
        if device is None:
            return
        try:
            fcntl.ioctl(device, VIDIOC_S_CTRL, struct.pack("<Ii", control, value))
        except OSError as exc:
            _LOGGER.warning("V4L2 control %#x=%d refused: %s", control, value, exc)

    def request_keyframe(self) -> None:
        if self._encoder is not None:
            self._control(V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME, 1)
        self._card.request_keyframe()

    def _frame_out(self, frame: Any, keyframe: bool = True, *_: Any, **__: Any) -> None:
        """picamera2's output callback, on its encoder thread."""
        import av

        packet = av.Packet(bytes(frame))
        packet.is_keyframe = bool(keyframe)
        encoded = EncodedFrame(packet, now_us(), now_us(), time.time())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(deliver, self.outputs, [encoded])

    def _start(self, settings: StreamSettings) -> None:
        from picamera2.encoders import H264Encoder
        from picamera2.outputs import Output

        sink = self

        class _Sink(Output):  # type: ignore[misc]
            def outputframe(self, frame: Any, keyframe: bool = True, *a: Any, **k: Any) -> None:
                sink._frame_out(frame, keyframe)

        self._camera.configure_stream(settings.width, settings.height, settings.fps)
        keyint = max(1, round(settings.fps * settings.keyframe_interval_s))
        self._bitrate_bps = settings.bitrate_kbps * 1000
        self._encoder = H264Encoder(bitrate=self._bitrate_bps, repeat=True, iperiod=keyint)
        self._picam.start_encoder(self._encoder, _Sink())

    def _stop(self) -> None:
        if self._encoder is not None:
            self._picam.stop_encoder(self._encoder)
            self._encoder = None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        version: tuple[int, int] | None = None
        card: asyncio.Task[None] | None = None
        try:
            while True:
                if self._private():
                    if card is None:
                        self._stop()
                        card = asyncio.create_task(self._card.run(), name="privacy-card")
                else:
                    if card is not None:
                        card.cancel()
                        card, version = None, None
                    settings, key = self._output.effective()
                    if key != version or self._encoder is None:
                        self._stop()
                        self._start(settings)
                        version = key
                    wanted = self._output.target_bitrate_kbps(settings.bitrate_kbps) * 1000
                    if wanted != self._bitrate_bps:
                        self._bitrate_bps = wanted
                        self._control(V4L2_CID_MPEG_VIDEO_BITRATE, wanted)
                await asyncio.sleep(CHECK_S)
        finally:
            if card is not None:
                card.cancel()
            self._stop()
