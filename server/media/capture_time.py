"""When the patient's picture was taken, on every RTP packet of an expert's composite.

The appliance stamps each frame with its capture time (:mod:`clinicam.frametrace`);
the server carries that stamp through decoding and compositing to the composite that
shows the frame in its live window. This module puts it on the composite's RTP packets
as the *absolute capture time* header extension
(``http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time``): 8 bytes, the
capture time as a 64-bit NTP timestamp (UQ32.32 seconds since 1900) in the capture
system's clock, optionally followed by 8 bytes of *estimated capture clock offset*
(signed Q32.32 seconds: capture clock = sender clock + offset).

The browser then knows, for the frame it shows, when the appliance captured it:
Chromium reports it as ``captureTimestamp`` of ``RTCRtpReceiver.getSynchronizationSources()``
(once the page asked to negotiate the extension, which Chromium does not by default:
``RTCRtpTransceiver.setHeaderExtensionsToNegotiate``). The room's latency readout
(``server/static/room_latency.js``) subtracts it from the time the frame is shown: the
glass-to-glass latency, measured, not estimated.

Clocks: the stamp is the appliance's wall clock, which — like the stage stamps — is
taken to agree with the server's (both NTP-synchronised), so no offset is sent unless a
caller knows one. The browser's clock is another matter: the room page measures its
offset to the server over the room's WebSocket (:mod:`server.room_clock`).

A composite whose live window shows no appliance frame (no stamp) carries no element.
A stamp that does not fit the extension (before 1900, after 2036, negative) is left off
rather than stopping the sender: the stamps come from the appliance, over the network.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from aiortc import RTCRtpSender
from aiortc.rtp import HeaderExtensions

from server.media.rtp_extensions import Writer, accept_video_extension, extra_extensions

ABS_CAPTURE_TIME_URI: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
ABS_CAPTURE_TIME_ID: Final = 7  # when aiortc offers; as answerer it takes the offer's id
NTP_UNIX_OFFSET_S: Final = 2_208_988_800  # 1900-01-01 → 1970-01-01
_FRACTION: Final = 1 << 32
_US: Final = 1_000_000
_STAMP: Final = "_clinicam_abs_capture_time"  # the element written on a packet (resends)
_UNSIGNED: Final = struct.Struct(">Q")
_WITH_OFFSET: Final = struct.Struct(">Qq")


def ntp_from_unix_us(unix_us: int) -> int:
    """UQ32.32 NTP timestamp of a wall-clock time in µs since 1970 (ValueError: out of era 0)."""
    ntp = ((unix_us + NTP_UNIX_OFFSET_S * _US) * _FRACTION + _US // 2) // _US
    if not 0 <= ntp < 1 << 64:
        raise ValueError(f"{unix_us} µs since 1970 has no NTP timestamp in era 0 (1900–2036)")
    return ntp


def unix_us_from_ntp(ntp: int) -> int:
    """Wall-clock µs since 1970 of a UQ32.32 NTP timestamp (rounded to the µs)."""
    if not 0 <= ntp < 1 << 64:
        raise ValueError(f"{ntp} is not a 64-bit NTP timestamp")
    return (ntp * _US + _FRACTION // 2) // _FRACTION - NTP_UNIX_OFFSET_S * _US


def offset_q32(offset_us: int) -> int:
    """Signed Q32.32 seconds of an offset in µs (ValueError beyond ±2^31 s)."""
    q = (2 * offset_us * _FRACTION + _US) // (2 * _US)  # to the nearest, either sign
    if not -(1 << 63) <= q < 1 << 63:
        raise ValueError(f"a clock offset of {offset_us} µs does not fit Q32.32")
    return q


def pack_abs_capture_time(capture_us: int, offset_us: int | None = None) -> bytes:
    """The element's 8 bytes (capture time), or 16 with the estimated capture clock offset."""
    ntp = ntp_from_unix_us(capture_us)
    if offset_us is None:
        return _UNSIGNED.pack(ntp)
    return _WITH_OFFSET.pack(ntp, offset_q32(offset_us))


def unpack_abs_capture_time(data: bytes) -> tuple[int, int | None]:
    """(capture time in µs since 1970, clock offset in µs or None) of an element's bytes."""
    if len(data) == _UNSIGNED.size:
        return unix_us_from_ntp(_UNSIGNED.unpack(data)[0]), None
    if len(data) == _WITH_OFFSET.size:
        ntp, q = _WITH_OFFSET.unpack(data)
        return unix_us_from_ntp(ntp), round(q * _US / _FRACTION)
    raise ValueError(f"abs-capture-time has 8 or 16 bytes, not {len(data)}")


def negotiate_abs_capture_time() -> None:
    """Make aiortc accept the extension for video when a browser offers it. Idempotent."""
    accept_video_extension(ABS_CAPTURE_TIME_URI, ABS_CAPTURE_TIME_ID)


def capture_time_writer(
    capture_us: Callable[[], int | None],
    offset_us: Callable[[], int | None] = lambda: None,
) -> Writer:
    """A writer of the capture time ``capture_us()`` gives for the frame being packed.

    aiortc packs a frame's packets right after its track handed the frame over, so
    ``capture_us`` answers for the frame the track returned last. The element goes on
    the packet's extensions object, which a retransmission of that packet reuses: a
    resent packet carries its own frame's capture time, not the newest one.
    """

    def write(values: HeaderExtensions) -> bytes | None:
        written = getattr(values, _STAMP, None)
        if isinstance(written, bytes):
            return written or None
        at = capture_us()
        try:
            element = b"" if at is None else pack_abs_capture_time(at, offset_us())
        except ValueError:
            element = b""  # an implausible stamp from the appliance: leave it off
        setattr(values, _STAMP, element)
        return element or None

    return write


def send_capture_time(
    sender: RTCRtpSender,
    capture_us: Callable[[], int | None],
    offset_us: Callable[[], int | None] = lambda: None,
) -> None:
    """Write the capture time of each frame ``sender`` sends (see :func:`capture_time_writer`).

    Takes effect if the extension is negotiated (:func:`negotiate_abs_capture_time`
    before the answer, and an offer that asks for it). Call before the sender starts.
    """
    extra_extensions(sender).add(ABS_CAPTURE_TIME_URI, capture_time_writer(capture_us, offset_us))
