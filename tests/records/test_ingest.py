"""Upload inspection: real files made with Pillow, pydicom, PyAV and wave, never mocks."""

from __future__ import annotations

import fractions
import resource
import struct
import tracemalloc
import wave
import zlib
from pathlib import Path

import av
import numpy as np
import pydicom
import pydicom.data
import pytest
from av.audio.stream import AudioStream
from PIL import ExifTags, Image, PngImagePlugin

from server.records.ingest import (
    CLEANED_PREFIX,
    Category,
    IngestError,
    IngestLimits,
    Inspected,
    inspect_upload,
)

CT_SMALL = Path(str(pydicom.data.get_testdata_file("CT_small.dcm")))
ARTIST, SERIAL, OWNER = "Dr. Jane Roe", "SN-4815162342", "Jane Roe Clinic"
TAKEN = "2024:05:01 10:30:00"


def _refused(path: Path, declared: Category | None = None, **limits: float) -> IngestError:
    with pytest.raises(IngestError) as caught:
        inspect_upload(path, declared, IngestLimits(**limits))  # type: ignore[arg-type]
    return caught.value


def _noise(width: int, height: int, seed: int = 1) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _identity_exif() -> Image.Exif:
    """Orientation, time and camera (to keep) plus GPS, artist, owner and serial (to go)."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "Acme"
    exif[ExifTags.Base.Model] = "DermaCam 2"
    exif[ExifTags.Base.Artist] = ARTIST
    exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    exif_ifd[ExifTags.Base.DateTimeOriginal] = TAKEN
    exif_ifd[ExifTags.Base.BodySerialNumber] = SERIAL
    exif_ifd[ExifTags.Base.CameraOwnerName] = OWNER
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "S"
    gps[ExifTags.GPS.GPSLatitude] = (12.0, 34.0, 56.0)
    return exif


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _assert_identity_removed(inspected: Inspected, original: Path) -> Path:
    cleaned = inspected.cleaned
    assert cleaned is not None and cleaned.parent == original.parent
    assert cleaned.name.startswith(CLEANED_PREFIX)
    raw = cleaned.read_bytes()
    for secret in (ARTIST, SERIAL, OWNER, "Jane"):
        assert secret.encode() not in raw, secret
    with Image.open(cleaned) as img:
        exif = img.getexif()
        assert ExifTags.IFD.GPSInfo not in exif
        assert ExifTags.Base.Artist not in exif
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
        assert ExifTags.Base.BodySerialNumber not in exif_ifd
        assert ExifTags.Base.CameraOwnerName not in exif_ifd
        assert exif[ExifTags.Base.Orientation] == 6
        assert exif[ExifTags.Base.Make] == "Acme"
        assert exif_ifd[ExifTags.Base.DateTimeOriginal] == TAKEN
    assert np.array_equal(_pixels(cleaned), _pixels(original)), "pixels were re-encoded"
    return cleaned


# --- photos and scans ----------------------------------------------------------------------


def test_jpeg_photo_loses_gps_and_identity_but_keeps_pixels_and_orientation(
    tmp_path: Path,
) -> None:
    upload = tmp_path / "upload"
    _noise(64, 48).save(
        upload,
        "JPEG",
        quality=90,
        exif=_identity_exif().tobytes(),
        comment=f"patient seen by {ARTIST}",
        xmp=f"<x:xmpmeta><dc:creator>{ARTIST}</dc:creator></x:xmpmeta>".encode(),
    )
    assert ARTIST.encode() in upload.read_bytes() and SERIAL.encode() in upload.read_bytes()

    inspected = inspect_upload(upload, None)

    assert inspected.category is Category.PHOTO and inspected.media_type == "image/jpeg"
    # Orientation 6 turns the 64 × 48 picture upright: shown 48 wide, 64 high.
    assert inspected.metadata == {"width": 48, "height": 64, "taken_at": "2024-05-01T10:30:00"}
    cleaned = _assert_identity_removed(inspected, upload)
    with Image.open(cleaned) as img:
        assert "comment" not in img.info and "xmp" not in img.info


def test_jpeg_without_exif_is_copied_with_identical_pixels(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _noise(40, 30).save(upload, "JPEG", quality=80, progressive=True)
    inspected = inspect_upload(upload, Category.SCAN)
    assert inspected.category is Category.SCAN
    assert inspected.metadata == {"width": 40, "height": 30, "page_count": 1}
    assert inspected.cleaned is not None
    assert np.array_equal(_pixels(inspected.cleaned), _pixels(upload))


def test_jpeg_trailer_after_the_end_marker_is_dropped(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _noise(32, 32).save(upload, "JPEG")
    with upload.open("ab") as fh:
        fh.write(b"TRAILER with the phone owner's name")
    cleaned = inspect_upload(upload, None).cleaned
    assert cleaned is not None and b"TRAILER" not in cleaned.read_bytes()
    assert cleaned.read_bytes().endswith(b"\xff\xd9")


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, asserting each CRC."""
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload), f"bad CRC on {kind!r}"
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


