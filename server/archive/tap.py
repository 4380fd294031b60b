"""Copy the encoded H.264 frames aiortc receives, for the archive, before they are decoded.

aiortc has no public hook for encoded frames. ``RTCRtpReceiver`` reassembles RTP into
``JitterFrame``s (Annex-B bytes in ``.data``, the 90 kHz ``.timestamp`` already
mapped to start at 0 and unwrapped) and puts ``(codec, frame)`` into a private
``queue.Queue`` that its decoder thread reads. We swap that queue for a subclass
whose ``put`` forwards to the decoder exactly as before and also hands H.264 frames
to a sink. ``receive()`` gives the queue object to the decoder thread, so the swap
must happen before it runs: in the peer connection's "track" event or right after
``addTransceiver``. A queue that already offers taps (the server's bounded decode
queue, which may skip frames the decoder cannot keep up with) is tapped in place, so
the archive still gets every frame.

Because this relies on aiortc internals (reached through :mod:`clinicam.aiortc_compat`),
:func:`tap_encoded_video` checks them and raises ``RuntimeError`` if they are not as
expected: an aiortc upgrade must fail loudly instead of silently archiving nothing. A
failing sink is logged (first failure, then every ``LOG_EVERY_N_FAILURES``-th) and never
disturbs decoding.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from aiortc import RTCRtpReceiver

from clinicam.aiortc_compat import receiver_decoder_queue, receiver_started, replace_decoder_queue

_LOGGER = logging.getLogger(__name__)

EncodedFrameSink = Callable[[bytes, int], None]
"""(annexb_data, rtp_timestamp_90khz), called on the event loop thread."""

LOG_EVERY_N_FAILURES = 100


@runtime_checkable
class TappableQueue(Protocol):
    """A decoder queue that copies frames to a sink itself."""

    def add_tap(self, sink: EncodedFrameSink) -> None: ...


class _TappedDecoderQueue(queue.Queue[Any]):
    """The decoder's queue, with a copy of every H.264 frame going to ``sink``."""

    def __init__(self, sink: EncodedFrameSink) -> None:
        super().__init__()
        self._sink = sink
        self.sink_failures = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)  # decoding first: the sink may touch the disk
        if item is not None:  # None tells the decoder thread to stop
            self._copy_to_sink(*item)

    def _copy_to_sink(self, codec: Any, frame: Any) -> None:
        if str(getattr(codec, "mimeType", "")).lower() != "video/h264":
            return
        try:
            self._sink(bytes(frame.data), int(frame.timestamp))
        except Exception:
            self.sink_failures += 1
            if self.sink_failures % LOG_EVERY_N_FAILURES == 1:
                _LOGGER.exception(
                    "archive sink failed (%d failures so far; decoding continues)",
                    self.sink_failures,
                )


def tap_encoded_video(receiver: RTCRtpReceiver, sink: EncodedFrameSink) -> None:
    """Send every H.264 frame ``receiver`` decodes to ``sink`` as well.

    Call before ``receiver.receive()`` runs (from the "track" event, or right after
    ``addTransceiver``). Raises ``RuntimeError`` if aiortc's internals are not the
    expected ones, if the receiver has already started, or if it is already tapped.
    """
    original = receiver_decoder_queue(receiver)
    if receiver_started(receiver):
        raise RuntimeError(
            "RTCRtpReceiver has already started its decoder thread: tap it from the "
            "'track' event or right after addTransceiver, before receive() runs"
        )
    if isinstance(original, _TappedDecoderQueue):
        raise RuntimeError("this RTCRtpReceiver is already tapped")
    if isinstance(original, TappableQueue):
        original.add_tap(sink)
        return
    tapped = _TappedDecoderQueue(sink)
    while True:  # nothing should be queued before receive(), but keep it if it is
        try:
            tapped.put(original.get_nowait())
        except queue.Empty:
            break
    replace_decoder_queue(receiver, tapped)
    _LOGGER.debug("tapped the encoded video of %r", receiver)
