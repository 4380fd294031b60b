"""Link health in the room (R17): every expert sees, for each party, what its link carries.

Every :data:`INTERVAL_S` seconds each room with experts online gets one ``links`` event:
for the clinic (the appliance's uplink, and whether it streams at all: "clinic link
lost — reconnecting" otherwise), the clinic station and every expert, the bitrates both
ways, loss both ways and round trip (:mod:`server.media.link_health`), and the live
view's glass-to-glass estimate for each viewer: the server's part, measured from the
stage stamps (capture → composite sent), plus half that viewer's round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from server.media.link_health import PartyLink, fresh, read_link
from server.media_hub import MediaHub
from server.mqtt_link import ApplianceLink
from server.room import ConsultationRoom, RoomRegistry

_LOGGER = logging.getLogger(__name__)
INTERVAL_S = 3.0
CLINIC = "clinic"


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
        figures = await read_link(links.setdefault(name, PartyLink()), media.viewer_pc(cid, name))
        rtt = figures.get("rtt_ms")
        if server_ms is not None and rtt is not None:
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
