"""Keyframe requests for tracks that hand aiortc pre-encoded packets."""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpSender


def forward_keyframe_requests(sender: RTCRtpSender, request_keyframe: Callable[[], None]) -> None:
    """Call ``request_keyframe`` whenever the receiver of ``sender`` asks for one (PLI, FIR).

    aiortc answers a PLI by asking *its own* encoder for a keyframe; a track of
    pre-encoded packets has none, so without this the receiver waits for the next
    periodic IDR. ``_send_keyframe`` is aiortc's (single-underscore) hook for that; if
    it is gone, this fails loudly instead of silently losing the requests.
    """
    original = getattr(sender, "_send_keyframe", None)
    if not callable(original):
        raise RuntimeError("aiortc's RTCRtpSender internals changed: no _send_keyframe")

    def send_keyframe() -> None:
        original()
        request_keyframe()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]
