"""What the receiver of a pre-encoded stream says about the link (R17).

aiortc's sender handles the receiver's RTCP itself: a REMB (the receiver's estimate of
the bitrate the path carries) sets the bitrate of *its own* encoder, and a receiver
report updates its statistics. A track of pre-encoded packets has no aiortc encoder, so
both would be lost; :func:`watch_feedback` passes them on to whoever encodes. aiortc
has no public hook for RTCP (:func:`clinicam.aiortc_compat.after_sender_rtcp`); if its
internals change, this fails loudly rather than leaving the encoder deaf to the link.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket, RtcpSrPacket, unpack_remb_fci

from clinicam.aiortc_compat import after_sender_rtcp, sender_round_trip_s, sender_ssrc

OnRemb = Callable[[int], None]  # bits per second
OnReport = Callable[[int, float | None], None]  # fraction lost (0–255), round trip (s)


def round_trip_s(sender: RTCRtpSender) -> float | None:
    """aiortc's smoothed round-trip time of ``sender`` (from LSR/DLSR), if known."""
    return sender_round_trip_s(sender)


def watch_feedback(sender: RTCRtpSender, on_remb: OnRemb, on_report: OnReport) -> None:
    """Call ``on_remb`` for every REMB and ``on_report`` for every report on ``sender``."""

    def handle(packet: Any) -> None:  # after aiortc's own handling: the round trip is fresh
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == sender_ssrc(sender):
                    on_report(report.fraction_lost, round_trip_s(sender))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if sender_ssrc(sender) in ssrcs:
                on_remb(bitrate)

    after_sender_rtcp(sender, handle)
