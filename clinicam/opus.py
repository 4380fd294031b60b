"""Voice at a rural link's budget (R17): Opus for speech, with in-band FEC.

aiortc encodes every audio track as 96 kbit/s stereo Opus, a sixth of a 3G uplink. Speech
needs far less: :func:`send_voice` gives one sender a mono encoder at
:data:`VOICE_BPS` in VoIP mode with in-band forward error correction (each packet also
carries a coarse copy of the one before, so a single lost packet is recovered without a
retransmission) tuned for :data:`EXPECTED_LOSS_PCT` loss. aiortc creates its encoder
lazily at the first frame; this one is put in its place before that (a single-underscore
attribute check fails loudly if aiortc's internals change). :func:`voice_codec` is the
same encoder as a bare PyAV codec, for a sender that encodes before aiortc (the server's
audio mix, which packs ready packets).
"""

from __future__ import annotations

from fractions import Fraction

import av
from aiortc import RTCRtpSender
from aiortc.codecs.opus import OpusEncoder
from av import AudioResampler

VOICE_BPS = 32_000
EXPECTED_LOSS_PCT = 10
_ENCODER = "_RTCRtpSender__encoder"


RATE = 48_000
VOICE_OPTIONS = {"application": "voip", "fec": "1", "packet_loss": str(EXPECTED_LOSS_PCT)}


def voice_codec(bitrate_bps: int = VOICE_BPS) -> av.AudioCodecContext:
    """A mono 48 kHz Opus encoder for one voice (VoIP, FEC); feed it 20 ms s16 frames."""
    codec = av.CodecContext.create("libopus", "w")
    assert isinstance(codec, av.AudioCodecContext)
    codec.bit_rate = bitrate_bps
    codec.format = "s16"
    codec.layout = "mono"
    codec.sample_rate = RATE
    codec.time_base = Fraction(1, RATE)
    codec.options = dict(VOICE_OPTIONS)
    return codec


def voice_encoder(bitrate_bps: int = VOICE_BPS) -> OpusEncoder:
    """aiortc's Opus encoder, set up for one voice (mono, VoIP, FEC)."""
    encoder = OpusEncoder()
    codec = encoder.codec
    codec.bit_rate = bitrate_bps
    codec.layout = "mono"
    codec.options = dict(VOICE_OPTIONS)
    encoder.resampler = AudioResampler(format="s16", layout="mono", rate=RATE, frame_size=960)
    return encoder


def send_voice(sender: RTCRtpSender, bitrate_bps: int = VOICE_BPS) -> None:
    """Make ``sender`` (an audio sender not yet started) send voice-grade Opus."""
    if not hasattr(sender, _ENCODER):
        raise RuntimeError("aiortc's RTCRtpSender internals changed: no encoder slot")
    if getattr(sender, _ENCODER) is not None:
        raise RuntimeError("the sender already encodes: set its encoder before it starts")
    setattr(sender, _ENCODER, voice_encoder(bitrate_bps))
