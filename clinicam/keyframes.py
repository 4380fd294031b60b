"""Keyframe requests for tracks that hand aiortc pre-encoded packets."""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpSender

from clinicam.aiortc_compat import after_keyframe_request


def forward_keyframe_requests(sender: RTCRtpSender, request_keyframe: Callable[[], None]) -> None:
    """Call ``request_keyframe`` whenever the receiver of ``sender`` asks for one (PLI, FIR).

    aiortc answers a PLI by asking *its own* encoder for a keyframe; a track of
    pre-encoded packets has none, so without this the receiver waits for the next
    periodic IDR. aiortc has no public hook for that
    (:func:`clinicam.aiortc_compat.after_keyframe_request`); if its internals change,
    this fails loudly instead of silently losing the requests.
    """
    after_keyframe_request(sender, request_keyframe)
