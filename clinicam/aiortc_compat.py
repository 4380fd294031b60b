"""Every use of aiortc's and aioice's internals, in one place, checked at start-up.

aiortc offers no public hook for what an interactive consultation needs, so Clinicam
reaches into private attributes for it. They are named here and nowhere else:

- **senders** (:class:`aiortc.RTCRtpSender`): the encoder slot (voice-grade Opus), the
  RTCP handler and the keyframe hook (tracks of pre-encoded packets), the SSRC and the
  smoothed round trip (link adaptation), the header-extension map (playout delay);
- **receivers** (:class:`aiortc.RTCRtpReceiver`): the decoder queue, its decode-error
  flag and thread (bounded decoding, the archive tap), the jitter buffer (frames at the
  marker bit, voices on arrival), and the remote track's queue (latest frame wins);
- **the jitter buffer** itself: :class:`OpenJitterBuffer` opens aiortc's packet ring to
  a subclass, :func:`packet_payload` reads the payload aiortc attached to a packet;
- **ICE** (aioice): the host addresses gathered (loopback-only deployments), and one
  connection's receive queue and sockets (stale media dropped on arrival).

aiortc and aioice are pinned to exact versions in ``pyproject.toml`` (:data:`AIORTC_VERSION`,
:data:`AIOICE_VERSION`). :func:`self_check` runs when the server's media hub and the
appliance's uplink start: if an upgrade moved any of these internals it refuses to go on,
naming what moved, instead of letting a latency fix or the archive silently stop working.
Each accessor also checks what it touches when it is used and raises ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import dis
import importlib.metadata
import inspect
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aioice.ice
import aiortc.codecs
from aioice import Connection
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.base import Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

AIORTC_VERSION: Final = "1.16.0"
AIOICE_VERSION: Final = "0.13.0"

_SENDER_ENCODER: Final = "_RTCRtpSender__encoder"
_SENDER_RTT: Final = "_RTCRtpSender__rtt"
_SENDER_STARTED: Final = "_RTCRtpSender__started"
_SENDER_EXTENSIONS: Final = "_RTCRtpSender__rtp_header_extensions_map"
_SENDER_SSRC: Final = "_ssrc"
_SENDER_RTCP_HANDLER: Final = "_handle_rtcp_packet"
_SENDER_KEYFRAME_HOOK: Final = "_send_keyframe"
_RECEIVER_DECODER_QUEUE: Final = "_RTCRtpReceiver__decoder_queue"
_RECEIVER_DECODER_ERROR: Final = "_RTCRtpReceiver__decoder_error"
_RECEIVER_DECODER_THREAD: Final = "_RTCRtpReceiver__decoder_thread"
_RECEIVER_STARTED: Final = "_RTCRtpReceiver__started"
_RECEIVER_JITTER_BUFFER: Final = "_RTCRtpReceiver__jitter_buffer"
_RECEIVER_RTP_HANDLER: Final = "_handle_rtp_packet"
_TRACK_QUEUE: Final = "_queue"  # RemoteStreamTrack's decoded frames
_PACKET_PAYLOAD: Final = "_data"  # set on each RtpPacket by the receiver
_JITTER_ORIGIN: Final = "_origin"
_JITTER_PACKETS: Final = "_packets"
_JITTER_CAPACITY: Final = "_capacity"
_JITTER_IS_VIDEO: Final = "_is_video"
_JITTER_COMPLETE_FRAME: Final = "_remove_frame"
_ICE_CONNECTION: Final = "_connection"  # RTCIceTransport → aioice.Connection
_CONNECTION_QUEUE: Final = "_queue"  # aioice.Connection's received datagrams
_CONNECTION_PROTOCOLS: Final = "_protocols"  # one StunProtocol per socket

HostAddresses = Callable[[bool, bool], list[str]]
"""(use_ipv4, use_ipv6) → the host addresses ICE offers as candidates."""


def _changed(library: str, what: str) -> RuntimeError:
    pin = AIORTC_VERSION if library == "aiortc" else AIOICE_VERSION
    return RuntimeError(
        f"{library} internals changed: {what} "
        f"(Clinicam needs {library}=={pin}; see clinicam/aiortc_compat.py)"
    )


# Senders ------------------------------------------------------------------------------


def set_sender_encoder(sender: RTCRtpSender, encoder: Encoder) -> None:
    """Make ``sender`` (not yet started) encode with ``encoder``.

    aiortc creates its own encoder lazily, at the first frame; this one takes its place.
    """
    if not hasattr(sender, _SENDER_ENCODER):
        raise _changed("aiortc", "RTCRtpSender has no encoder slot")
    if getattr(sender, _SENDER_ENCODER) is not None:
        raise RuntimeError("the sender already encodes: set its encoder before it starts")
    setattr(sender, _SENDER_ENCODER, encoder)


def sender_ssrc(sender: RTCRtpSender) -> int:
    """The SSRC ``sender`` sends with: the one receiver reports and REMBs name."""
    ssrc = getattr(sender, _SENDER_SSRC, None)
    if not isinstance(ssrc, int):
        raise _changed("aiortc", "RTCRtpSender has no int _ssrc")
    return ssrc


def sender_round_trip_s(sender: RTCRtpSender) -> float | None:
    """aiortc's smoothed round-trip time of ``sender`` (from LSR/DLSR), if known."""
    rtt = getattr(sender, _SENDER_RTT, None)
    return float(rtt) if isinstance(rtt, int | float) else None


