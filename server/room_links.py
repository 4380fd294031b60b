"""Link health in the room (R17): every expert sees, for each party, what its link carries.

Every :data:`INTERVAL_S` seconds each room with experts online gets one ``links`` event:
for the clinic (the appliance's uplink, and whether it streams at all: "clinic link
lost — reconnecting" otherwise), the clinic station and every expert, the bitrates both
ways, loss both ways and round trip (:mod:`server.media.link_health`), and the live
view's glass-to-glass latency for each viewer: measured by that viewer's page when it
said so in the last few seconds (``latency`` messages: the capture time each frame
carries, :mod:`server.media.capture_time`, against when the page showed it;
``g2g_measured``), otherwise estimated: the server's part, measured from the stage stamps
(capture → composite sent), plus half that viewer's round trip.

The page converts the capture time to its own clock with its offset to the server's,
which it measures over the room's WebSocket like NTP: it sends ``clock`` with its time,
the server answers at once with its own (:func:`clock_reply`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Literal, Protocol

from pydantic import Field

from clinicam.protocol import WireModel
from server.media.link_health import PartyLink, fresh, read_link
from server.media_hub import MediaHub
from server.mqtt_link import ApplianceLink
from server.room import ConsultationRoom, RoomRegistry

_LOGGER = logging.getLogger(__name__)
INTERVAL_S = 3.0
MEASURED_FRESH_S = 2 * INTERVAL_S  # a page reports every second; older: it stopped
CLINIC = "clinic"


class ClockPing(WireModel):
    """The page's clock (ms since 1970), to learn its offset to the server's."""

    type: Literal["clock"]
    sent: float = Field(ge=0, le=1e14)


class LatencyReport(WireModel):
    """The live view's latency the page measured over the last second (None: no reading)."""

    type: Literal["latency"]
    ms: float | None = Field(None, ge=-60_000, le=600_000)


def clock_reply(ping: ClockPing) -> dict[str, Any]:
    """The answer to a :class:`ClockPing`: its time back, and the server's now."""
    return {"type": "clock", "sent": ping.sent, "server": time.time() * 1000}


def record_latency(room: ConsultationRoom, party: str, report: LatencyReport) -> None:
    """Keep what ``party``'s page measured, for the next ``links`` event."""
    link = room.links.setdefault(party, PartyLink())
    link.measured_ms, link.measured_at = report.ms, time.monotonic()


def _measured(link: PartyLink) -> float | None:
    at = link.measured_at
    if at is None or link.measured_ms is None or time.monotonic() - at > MEASURED_FRESH_S:
        return None
    return link.measured_ms


class LinkSources(Protocol):
    """Where the link figures come from: the media hub, the appliances' link and the
    rooms (the server's state has them all)."""

    @property
    def media(self) -> MediaHub: ...

    @property
    def appliances(self) -> ApplianceLink: ...

    @property
    def rooms(self) -> RoomRegistry: ...


async def links_event(state: LinkSources, room: ConsultationRoom) -> dict[str, Any]:
    """The ``links`` event of ``room`` now."""
    media, device = state.media, room.consultation.appliance
    links: dict[str, PartyLink] = room.links
    uplink = fresh(state.appliances.uplinks.get(device))
    clinic = await read_link(
        links.setdefault(CLINIC, PartyLink()), media.appliance_pc(device), uplink
    )
    clinic["streaming"] = media.appliance_streaming(device)
    parties: dict[str, dict[str, Any]] = {CLINIC: clinic}
    server_ms = room.mixer.latency.summary()["total"].get("p95_ms")
    cid = room.consultation.id
    viewers = [*room.members, room.station.name]
    for name in viewers:
        link = links.setdefault(name, PartyLink())
        figures = await read_link(link, media.viewer_pc(cid, name))
        rtt, measured = figures.get("rtt_ms"), _measured(link)
        if measured is not None and figures["connected"]:
            figures["g2g_ms"], figures["g2g_measured"] = round(measured), True
        elif server_ms is not None and rtt is not None:
            figures["g2g_ms"] = round(server_ms + rtt / 2)
        parties["station" if name == room.station.name else name] = figures
    return {"type": "links", "parties": parties, "server_p95_ms": server_ms}


async def watch_links(state: LinkSources, interval_s: float = INTERVAL_S) -> None:
    """Forever: send each live room its link figures."""
    while True:
        await asyncio.sleep(interval_s)
        for room in state.rooms.live_rooms():
            with contextlib.suppress(ConnectionError):
                try:
                    await room.notify(await links_event(state, room))
                except Exception:
                    _LOGGER.exception("link figures of %s failed", room.consultation.id)