def test_png_photo_loses_text_and_gps_chunks_with_correct_crcs(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", ARTIST)
    text.add_text("Comment", f"owner {OWNER}", zip=True)
    text.add_itxt("Description", f"serial {SERIAL}")
    _noise(30, 20, seed=2).save(upload, "PNG", pnginfo=text, exif=_identity_exif().tobytes())
    kinds_before = [kind for kind, _ in _png_chunks(upload.read_bytes())]
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf"} <= set(kinds_before)

    inspected = inspect_upload(upload, None)

    assert inspected.category is Category.PHOTO and inspected.media_type == "image/png"
    assert inspected.metadata["taken_at"] == "2024-05-01T10:30:00"
    cleaned = _assert_identity_removed(inspected, upload)
    kinds_after = [kind for kind, _ in _png_chunks(cleaned.read_bytes())]
    assert not {b"tEXt", b"zTXt", b"iTXt", b"tIME"} & set(kinds_after)
    assert kinds_after[0] == b"IHDR" and kinds_after[-1] == b"IEND" and b"eXIf" in kinds_after


def test_webp_photo_loses_xmp_and_gps_and_fixes_the_flags(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    xmp = f"<x:xmpmeta><dc:creator>{ARTIST}</dc:creator></x:xmpmeta>".encode()
    _noise(24, 16, seed=3).save(
        upload, "WEBP", lossless=True, exif=_identity_exif().tobytes(), xmp=xmp
    )
    assert b"XMP " in upload.read_bytes()

    inspected = inspect_upload(upload, Category.PHOTO)

    assert inspected.media_type == "image/webp"
    cleaned = _assert_identity_removed(inspected, upload)
    data = cleaned.read_bytes()
    assert b"XMP " not in data and b"EXIF" in data
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    flags = data[data.index(b"VP8X") + 8]
    assert flags & 0x04 == 0 and flags & 0x08 == 0x08


def test_tiff_scan_pages_are_resaved_losslessly_without_tags(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    pages = [_noise(50, 70, seed=4), _noise(50, 70, seed=5).convert("L")]
    pages[0].save(
        upload,
        "TIFF",
        save_all=True,
        append_images=pages[1:],
        compression="tiff_lzw",
        tiffinfo={315: ARTIST, 270: f"scan of {OWNER}"},  # Artist, ImageDescription
    )
    assert ARTIST.encode() in upload.read_bytes()

    inspected = inspect_upload(upload, None)

    assert inspected.category is Category.SCAN and inspected.media_type == "image/tiff"
    assert inspected.metadata == {"width": 50, "height": 70, "page_count": 2}
    assert inspected.cleaned is not None
    raw = inspected.cleaned.read_bytes()
    assert ARTIST.encode() not in raw and OWNER.encode() not in raw
    with Image.open(upload) as before, Image.open(inspected.cleaned) as after:
        assert getattr(after, "n_frames", 1) == 2
        for index in range(2):
            before.seek(index)
            after.seek(index)
            assert np.array_equal(np.asarray(before), np.asarray(after))


def test_tiff_declared_as_photo_is_refused(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _noise(10, 10).save(upload, "TIFF")
    error = _refused(upload, Category.PHOTO)
    assert error.status == 422
    assert "declared clinical_photo" in error.reason and "TIFF" in error.reason


def _huge_png(path: Path, width: int, height: int) -> None:
    """A valid PNG header for a huge greyscale image with a few kilobytes of data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_png_is_refused_from_its_header_in_bounded_memory(
    tmp_path: Path,
) -> None:
    upload = tmp_path / "upload"
    _huge_png(upload, 30000, 30000)
    assert upload.stat().st_size < 10_000
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        error = _refused(upload, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kib) * 1024
    assert error.status == 422
    assert "30000 × 30000 pixels" in error.reason and "limit" in error.reason
    assert peak < 20_000_000 and rss_growth < 200_000_000
    assert not list(tmp_path.glob(CLEANED_PREFIX + "*"))


def test_our_pixel_limit_applies_below_pillows_own(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _noise(200, 100).save(upload, "JPEG")
    error = _refused(upload, None, max_image_pixels=10_000)
    assert error.status == 422 and "200 × 100 pixels" in error.reason


def test_truncated_jpeg_is_refused(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _noise(256, 256).save(upload, "JPEG", quality=95)
    data = upload.read_bytes()
    upload.write_bytes(data[: len(data) // 2])
    error = _refused(upload, None)
    assert error.status == 422 and "truncated" in error.reason
    assert not list(tmp_path.glob(CLEANED_PREFIX + "*"))


def _pdf(path: Path, pages: int) -> None:
    kids = " ".join(f"{3 + n} 0 R" for n in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
    ] + [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"] * pages
    body = b"%PDF-1.4\n" + b"".join(
        f"{n + 1} 0 obj\n".encode() + obj + b"\nendobj\n" for n, obj in enumerate(objects)
    )
    path.write_bytes(body + b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")


def test_pdf_is_a_scan_with_its_page_count(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _pdf(upload, 3)
    inspected = inspect_upload(upload, None)
    assert inspected.category is Category.SCAN
    assert inspected.media_type == "application/pdf" and inspected.cleaned is None
    assert inspected.metadata == {"width": None, "height": None, "page_count": 3}


def test_pdf_pages_inside_compressed_object_streams_are_counted(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    packed = zlib.compress(b"3 0 4 40 <</Type/Page/Parent 2 0 R>> <</Type/Page/Parent 2 0 R>>")
    upload.write_bytes(
        b"%PDF-1.5\n5 0 obj\n<< /Type /ObjStm /N 2 /First 8 /Filter /FlateDecode /Length "
        + str(len(packed)).encode()
        + b" >>\nstream\n"
        + packed
        + b"\nendstream\nendobj\n%%EOF\n"
    )
    assert inspect_upload(upload, Category.SCAN).metadata["page_count"] == 2


def test_pdf_declared_as_photo_or_truncated_is_refused(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _pdf(upload, 1)
    error = _refused(upload, Category.PHOTO)
    assert error.status == 422
    assert "declared clinical_photo" in error.reason and "PDF document" in error.reason
    upload.write_bytes(upload.read_bytes()[:-20])
    assert "truncated" in _refused(upload, None).reason


# --- DICOM ---------------------------------------------------------------------------------


def test_ct_slice_gives_uids_modality_and_slice_position() -> None:
    reference = pydicom.dcmread(CT_SMALL)
    inspected = inspect_upload(CT_SMALL, Category.CT)
    assert inspected.category is Category.CT
    assert inspected.media_type == "application/dicom" and inspected.cleaned is None
    assert inspected.metadata == {
        "study_uid": reference.StudyInstanceUID,
        "series_uid": reference.SeriesInstanceUID,
        "instance_uid": reference.SOPInstanceUID,
        "modality": "CT",
        "patient_id": reference.PatientID,
        "slice_position": pytest.approx(float(reference.ImagePositionPatient[2])),
        "rows": 128,
        "columns": 128,
        "number_of_frames": 1,
    }
    assert inspect_upload(CT_SMALL, None).category is Category.CT


def test_png_declared_as_ct_is_refused_naming_both(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _noise(8, 8).save(upload, "PNG")
    error = _refused(upload, Category.CT)
    assert error.status == 422
    assert error.reason.startswith("declared ct_image, but the content is a PNG image, not DICOM")


def test_random_bytes_declared_as_ct_are_refused(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(np.random.default_rng(7).bytes(4096))
    error = _refused(upload, Category.CT)
    assert error.status == 422
    assert "declared ct_image, but the content is not DICOM (no DICM preamble)" in error.reason


def test_dicom_declared_as_photo_is_refused(tmp_path: Path) -> None:
    error = _refused(CT_SMALL, Category.PHOTO)
    assert error.status == 422
    assert "declared clinical_photo" in error.reason and "DICOM" in error.reason


def test_dicom_without_its_preamble_is_not_accepted(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(CT_SMALL.read_bytes()[132:])
    error = _refused(upload, Category.CT)
    assert error.status == 422 and "not DICOM" in error.reason
    assert _refused(upload, None).status == 415


def test_dicom_without_an_instance_uid_is_refused(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    dataset = pydicom.dcmread(CT_SMALL)
    del dataset.SOPInstanceUID
    dataset.save_as(upload)
    error = _refused(upload, Category.CT)
    assert error.status == 422 and "SOPInstanceUID" in error.reason


def test_dicom_larger_than_the_pixel_limit_is_refused() -> None:
    error = _refused(CT_SMALL, Category.CT, max_dicom_pixels=10_000)
    assert error.status == 422 and "128 × 128" in error.reason


# --- voice notes ---------------------------------------------------------------------------


def _wav(path: Path, seconds: float = 1.5, rate: int = 16_000) -> None:
    samples = (np.sin(np.arange(int(seconds * rate)) / 5) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def test_wav_voice_note_is_measured_from_its_header(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _wav(upload)
    inspected = inspect_upload(upload, Category.VOICE)
    assert inspected.category is Category.VOICE and inspected.media_type == "audio/wav"
    assert inspected.cleaned is None
    assert inspected.metadata["duration_s"] == pytest.approx(1.5, abs=0.01)
    assert inspected.metadata["sample_rate"] == 16_000
    assert inspected.metadata["codec"] == "pcm_s16le" and inspected.metadata["channels"] == 1


def test_garbage_wav_files_are_refused(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    noise = np.random.default_rng(11).bytes(20_000)
    upload.write_bytes(noise)
    assert _refused(upload, Category.VOICE).status == 422
    upload.write_bytes(b"RIFF" + struct.pack("<I", len(noise) + 4) + b"WAVE" + noise)
    error = _refused(upload, None)
    assert error.status == 422 and error.reason.startswith("not a valid WAV file")


@pytest.mark.parametrize(
    ("offset", "value", "complaint"),
    [(24, 0, "sample rate of 0 Hz"), (40, 10_000_000, "more than the")],
    ids=["sample-rate-zero", "data-beyond-the-file"],
)
def test_wav_with_inconsistent_header_is_refused(
    tmp_path: Path, offset: int, value: int, complaint: str
) -> None:
    upload = tmp_path / "upload"
    _wav(upload)
    data = bytearray(upload.read_bytes())
    assert data[36:40] == b"data"  # wave writes fmt at 12, data at 36
    data[offset : offset + 4] = struct.pack("<I", value)
    upload.write_bytes(bytes(data))
    error = _refused(upload, Category.VOICE)
    assert error.status == 422 and complaint in error.reason


def test_wav_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _wav(upload)
    error = _refused(upload, None, max_audio_seconds=1.0)
    assert error.status == 422 and "longer than the limit" in error.reason


def _encode_tone(
    path: Path,
    container_format: str,
    codec: str = "libopus",
    options: dict[str, str] | None = None,
) -> None:
    """One second of a tone at 48 kHz mono (PyAV converts and re-frames for the encoder)."""
    rate = 48_000
    tone = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 10_000).astype(np.int16)
    with av.open(str(path), "w", format=container_format, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, AudioStream)
        for start in range(0, rate, 960):
            frame = av.AudioFrame.from_ndarray(
                tone[start : start + 960].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            frame.time_base = fractions.Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.mark.parametrize(
    ("container_format", "options", "media_type"),
    [
        ("ogg", None, "audio/ogg"),
        ("webm", None, "audio/webm"),
        ("webm", {"live": "1"}, "audio/webm"),
    ],
    ids=["ogg", "webm", "webm-without-duration-like-mediarecorder"],
)
def test_opus_voice_note_in_a_container(
    tmp_path: Path, container_format: str, options: dict[str, str] | None, media_type: str
) -> None:
    upload = tmp_path / "upload"
    _encode_tone(upload, container_format, options=options)
    inspected = inspect_upload(upload, None)
    assert inspected.category is Category.VOICE and inspected.media_type == media_type
    assert inspected.metadata["codec"] == "opus"
    assert inspected.metadata["duration_s"] == pytest.approx(1.0, abs=0.05)
    assert inspected.metadata["sample_rate"] == 48_000 and inspected.metadata["channels"] == 1


@pytest.mark.parametrize(
    ("container_format", "codec", "media_type", "expected_codec"),
    [
        ("mp3", "libmp3lame", "audio/mpeg", "mp3"),
        ("flac", "flac", "audio/flac", "flac"),
        ("ipod", "aac", "audio/mp4", "aac"),  # an .m4a, as Safari's MediaRecorder makes
    ],
)
def test_other_recorders_formats_are_voice_notes(
    tmp_path: Path, container_format: str, codec: str, media_type: str, expected_codec: str
) -> None:
    upload = tmp_path / "upload"
    _encode_tone(upload, container_format, codec)
    inspected = inspect_upload(upload, Category.VOICE)
    assert inspected.media_type == media_type
    assert inspected.metadata["codec"] == expected_codec
    assert inspected.metadata["duration_s"] == pytest.approx(1.0, abs=0.05)
    assert inspected.metadata["sample_rate"] == 48_000 and inspected.metadata["channels"] == 1


def test_wav_in_an_unsupported_encoding_is_an_unsupported_type(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    _wav(upload)
    data = bytearray(upload.read_bytes())
    data[20:22] = struct.pack("<H", 0x0011)  # IMA ADPCM
    upload.write_bytes(bytes(data))
    error = _refused(upload, None)
    assert error.status == 415 and "0x0011" in error.reason


def test_mp4_with_a_video_stream_is_not_a_voice_note(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    with av.open(str(upload), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    error = _refused(upload, Category.VOICE)
    assert error.status == 422 and "video" in error.reason


# --- what is not a record at all -------------------------------------------------------------


def test_empty_file_is_refused(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.touch()
    error = _refused(upload, None)
    assert error.status == 422 and "empty" in error.reason


def test_unknown_content_is_an_unsupported_type(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(b"\x00\x13\x37" + np.random.default_rng(3).bytes(1000))
    error = _refused(upload, None)
    assert error.status == 415 and error.reason.startswith("unsupported file type")
    assert "00 13 37" in error.reason


def test_heic_photo_is_an_unsupported_type_with_a_hint(tmp_path: Path) -> None:
    upload = tmp_path / "upload"
    upload.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100)
    error = _refused(upload, Category.PHOTO)
    assert error.status == 415 and "HEIF" in error.reason


def test_the_upload_is_untouched_and_the_cleaned_copy_is_itself_acceptable(
    tmp_path: Path,
) -> None:
    upload = tmp_path / "upload"
    _noise(16, 16).save(upload, "JPEG", exif=_identity_exif().tobytes())
    before = upload.read_bytes()
    inspected = inspect_upload(upload, None)
    assert upload.read_bytes() == before and inspected.cleaned is not None
    again = inspect_upload(inspected.cleaned, None)
    assert again.category is Category.PHOTO and again.metadata == inspected.metadata
    assert again.cleaned is not None
    assert again.cleaned.read_bytes() == inspected.cleaned.read_bytes()  # nothing left to strip
