"""Voice at a rural link's budget (R17): Opus for speech, with in-band FEC.

aiortc encodes every audio track as 96 kbit/s stereo Opus, a sixth of a 3G uplink. Speech
needs far less: :func:`send_voice` gives one sender a mono encoder at
:data:`VOICE_BPS` in VoIP mode with in-band forward error correction (each packet also
carries a coarse copy of the one before, so a single lost packet is recovered without a
retransmission) tuned for :data:`EXPECTED_LOSS_PCT` loss. aiortc creates its encoder
lazily at the first frame; this one is put in its place before that
(:func:`clinicam.aiortc_compat.set_sender_encoder`, which fails loudly if aiortc's
internals change). :func:`voice_codec` is the same encoder as a bare PyAV codec, for a
sender that encodes before aiortc (the server's audio mix, which packs ready packets).
"""

from __future__ import annotations

from fractions import Fraction

import av
from aiortc import RTCRtpSender
from aiortc.codecs.opus import OpusEncoder
from av import AudioResampler

from clinicam.aiortc_compat import set_sender_encoder

VOICE_BPS = 32_000
EXPECTED_LOSS_PCT = 10


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
    set_sender_encoder(sender, voice_encoder(bitrate_bps))
