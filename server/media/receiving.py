"""Received packets that waited too long are dropped, not processed late.

asyncio reads *one* datagram per socket per event-loop iteration, and aioice puts each
into an unbounded ``asyncio.Queue`` that aiortc's DTLS/SRTP/RTP handling empties one
packet at a time on the same loop. When the hub is too busy to handle packets as fast
as they arrive, the backlog builds up in the kernel's socket buffer, where nothing can
see or drop it, and everything received behind it (the patient's live view, the
experts' webcams) falls further behind for as long as the overload lasts: measured
with one spinning process beside the three-expert bench, appliance "sent" → server
"first packet arrived" reached p50 1.2 s, p95 3.0 s.

:func:`drop_stale_media` moves the backlog where it can be judged: the socket is
drained completely whenever it is readable (so a packet's arrival time is when it
really arrived), and :class:`FreshMediaQueue` replaces aioice's queue: RTP media
packets that waited longer than ``max_age_s`` are dropped as they are taken out, unless
nothing newer waits; everything else (STUN, DTLS, RTCP) is always delivered. The
receiver then sees a gap: audio conceals it, video asks for the lost packets (NACK)
and, if the decoder has to give up, for a keyframe, so the picture resumes at the
present instead of the past.
Connections whose video is less important (the experts' webcams) get a shorter limit
than the patient's live view, so under pressure webcams lose frames first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection

from clinicam.aiortc_compat import (
    ice_connections,
    ice_protocols,
    ice_receive_queue,
    replace_ice_receive_queue,
)

_LOGGER = logging.getLogger(__name__)
LIVE_MAX_AGE_S = 0.25
WEBCAM_MAX_AGE_S = 0.1
_SOCKET_ATTRIBUTE = "_sock"  # asyncio's selector transport → its socket
MAX_READS_PER_WAKEUP = 256


def is_rtp_media(data: bytes) -> bool:
    """RTP, not RTCP (RFC 7983 demultiplexing, RFC 5761 payload types 64–95 are RTCP)."""
    return len(data) >= 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223


class FreshMediaQueue(asyncio.Queue[Any]):
    """aioice's receive queue, dropping RTP media that waited longer than ``max_age_s``."""

    def __init__(self, max_age_s: float) -> None:
        super().__init__()
        if max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        self.max_age_s = max_age_s
        self._arrivals: deque[float] = deque()
        self.received = 0
        self.dropped = 0

    def put_nowait(self, item: Any) -> None:
        self._arrivals.append(time.monotonic())
        self.received += 1
        super().put_nowait(item)

    def get_nowait(self) -> Any:
        """The oldest item still fresh (``asyncio.Queue.get`` ends here too)."""
        while True:
            item = super().get_nowait()
            arrived = self._arrivals.popleft() if self._arrivals else time.monotonic()
            if item is None or not is_rtp_media(item[0]):
                return item
            if time.monotonic() - arrived <= self.max_age_s or self.empty():
                return item
            self.dropped += 1  # a newer packet waits behind it: this one is stale

    def stats(self) -> dict[str, int]:
        return {"received": self.received, "dropped_stale": self.dropped, "waiting": self.qsize()}


def drop_stale_media(pc: RTCPeerConnection, max_age_s: float) -> FreshMediaQueue:
    """Drain ``pc``'s sockets eagerly into a :class:`FreshMediaQueue`.

    Call after ``setLocalDescription`` (the sockets exist) and before the answer leaves
    (no media has arrived yet).
    """
    connections = ice_connections(pc)
    if len(connections) != 1:
        raise RuntimeError("aiortc/aioice internals changed: expected one ICE connection")
    connection = connections[0]
    current = ice_receive_queue(connection)
    protocols = ice_protocols(connection)
    if isinstance(current, FreshMediaQueue):
        return current
    if not current.empty():
        raise RuntimeError("aioice internals changed: no empty receive queue to replace")
    fresh = FreshMediaQueue(max_age_s)
    replace_ice_receive_queue(connection, fresh)
    drained = [read_eagerly(protocol) for protocol in protocols]
    if protocols and not any(drained):
        raise RuntimeError("asyncio/aioice internals changed: no socket behind the protocols")
    return fresh


def read_eagerly(protocol: asyncio.DatagramProtocol) -> bool:
    """After asyncio hands ``protocol`` one datagram, read whatever else is waiting too.

    Returns False (and changes nothing) for a protocol with no plain UDP socket of its
    own, such as a TURN relay's, whose datagrams arrive through another protocol.
    """
    sock = getattr(getattr(protocol, "transport", None), _SOCKET_ATTRIBUTE, None)
    if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_DGRAM:
        return False
    deliver: Callable[[Any, Any], None] = protocol.datagram_received

    def datagram_received(data: Any, addr: Any) -> None:
        deliver(data, addr)
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # let asyncio's own read report and handle it
                return
            deliver(data, addr)

    protocol.datagram_received = datagram_received  # type: ignore[method-assign]
    return True
