"""Where a live frame's time goes: stage stamps carried with the frame through the pipeline.

The appliance writes three stamps (captured, encoded, sent) into each H.264 access unit
as an SEI message of type *user data unregistered* (ITU-T H.264 §D.1.6: a 16-byte UUID
then our payload). Decoders, the archive's remux and browsers ignore such messages, so
the stamps travel for free through aiortc's packetizer, the network and the server's
receive buffer; the server reads them back before decoding and adds its own stages
(received, decoding, decoded, composed, encoded, sent). ``/api/media/latency`` and
``bench/glass_to_glass.py`` show the per-stage figures.

Stamps are wall-clock microseconds (``time.time_ns() // 1000``). Differences within one
machine are exact; the appliance → server step also contains the two clocks' offset
(NTP keeps it to a few ms on a synchronised site).
"""

from __future__ import annotations

import itertools
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Final

# Random, fixed: identifies Clinicam's stamps among other user-data SEI messages.
TRACE_UUID: Final = uuid.UUID("6c1e9a57-3f0d-4b8e-9a41-c11c1ca7f7a3").bytes
TRACE_VERSION: Final = 1
APPLIANCE_STAGES: Final = ("captured", "encoded", "sent")
SERVER_STAGES: Final = (
    "arrived",  # first packet of the frame
    "received",  # whole frame, to the decoder
    "decoding",
    "decoded",
    "composed",
    "composite_encoded",
    "composite_sent",
)
STAGES: Final = APPLIANCE_STAGES + SERVER_STAGES
_PAYLOAD = struct.Struct(">B3Q")
_SEI_NAL_TYPE: Final = 6
_USER_DATA_UNREGISTERED: Final = 5
_VCL_TYPES: Final = frozenset({1, 5})
START_CODE: Final = b"\x00\x00\x00\x01"


def now_us() -> int:
    """Wall-clock time in microseconds since the Unix epoch."""
    return time.time_ns() // 1000


@dataclass
class FrameTrace:
    """Stage stamps (µs since the epoch) of one frame, in the order it passed them."""

    stamps: dict[str, int] = field(default_factory=dict)

    def mark(self, stage: str, at_us: int | None = None) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        self.stamps[stage] = now_us() if at_us is None else at_us

    def copy(self) -> FrameTrace:
        return FrameTrace(dict(self.stamps))

    def steps_ms(self) -> dict[str, float]:
        """Milliseconds between consecutive stamped stages: ``"captured→encoded": 9.1``…"""
        present = [s for s in STAGES if s in self.stamps]
        return {
            f"{a}→{b}": (self.stamps[b] - self.stamps[a]) / 1000.0
            for a, b in itertools.pairwise(present)
        }


# --- emulation prevention (H.264 §7.4.1) -----------------------------------------------


def escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes: no 00 00 0x (x ≤ 3) may appear in a NAL unit."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def unescape(ebsp: bytes) -> bytes:
    """Remove emulation-prevention bytes (00 00 03 → 00 00)."""
    if b"\x00\x00\x03" not in ebsp:
        return ebsp
    out = bytearray()
    zeros = 0
    for byte in ebsp:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


# --- Annex-B access units ---------------------------------------------------------------


def nal_units(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each NAL unit's bytes (after its start code) in Annex-B ``data``."""
    starts: list[int] = []
    pos = data.find(b"\x00\x00\x01")
    while pos != -1:
        starts.append(pos + 3)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    units = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        while i + 1 < len(starts) and end > start and data[end - 1] == 0:
            end -= 1  # a four-byte start code's leading zero (or trailing zero bytes)
        units.append((start, end))
    return units


def is_h264_keyframe(data: bytes) -> bool:
    """Whether an Annex-B access unit holds an IDR slice."""
    return any(end > start and data[start] & 0x1F == 5 for start, end in nal_units(data))


def trace_sei(captured_us: int, encoded_us: int, sent_us: int) -> bytes:
    """One SEI NAL unit (with its start code) carrying the appliance's three stamps."""
    payload = TRACE_UUID + _PAYLOAD.pack(TRACE_VERSION, captured_us, encoded_us, sent_us)
    rbsp = bytes([_USER_DATA_UNREGISTERED, len(payload)]) + payload + b"\x80"
    return START_CODE + bytes([_SEI_NAL_TYPE]) + escape(rbsp)


def insert_sei(access_unit: bytes, sei: bytes) -> bytes:
    """``access_unit`` with ``sei`` placed before its first slice (where §7.4.1.2.3 wants it)."""
    for start, end in nal_units(access_unit):
        if end > start and access_unit[start] & 0x1F in _VCL_TYPES:
            cut = start - 3  # that slice's start code, with a four-byte code's leading zero
            if cut > 0 and access_unit[cut - 1] == 0:
                cut -= 1
            return access_unit[:cut] + sei + access_unit[cut:]
    return access_unit + sei


def _sei_messages(rbsp: bytes) -> list[tuple[int, bytes]]:
    messages = []
    pos = 0
    while pos < len(rbsp) and rbsp[pos:] != b"\x80":
        kind = size = 0
        while pos < len(rbsp) and rbsp[pos] == 0xFF:
            kind, pos = kind + 255, pos + 1
        if pos >= len(rbsp):
            break
        kind, pos = kind + rbsp[pos], pos + 1
        while pos < len(rbsp) and rbsp[pos] == 0xFF:
            size, pos = size + 255, pos + 1
        if pos >= len(rbsp):
            break
        size, pos = size + rbsp[pos], pos + 1
        if pos + size > len(rbsp):
            break
        messages.append((kind, rbsp[pos : pos + size]))
        pos += size
    return messages


def read_trace(access_unit: bytes) -> FrameTrace | None:
    """The appliance's stamps in ``access_unit`` (Annex-B), or None if it carries none."""
    for start, end in nal_units(access_unit):
        if end <= start or access_unit[start] & 0x1F != _SEI_NAL_TYPE:
            continue
        for kind, body in _sei_messages(unescape(access_unit[start + 1 : end])):
            if kind != _USER_DATA_UNREGISTERED or body[:16] != TRACE_UUID:
                continue
            if len(body) != 16 + _PAYLOAD.size or body[16] != TRACE_VERSION:
                return None
            _, captured, encoded, sent = _PAYLOAD.unpack(body[16:])
            return FrameTrace({"captured": captured, "encoded": encoded, "sent": sent})
    return None