def after_sender_rtcp(sender: RTCRtpSender, listener: Callable[[Any], None]) -> None:
    """Call ``listener`` with every RTCP packet ``sender`` receives.

    aiortc handles the packet first (so :func:`sender_round_trip_s` is up to date when
    ``listener`` runs); ``_handle_rtcp_packet`` is its entry point for RTCP.
    """
    original: Callable[[Any], Awaitable[None]] | None = getattr(sender, _SENDER_RTCP_HANDLER, None)
    if not callable(original):
        raise _changed("aiortc", "RTCRtpSender has no _handle_rtcp_packet")

    async def handle(packet: Any) -> None:
        await original(packet)
        listener(packet)

    setattr(sender, _SENDER_RTCP_HANDLER, handle)


def after_keyframe_request(sender: RTCRtpSender, listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever the receiver of ``sender`` asks for a keyframe (PLI, FIR).

    aiortc passes such a request only to its own encoder, through ``_send_keyframe``.
    """
    original = getattr(sender, _SENDER_KEYFRAME_HOOK, None)
    if not callable(original):
        raise _changed("aiortc", "RTCRtpSender has no _send_keyframe")

    def send_keyframe() -> None:
        original()
        listener()

    setattr(sender, _SENDER_KEYFRAME_HOOK, send_keyframe)


def sender_started(sender: RTCRtpSender) -> bool:
    """Whether ``sender`` has started (after which its extension map is configured)."""
    if not hasattr(sender, _SENDER_STARTED):
        raise _changed("aiortc", "RTCRtpSender has no started flag")
    return bool(getattr(sender, _SENDER_STARTED))


def sender_header_extensions_map(sender: RTCRtpSender) -> HeaderExtensionsMap:
    """The map through which ``sender`` writes its RTP header extensions."""
    found = getattr(sender, _SENDER_EXTENSIONS, None)
    if not isinstance(found, HeaderExtensionsMap):
        raise _changed("aiortc", "RTCRtpSender has no header extension map")
    return found


def replace_header_extensions_map(sender: RTCRtpSender, extensions: HeaderExtensionsMap) -> None:
    """Make ``sender`` write its RTP header extensions through ``extensions``.

    aiortc configures the map when the sender starts: replace it before.
    """
    sender_header_extensions_map(sender)
    setattr(sender, _SENDER_EXTENSIONS, extensions)


def header_extensions(kind: str) -> tuple[RTCRtpHeaderExtensionParameters, ...]:
    """The RTP header extensions aiortc accepts for ``kind`` ("audio", "video")."""
    return tuple(_header_extension_list(kind))


def accept_header_extension(kind: str, extension: RTCRtpHeaderExtensionParameters) -> None:
    """Make every later negotiation in this process accept ``extension`` for ``kind``."""
    _header_extension_list(kind).append(extension)


def _header_extension_list(kind: str) -> list[RTCRtpHeaderExtensionParameters]:
    found = getattr(aiortc.codecs, "HEADER_EXTENSIONS", {}).get(kind)
    if not isinstance(found, list):
        raise _changed("aiortc", f"aiortc.codecs.HEADER_EXTENSIONS has no {kind} list")
    return found


# Receivers ----------------------------------------------------------------------------


def receiver_decoder_queue(receiver: RTCRtpReceiver) -> queue.Queue[Any]:
    """The queue of ``(codec, JitterFrame)`` that ``receiver``'s decoder thread reads."""
    found = getattr(receiver, _RECEIVER_DECODER_QUEUE, None)
    if not isinstance(found, queue.Queue):
        raise _changed("aiortc", f"RTCRtpReceiver has no queue.Queue {_RECEIVER_DECODER_QUEUE}")
    return found


def replace_decoder_queue(receiver: RTCRtpReceiver, decoder_queue: queue.Queue[Any]) -> None:
    """Make ``receiver`` hand its frames to ``decoder_queue``.

    The decoder thread takes the queue when it starts: replace it before (check
    :func:`receiver_started`).
    """
    receiver_decoder_queue(receiver)
    setattr(receiver, _RECEIVER_DECODER_QUEUE, decoder_queue)


def receiver_decoder_error(receiver: RTCRtpReceiver) -> threading.Event:
    """``receiver``'s decode-error flag: set, the receiver sends a PLI with its next packet."""
    found = getattr(receiver, _RECEIVER_DECODER_ERROR, None)
    if not isinstance(found, threading.Event):
        raise _changed("aiortc", f"RTCRtpReceiver has no threading.Event {_RECEIVER_DECODER_ERROR}")
    return found


def receiver_decoding(receiver: RTCRtpReceiver) -> bool:
    """Whether ``receiver``'s decoder thread runs (it has taken its queue)."""
    if not hasattr(receiver, _RECEIVER_DECODER_THREAD):
        raise _changed("aiortc", f"RTCRtpReceiver has no {_RECEIVER_DECODER_THREAD}")
    return getattr(receiver, _RECEIVER_DECODER_THREAD) is not None


def receiver_started(receiver: RTCRtpReceiver) -> bool:
    """Whether ``receiver.receive()`` has run or its decoder thread is up."""
    if not hasattr(receiver, _RECEIVER_STARTED) or not hasattr(receiver, _RECEIVER_DECODER_THREAD):
        raise _changed(
            "aiortc",
            f"RTCRtpReceiver lacks {_RECEIVER_STARTED} / {_RECEIVER_DECODER_THREAD}",
        )
    return bool(getattr(receiver, _RECEIVER_STARTED)) or receiver_decoding(receiver)


def receiver_jitter_buffer(receiver: RTCRtpReceiver) -> JitterBuffer:
    """The buffer that turns ``receiver``'s RTP packets into frames."""
    found = getattr(receiver, _RECEIVER_JITTER_BUFFER, None)
    if not isinstance(found, JitterBuffer):
        raise _changed("aiortc", "RTCRtpReceiver has no jitter buffer")
    return found


def replace_jitter_buffer(receiver: RTCRtpReceiver, buffer: JitterBuffer) -> None:
    """Make ``receiver`` assemble frames with ``buffer`` (before any RTP arrives)."""
    receiver_jitter_buffer(receiver)
    setattr(receiver, _RECEIVER_JITTER_BUFFER, buffer)


def remote_track_queue(track: object) -> asyncio.Queue[Any] | None:
    """The queue of decoded frames behind a received track, oldest first (None if none)."""
    found = getattr(track, _TRACK_QUEUE, None)
    return found if isinstance(found, asyncio.Queue) else None


# The jitter buffer --------------------------------------------------------------------


def jitter_buffer_is_video(buffer: JitterBuffer) -> bool:
    """Whether ``buffer`` holds video (frames span packets) rather than audio."""
    found = getattr(buffer, _JITTER_IS_VIDEO, None)
    if not isinstance(found, bool):
        raise _changed("aiortc", "JitterBuffer has no _is_video")
    return found


def packet_payload(packet: RtpPacket) -> bytes:
    """The depacketised payload aiortc's receiver attached to ``packet`` (empty: padding)."""
    data = getattr(packet, _PACKET_PAYLOAD, b"")
    return data if isinstance(data, bytes) else b""


class OpenJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, with its ring of packets open to a subclass.

    A subclass with another rule for when a frame is complete overrides
    :meth:`complete_frame` and reads the ring through :attr:`origin` and
    :meth:`packet_at`; everything else (reordering, overflow, PLI on loss) is aiortc's.
    """

    @property
    def origin(self) -> int | None:
        """Sequence number of the oldest slot of the ring (None before the first packet)."""
        return self._origin

    @property
    def is_video(self) -> bool:
        return self._is_video

    def packet_at(self, offset: int) -> RtpPacket | None:
        """The packet ``offset`` places after :attr:`origin` (None: not received)."""
        assert self._origin is not None
        return self._packets[(self._origin + offset) % self._capacity]

    def complete_frame(self, sequence_number: int) -> JitterFrame | None:
        """The oldest whole frame, taken out of the ring; aiortc's rule unless overridden."""
        return super()._remove_frame(sequence_number)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        return self.complete_frame(sequence_number)


# ICE ------------------------------------------------------------------------------------


def gather_host_addresses(addresses: HostAddresses) -> None:
    """Make every peer connection in this process offer the host addresses ``addresses``
    returns, instead of aioice's own choice (which never includes loopback)."""
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        raise _changed("aioice", "aioice.ice has no get_host_addresses")
    aioice.ice.get_host_addresses = addresses  # type: ignore[assignment]


def ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The aioice connections under ``pc``'s transceivers (one when bundled)."""
    found = {
        id(c): c
        for t in pc.getTransceivers()
        if (c := getattr(t.receiver.transport.transport, _ICE_CONNECTION, None)) is not None
    }
    return list(found.values())


def ice_receive_queue(connection: Connection) -> asyncio.Queue[Any]:
    """The queue of ``(datagram, component)`` that ``connection`` hands up to DTLS/SRTP."""
    found = getattr(connection, _CONNECTION_QUEUE, None)
    if not isinstance(found, asyncio.Queue):
        raise _changed("aioice", "Connection has no asyncio.Queue _queue")
    return found


def replace_ice_receive_queue(connection: Connection, received: asyncio.Queue[Any]) -> None:
    """Make ``connection`` put what it receives into ``received``."""
    ice_receive_queue(connection)
    setattr(connection, _CONNECTION_QUEUE, received)


def ice_protocols(connection: Connection) -> list[asyncio.DatagramProtocol]:
    """``connection``'s datagram protocols, one per socket it gathered on."""
    found = getattr(connection, _CONNECTION_PROTOCOLS, None)
    if not isinstance(found, list):
        raise _changed("aioice", "Connection has no list of protocols")
    return found


# The start-up check ------------------------------------------------------------------

_INSTANCE_ATTRIBUTES: Final[tuple[tuple[str, type, str, str], ...]] = (
    # (library, class, method that sets it, attribute)
    ("aiortc", RTCRtpSender, "__init__", _SENDER_ENCODER),
    ("aiortc", RTCRtpSender, "__init__", _SENDER_RTT),
    ("aiortc", RTCRtpSender, "__init__", _SENDER_STARTED),
    ("aiortc", RTCRtpSender, "__init__", _SENDER_EXTENSIONS),
    ("aiortc", RTCRtpSender, "__init__", _SENDER_SSRC),
    ("aiortc", RTCRtpReceiver, "__init__", _RECEIVER_DECODER_QUEUE),
    ("aiortc", RTCRtpReceiver, "__init__", _RECEIVER_DECODER_ERROR),
    ("aiortc", RTCRtpReceiver, "__init__", _RECEIVER_DECODER_THREAD),
    ("aiortc", RTCRtpReceiver, "__init__", _RECEIVER_STARTED),
    ("aiortc", RTCRtpReceiver, "__init__", _RECEIVER_JITTER_BUFFER),
    ("aiortc", RTCRtpReceiver, _RECEIVER_RTP_HANDLER, _PACKET_PAYLOAD),
    ("aiortc", RemoteStreamTrack, "__init__", _TRACK_QUEUE),
    ("aiortc", JitterBuffer, "__init__", _JITTER_ORIGIN),
    ("aiortc", JitterBuffer, "__init__", _JITTER_PACKETS),
    ("aiortc", JitterBuffer, "__init__", _JITTER_CAPACITY),
    ("aiortc", JitterBuffer, "__init__", _JITTER_IS_VIDEO),
    ("aiortc", RTCIceTransport, "__init__", _ICE_CONNECTION),
    ("aioice", Connection, "__init__", _CONNECTION_QUEUE),
    ("aioice", Connection, "__init__", _CONNECTION_PROTOCOLS),
)
_METHODS: Final[tuple[tuple[str, type, str, bool], ...]] = (
    # (library, class, method, is a coroutine function)
    ("aiortc", RTCRtpSender, _SENDER_RTCP_HANDLER, True),
    ("aiortc", RTCRtpSender, _SENDER_KEYFRAME_HOOK, False),
    ("aiortc", JitterBuffer, _JITTER_COMPLETE_FRAME, False),
    ("aiortc", JitterBuffer, "remove", False),
)


def _sets(function: object, attribute: str) -> bool:
    """Whether ``function``'s own code assigns ``attribute`` on some object."""
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    return any(
        i.opname == "STORE_ATTR" and i.argval == attribute for i in dis.get_instructions(code)
    )


def _missing_internals() -> list[tuple[str, str]]:
    """(library, what) for every internal that is not where and as this module expects."""
    missing: list[tuple[str, str]] = []
    for library, cls, method, attribute in _INSTANCE_ATTRIBUTES:
        if not _sets(cls.__dict__.get(method), attribute):
            missing.append((library, f"{cls.__name__}.{attribute} (set in {method})"))
    for library, cls, name, is_coroutine in _METHODS:
        found = getattr(cls, name, None)
        if not callable(found) or inspect.iscoroutinefunction(found) != is_coroutine:
            kind = "coroutine method" if is_coroutine else "method"
            missing.append((library, f"{kind} {cls.__name__}.{name}"))
    hosts = getattr(aioice.ice, "get_host_addresses", None)
    if not callable(hosts) or list(inspect.signature(hosts).parameters) != [
        "use_ipv4",
        "use_ipv6",
    ]:
        missing.append(("aioice", "function aioice.ice.get_host_addresses(use_ipv4, use_ipv6)"))
    extensions = getattr(aiortc.codecs, "HEADER_EXTENSIONS", None)
    if not isinstance(extensions, dict) or not all(
        isinstance(extensions.get(kind), list) for kind in ("audio", "video")
    ):
        missing.append(("aiortc", "dict aiortc.codecs.HEADER_EXTENSIONS of audio/video lists"))
    return missing


def _installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def self_check() -> None:
    """Refuse to start if aiortc or aioice is not the version whose internals we use.

    Checks that every internal this module relies on exists with the expected shape
    (attributes set where expected, methods callable, module names present), then that
    the installed versions are the pinned ones. Raises ``RuntimeError`` naming each
    internal that moved and the installed version.
    """
    pins = {"aiortc": AIORTC_VERSION, "aioice": AIOICE_VERSION}
    installed = {library: _installed_version(library) for library in pins}
    problems = [
        f"{library} {installed[library]} changed: {what} is missing; "
        f"Clinicam needs {library}=={pins[library]}"
        for library, what in _missing_internals()
    ]
    problems += [
        f"{library} {installed[library]} is installed; Clinicam needs {library}=={pin} "
        "(internals used: see clinicam/aiortc_compat.py)"
        for library, pin in pins.items()
        if installed[library] != pin
    ]
    if problems:
        raise RuntimeError("\n".join(problems))
