"""Voice notes: WAV parsed here, other containers measured by FFmpeg's demuxer."""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from av.audio.stream import AudioStream
from av.container import InputContainer

from clinicam.i18n import _
from server.records.ingest.formats import (
    Category,
    IngestError,
    IngestLimits,
    Inspected,
    _Format,
    _the,
)

_LOGGER = logging.getLogger(__name__)


# --- audio -------------------------------------------------------------------------------

_WAV_CODECS = {
    (1, 8): "pcm_u8",
    (1, 16): "pcm_s16le",
    (1, 24): "pcm_s24le",
    (1, 32): "pcm_s32le",
    (3, 32): "pcm_f32le",
    (3, 64): "pcm_f64le",
    (6, 8): "pcm_alaw",
    (7, 8): "pcm_mulaw",
}
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_WAV_MAX_CHUNKS = 1000
_MIN_SAMPLE_RATE, _MAX_SAMPLE_RATE = 1000, 384_000
_MAX_CHANNELS = 32


@dataclass(frozen=True)
class _WavFormat:
    codec: str
    channels: int
    sample_rate: int
    block_align: int


def _wav_invalid(detail: str) -> IngestError:
    return IngestError(422, _("not a valid WAV file: {detail}", detail=detail))


def _inspect_wav(path: Path, fmt: _Format, category: Category, limits: IngestLimits) -> Inspected:
    wav_format, data_size = _read_wav_chunks(path)
    duration = data_size / (wav_format.block_align * wav_format.sample_rate)
    _check_duration(duration, limits)
    metadata = {
        "duration_s": duration,
        "sample_rate": wav_format.sample_rate,
        "codec": wav_format.codec,
        "channels": wav_format.channels,
    }
    return Inspected(category, fmt.media_type, metadata, None)


def _read_wav_chunks(path: Path) -> tuple[_WavFormat, int]:
    """The fmt chunk and the data chunk's size, reading only chunk headers and fmt."""
    file_size = path.stat().st_size
    wav_format: _WavFormat | None = None
    data_size: int | None = None
    with path.open("rb") as fh:
        pos = 12
        for _chunk in range(_WAV_MAX_CHUNKS):
            fh.seek(pos)
            header = fh.read(8)
            if len(header) < 8 or (wav_format is not None and data_size is not None):
                break
            chunk_id, size = header[:4], int.from_bytes(header[4:], "little")
            if not all(32 <= b < 127 for b in chunk_id):
                raise _wav_invalid(_("garbage where a chunk should start (byte {pos})", pos=pos))
            if pos + 8 + size > file_size:
                raise _wav_invalid(
                    _(
                        "the {chunk} chunk claims {size} bytes, more than the {left} left in "
                        "the file",
                        chunk=repr(chunk_id.decode()),
                        size=size,
                        left=file_size - pos - 8,
                    )
                )
            if chunk_id == b"fmt ":
                wav_format = _parse_wav_fmt(fh.read(min(size, 64)))
            elif chunk_id == b"data":
                data_size = size
            pos += 8 + size + (size & 1)
    if wav_format is None:
        raise _wav_invalid(_("it has no fmt chunk"))
    if data_size is None:
        raise _wav_invalid(_("it has no data chunk"))
    return wav_format, data_size


def _parse_wav_fmt(body: bytes) -> _WavFormat:
    if len(body) < 16:
        raise _wav_invalid(_("the fmt chunk is too short"))
    tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        if len(body) < 26:
            raise _wav_invalid(_("the extensible fmt chunk is too short"))
        (tag,) = struct.unpack_from("<H", body, 24)
    if not 1 <= channels <= _MAX_CHANNELS:
        raise _wav_invalid(_("{count} channels", count=channels))
    if not _MIN_SAMPLE_RATE <= rate <= _MAX_SAMPLE_RATE:
        raise _wav_invalid(_("a sample rate of {rate} Hz", rate=rate))
    if bits == 0 or align != channels * ((bits + 7) // 8) or byte_rate != rate * align:
        raise _wav_invalid(
            _(
                "inconsistent sizes ({bits} bits, block align {align}, {byte_rate} bytes/s "
                "for {channels} channels at {rate} Hz)",
                bits=bits,
                align=align,
                byte_rate=byte_rate,
                channels=channels,
                rate=rate,
            )
        )
    codec = _WAV_CODECS.get((tag, bits))
    if codec is None:
        raise IngestError(
            415,
            _(
                "unsupported WAV encoding (format {tag}, {bits} bits); use PCM",
                tag=f"{tag:#06x}",
                bits=bits,
            ),
        )
    return _WavFormat(codec, channels, rate, align)


def _check_duration(duration: float, limits: IngestLimits) -> None:
    if duration <= 0:
        raise IngestError(422, _("the recording is empty (it lasts 0 seconds)"))
    if duration > limits.max_audio_seconds:
        raise IngestError(
            422,
            _(
                "the recording lasts {seconds} s, longer than the limit of {limit} s",
                seconds=f"{duration:.0f}",
                limit=f"{limits.max_audio_seconds:.0f}",
            ),
        )


# Only the local file itself may be opened; MP4 external data references stay off.
_FFMPEG_OPTIONS = {"protocol_whitelist": "file", "enable_drefs": "0"}


def _inspect_container_audio(
    path: Path, fmt: _Format, category: Category, limits: IngestLimits
) -> Inspected:
    try:
        container = av.open(
            str(path), format=fmt.decoder, options=_FFMPEG_OPTIONS, metadata_errors="ignore"
        )
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise IngestError(422, _cannot_read(fmt, exc)) from exc
    with container:
        try:
            metadata = _audio_metadata(container, fmt, limits)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise IngestError(422, _cannot_read(fmt, exc)) from exc
    return Inspected(category, fmt.media_type, metadata, None)


def _cannot_read(fmt: _Format, exc: Exception) -> str:
    return _(
        "{the_format} cannot be read: {reason}", the_format=_the(fmt), reason=_ffmpeg_reason(exc)
    )


def _ffmpeg_reason(exc: Exception) -> str:
    """FFmpeg's sentence without the file name (a server path the user must not see)."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


def _audio_metadata(
    container: InputContainer, fmt: _Format, limits: IngestLimits
) -> dict[str, Any]:
    if container.streams.video:
        raise IngestError(
            422,
            _(
                "{the_format} contains a video stream: a video is not a voice note",
                the_format=_the(fmt),
            ),
        )
    if not container.streams.audio:
        raise IngestError(422, _("{the_format} contains no audio stream", the_format=_the(fmt)))
    stream = container.streams.audio[0]
    context = stream.codec_context  # None when FFmpeg knows no codec for the stream
    if context is None or not context.sample_rate or not context.channels:
        raise IngestError(
            422, _("{the_format} gives no sample rate or channel count", the_format=_the(fmt))
        )
    duration = _audio_duration(container, stream, limits)
    _check_duration(duration, limits)
    return {
        "duration_s": duration,
        "sample_rate": int(context.sample_rate),
        "codec": context.codec.canonical_name,
        "channels": int(context.channels),
    }


def _audio_duration(container: InputContainer, stream: AudioStream, limits: IngestLimits) -> float:
    """From the container header, else the stream header, else the last packet's end.

    Browsers' MediaRecorder writes WebM without a duration; then the packets are
    demuxed (read, not decoded) until their end or until they pass the limit.
    """
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    start, end = stream.start_time or 0, 0.0
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        end = max(end, float((packet.pts - start + (packet.duration or 0)) * packet.time_base))
        if end > limits.max_audio_seconds:
            break
    return end
