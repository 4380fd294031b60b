"""Voice-grade Opus: a third of aiortc's default bitrate, still the same voice."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
from aiortc.codecs.opus import OpusDecoder, OpusEncoder
from aiortc.jitterbuffer import JitterFrame

from clinicam.opus import VOICE_BPS, voice_encoder


def _tone(index: int) -> av.AudioFrame:
    t = (index * 960 + np.arange(960)) / 48_000
    samples = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = 48_000, index * 960, Fraction(1, 48_000)
    return frame


def _run(encoder: OpusEncoder) -> tuple[float, np.ndarray]:
    decoder, sent, decoded = OpusDecoder(), 0, []
    for index in range(150):  # 3 s
        payloads, timestamp = encoder.encode(_tone(index))
        for payload in payloads:
            sent += len(payload)
            for frame in decoder.decode(JitterFrame(payload, timestamp)):
                decoded.append(frame.to_ndarray().reshape(-1, 2).mean(axis=1))
    return sent * 8 / 3, np.concatenate(decoded)


def test_voice_costs_a_third_and_still_carries_the_tone() -> None:
    default_bps, _ = _run(OpusEncoder())
    voice_bps, audio = _run(voice_encoder())
    assert voice_bps < 1.3 * VOICE_BPS < 0.5 * default_bps
    spectrum = np.abs(np.fft.rfft(audio[48_000:]))
    freqs = np.fft.rfftfreq(len(audio[48_000:]), 1 / 48_000)
    assert abs(freqs[int(spectrum.argmax())] - 440) < 5
