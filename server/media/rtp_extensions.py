"""RTP header extensions aiortc does not write itself, added to one sender's packets.

aiortc writes a fixed set of extensions (mid, abs-send-time, audio level…) through a
:class:`~aiortc.rtp.HeaderExtensionsMap` that knows only those. :class:`ExtraExtensionsMap`
keeps aiortc's own and appends, for each extra URI the negotiation gave an id, the
element its writer returns for the packet (None: not on this packet). The sender's map
is replaced before the sender starts (:func:`extra_extensions`), through
:mod:`clinicam.aiortc_compat` like every other aiortc internal; the playout delay
(:mod:`server.media.lowlatency`) and the capture time (:mod:`server.media.capture_time`)
share one map.

A writer sees the packet's :class:`~aiortc.rtp.HeaderExtensions`: aiortc serialises a
retransmitted packet (NACK, RTX) again from the same object, so a writer that remembers
what it wrote on that object writes the same element again.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensions,
    HeaderExtensionsMap,
    pack_header_extensions,
    unpack_header_extensions,
)

from clinicam.aiortc_compat import (
    accept_header_extension,
    header_extensions,
    replace_header_extensions_map,
    sender_header_extensions_map,
    sender_started,
)

Writer = Callable[[HeaderExtensions], bytes | None]
"""The element's value for one packet (1–16 bytes: the one-byte header form), or None."""
MAX_ELEMENT = 16  # one-byte header form (RFC 8285 §4.2), which aiortc writes


class ExtraExtensionsMap(HeaderExtensionsMap):
    """aiortc's extension map plus elements of other URIs, each from its writer."""

    def __init__(self) -> None:
        super().__init__()
        self._writers: dict[str, Writer] = {}
        self.ids: dict[str, int] = {}  # negotiated id of each extra URI (once configured)

    def add(self, uri: str, writer: Writer) -> None:
        """Write ``uri``'s element with ``writer`` on each packet, if it gets negotiated."""
        if uri in self._writers:
            raise ValueError(f"{uri} already has a writer")
        self._writers[uri] = writer

    def configure(self, parameters: RTCRtpParameters) -> None:
        super().configure(parameters)
        for ext in parameters.headerExtensions:
            if ext.uri in self._writers:
                self.ids[ext.uri] = ext.id

    def set(self, values: HeaderExtensions) -> tuple[int, bytes]:
        profile, packed = super().set(values)
        extra: list[tuple[int, bytes]] = []
        for uri, ext_id in self.ids.items():
            value = self._writers[uri](values)
            if value is None:
                continue
            if not 1 <= len(value) <= MAX_ELEMENT:
                raise ValueError(f"{uri}: an element of {len(value)} bytes does not fit")
            extra.append((ext_id, value))
        if not extra:
            return profile, packed
        elements = list(unpack_header_extensions(profile, packed)) if packed else []
        return pack_header_extensions(elements + extra)


def extra_extensions(sender: RTCRtpSender) -> ExtraExtensionsMap:
    """``sender``'s :class:`ExtraExtensionsMap`, installed now if it has none yet.

    Raises ``RuntimeError`` once the sender runs: aiortc configures the map at start.
    """
    if sender_started(sender):
        raise RuntimeError("the sender is already running: add header extensions earlier")
    current = sender_header_extensions_map(sender)
    if isinstance(current, ExtraExtensionsMap):
        return current
    extra = ExtraExtensionsMap()
    replace_header_extensions_map(sender, extra)
    return extra


def accept_video_extension(uri: str, ext_id: int) -> None:
    """Make aiortc accept ``uri`` under ``ext_id`` for video when a browser offers it;
    refuse an id aiortc already uses for something else. Idempotent."""
    video = header_extensions("video")
    if any(ext.uri == uri for ext in video):
        return
    if any(ext.id == ext_id for ext in video + header_extensions("audio")):
        raise RuntimeError(f"aiortc already uses RTP header extension id {ext_id}")
    accept_header_extension("video", RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri))
