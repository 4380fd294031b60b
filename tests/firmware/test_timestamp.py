"""The capture-time barcode survives an H.264 round trip and a downscale."""

from __future__ import annotations

import av

from clinicam.h264 import H264StreamEncoder
from firmware.config import ApplianceConfig
from firmware.hardware import timestamp
from firmware.hardware.sim import build_sim_rig


def test_stamp_is_off_by_default_and_readable_after_encode_and_scale() -> None:
    plain = build_sim_rig(ApplianceConfig())
    assert timestamp.read_bits(plain.camera.capture().to_ndarray(format="gray")) != 1234567
    rig = build_sim_rig(ApplianceConfig.model_validate({"sim": {"stamp_time": True}}))
    frame = timestamp.stamp(rig.camera.capture(), now_ms=1234567)
    encoder = H264StreamEncoder(1280, 720, 15, 2500, 15)
    decoder = av.CodecContext.create("h264", "r")
    decoded = [f for p in encoder.encode(frame, 0) for f in decoder.decode(av.Packet(bytes(p)))]
    decoded += list(decoder.decode(None))
    small = decoded[0].reformat(width=852, height=480, format="gray")
    assert timestamp.read_bits(small.to_ndarray()) == 1234567
    live = rig.camera.capture().to_ndarray(format="gray")  # stamped with the real clock
    assert timestamp.read_bits(live) != 0
