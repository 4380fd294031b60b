"""Link health (R17): what every party's link carries and loses, as the room shows it.

Every few seconds the server reads the statistics of each peer connection of a
consultation (aiortc's ``getStats``): the bitrate it receives from that party and sends
to it, the share of that party's packets lost on the way in (sequence gaps), the share
of the server's packets the party reports lost and the round trip (from the party's
receiver reports). For the clinic, whose connection only sends, the round trip comes
from the appliance's own telemetry (its sender sees the server's receiver reports),
with the bitrate its encoder aims for and the rung of its ladder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection

from clinicam.protocol import UplinkFigures

TELEMETRY_FRESH_S = 15.0


@dataclass
class _Totals:
    at: float
    received_bytes: int = 0
    sent_bytes: int = 0
    packets: int = 0
    lost: int = 0


@dataclass
class PartyLink:
    """The figures of one party, kept between two readings."""

    previous: _Totals | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    # the live view's glass-to-glass latency the party's page measured (ms, None: no
    # reading) and when it said so (monotonic s): server.room_links
    measured_ms: float | None = None
    measured_at: float | None = None


async def _totals(pc: RTCPeerConnection) -> tuple[_Totals, float | None, float | None]:
    """Byte and packet totals, the worst reported loss share and the round trip."""
    report = await pc.getStats()
    totals = _Totals(time.monotonic())
    down_loss: float | None = None
    rtt: float | None = None
    for stats in report.values():
        kind = getattr(stats, "type", "")
        if kind == "inbound-rtp":
            totals.packets += int(getattr(stats, "packetsReceived", 0) or 0)
            totals.lost += max(0, int(getattr(stats, "packetsLost", 0) or 0))
        elif kind == "transport":  # what the link carries: media, RTCP, retransmissions
            totals.received_bytes += int(getattr(stats, "bytesReceived", 0) or 0)
            totals.sent_bytes += int(getattr(stats, "bytesSent", 0) or 0)
        elif kind == "remote-inbound-rtp":
            lost = getattr(stats, "fractionLost", None)
            if lost is not None:
                down_loss = max(down_loss or 0.0, float(lost) / 256)
            trip = getattr(stats, "roundTripTime", None)
            if trip is not None:
                rtt = max(rtt or 0.0, float(trip))
    return totals, down_loss, rtt


async def read_link(
    party: PartyLink, pc: RTCPeerConnection | None, uplink: UplinkFigures | None = None
) -> dict[str, Any]:
    """New figures of ``party`` from its connection (None: not connected)."""
    if pc is None or pc.connectionState != "connected":
        party.previous = None
        party.figures = {"connected": False}
        return party.figures
    now, down_loss, rtt = await _totals(pc)
    before, party.previous = party.previous, now
    figures: dict[str, Any] = {"connected": True}
    if before is not None and now.at > before.at:
        span = now.at - before.at
        figures["up_kbps"] = round((now.received_bytes - before.received_bytes) * 8 / span / 1000)
        figures["down_kbps"] = round((now.sent_bytes - before.sent_bytes) * 8 / span / 1000)
        expected = (now.packets - before.packets) + (now.lost - before.lost)
        lost = now.lost - before.lost
        figures["up_loss_pct"] = round(100 * lost / expected, 1) if expected > 0 else 0.0
    if down_loss is not None:
        figures["down_loss_pct"] = round(100 * down_loss, 1)
    if rtt is not None:
        figures["rtt_ms"] = round(rtt * 1000)
    if uplink is not None:
        figures["rtt_ms"] = round(uplink.rtt_ms) if uplink.rtt_ms is not None else None
        figures["target_kbps"] = uplink.target_kbps
        figures["rung"] = f"{uplink.rung + 1}/{uplink.rungs}"
    party.figures = figures
    return figures


def fresh(entry: tuple[float, UplinkFigures] | None) -> UplinkFigures | None:
    """Telemetry figures if recent enough to describe the link now."""
    if entry is None or time.monotonic() - entry[0] > TELEMETRY_FRESH_S:
        return None
    return entry[1]
