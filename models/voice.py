"""Voice notes for the relevance model: decoding and the log-mel spectrogram.

Part of :mod:`models.preprocess` (the one preprocessing per category that training and
the runtime share): decoded with FFmpeg (PyAV, imported when first needed) to mono
float at a fixed rate, leading silence trimmed, a fixed-length clip peak-normalised,
a log-mel spectrogram with the triangular (HTK) mel filterbank below.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.inputs import FloatArray, PreprocessError


@dataclass(frozen=True)
class VoiceParams:
    """Voice notes: decoding, clip length and the log-mel spectrogram."""

    sample_rate: int = 16000
    n_fft: int = 512
    hop: int = 320
    n_mels: int = 40
    n_frames: int = 100
    fmin: float = 50.0
    fmax: float = 7600.0
    max_decode_s: float = 30.0  # never decode more than this much of a long note
    silence_rel: float = 0.05  # leading samples below this × peak are skipped
    power_floor: float = 1e-6  # -60 dB below a full-scale bin: the noise floor
    db_offset: float = 60.0  # value = (10·log10(max(mel, floor)) + db_offset) / db_scale
    db_scale: float = 100.0

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n_mels, self.n_frames, 1)

    @property
    def clip_samples(self) -> int:
        return self.n_fft + self.hop * (self.n_frames - 1)


# Demuxer by magic bytes: FFmpeg never probes (so a playlist cannot make it open URLs).
_AUDIO_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", "wav"),
    (0, b"OggS", "ogg"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),
    (0, b"fLaC", "flac"),
    (0, b"ID3", "mp3"),
    (4, b"ftyp", "mp4"),
)


# The container headers name the codec and rate; FFmpeg's default stream probing
# (5 MB / 5 s of analysis) costs more than decoding a whole short note.
_PROBE_OPTIONS = {"probesize": "32768", "analyzeduration": "0"}


def _audio_format(data: bytes) -> str:
    for offset, magic, name in _AUDIO_MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return name
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return "mp3"
    raise PreprocessError("not a supported audio container (WAV, Ogg, WebM, FLAC, MP3, M4A)")


def decode_audio(data: bytes, sample_rate: int, max_seconds: float) -> FloatArray:
    """The first ``max_seconds`` of the first audio stream, mono float32 at ``sample_rate``."""
    import av

    limit = round(max_seconds * sample_rate)
    chunks: list[FloatArray] = []
    total = 0
    try:
        with av.open(
            io.BytesIO(data), mode="r", format=_audio_format(data), options=_PROBE_OPTIONS
        ) as container:
            streams = [stream for stream in container.streams if stream.type == "audio"]
            if not streams:
                raise PreprocessError("the file has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(streams[0]):
                if not isinstance(frame, av.AudioFrame):
                    continue
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32)
                    chunks.append(chunk)
                    total += chunk.size
                if total >= limit:
                    break
            else:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
    except av.FFmpegError as exc:
        raise PreprocessError(f"cannot decode the audio: {exc}") from exc
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks)[:limit]


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Triangular filters, peak 1, centres equally spaced on the HTK mel scale.

    Returns ``(n_mels, n_fft // 2 + 1)``: row m weights the power of each FFT bin.
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError("need 0 ≤ fmin < fmax ≤ sample_rate / 2")

    def to_mel(hz: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def to_hz(mel: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(np.array(fmin)), to_mel(np.array(fmax)), n_mels + 2))
    bins = np.arange(n_fft // 2 + 1, dtype=np.float64) * sample_rate / n_fft
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel_spectrogram(clip: np.ndarray[Any, Any], params: VoiceParams) -> FloatArray:
    """``(n_mels, n_frames)`` normalised log-mel power of a ``clip_samples`` signal."""
    signal = np.asarray(clip, dtype=np.float64)
    if signal.shape != (params.clip_samples,):
        raise ValueError(f"clip must have {params.clip_samples} samples")
    frames = np.lib.stride_tricks.sliding_window_view(signal, params.n_fft)[:: params.hop]
    n = np.arange(params.n_fft, dtype=np.float64)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / params.n_fft)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    bank = mel_filterbank(params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax)
    mel = power @ bank.T
    decibels = 10.0 * np.log10(np.maximum(mel, params.power_floor))
    normalised: FloatArray = ((decibels + params.db_offset) / params.db_scale).T.astype(np.float32)
    return normalised


def voice_clip(samples: np.ndarray[Any, Any], params: VoiceParams) -> FloatArray:
    """The fixed-length clip: leading silence skipped, zero-padded, peak-normalised."""
    signal = np.asarray(samples, dtype=np.float32)
    peak = float(np.max(np.abs(signal), initial=0.0))
    start = 0
    if peak > 0:
        loud = np.flatnonzero(np.abs(signal) >= params.silence_rel * peak)
        start = int(loud[0]) if loud.size else 0
    clip = np.zeros(params.clip_samples, dtype=np.float32)
    piece = signal[start : start + params.clip_samples]
    clip[: piece.size] = piece
    clip_peak = float(np.max(np.abs(clip), initial=0.0))
    if clip_peak > 0:
        clip /= np.float32(clip_peak)
    return clip


def voice_tensor(data: bytes, params: VoiceParams) -> FloatArray:
    """A voice note as ``params.shape`` float32 log-mel spectrogram."""
    samples = decode_audio(data, params.sample_rate, params.max_decode_s)
    if samples.size == 0:
        raise PreprocessError("the voice note has no audio samples")
    return log_mel_spectrogram(voice_clip(samples, params), params).reshape(params.shape)
