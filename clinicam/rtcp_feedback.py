"""What the receiver of a pre-encoded stream says about the link (R17).

aiortc's sender handles the receiver's RTCP itself: a REMB (the receiver's estimate of
the bitrate the path carries) sets the bitrate of *its own* encoder, and a receiver
report updates its statistics. A track of pre-encoded packets has no aiortc encoder, so
both would be lost; :func:`watch_feedback` passes them on to whoever encodes.
``_handle_rtcp_packet`` is aiortc's (single-underscore) entry point for RTCP; if it is
gone, this fails loudly rather than leaving the encoder deaf to the link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket, RtcpSrPacket, unpack_remb_fci

OnRemb = Callable[[int], None]  # bits per second
OnReport = Callable[[int, float | None], None]  # fraction lost (0–255), round trip (s)


def round_trip_s(sender: RTCRtpSender) -> float | None:
    """aiortc's smoothed round-trip time of ``sender`` (from LSR/DLSR), if known."""
    rtt = getattr(sender, "_RTCRtpSender__rtt", None)
    return float(rtt) if isinstance(rtt, int | float) else None


def watch_feedback(sender: RTCRtpSender, on_remb: OnRemb, on_report: OnReport) -> None:
    """Call ``on_remb`` for every REMB and ``on_report`` for every report on ``sender``."""
    original: Callable[[Any], Awaitable[None]] | None = getattr(sender, "_handle_rtcp_packet", None)
    if not callable(original):
        raise RuntimeError("aiortc's RTCRtpSender internals changed: no _handle_rtcp_packet")

    async def handle(packet: Any) -> None:
        await original(packet)  # aiortc's own handling first: it updates the round trip
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    on_report(report.fraction_lost, round_trip_s(sender))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if sender._ssrc in ssrcs:
                on_remb(bitrate)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]
