"""Thumbnails and DICOM rendering, on real images and pydicom's shipped DICOM files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from PIL import ExifTags, Image

from server.records.render import dicom_window_defaults, render_dicom, thumbnail


def _testdata(name: str) -> Path:
    """A DICOM file shipped inside pydicom (never downloaded)."""
    return Path(str(pydicom.data.get_testdata_file(name, download=False)))


CT_SMALL = _testdata("CT_small.dcm")  # 128 × 128, no window in the header
MR_SMALL = _testdata("MR_small.dcm")  # 64 × 64, window 600/1600
RGB_SMALL = _testdata("SC_rgb_small_odd.dcm")  # 3 × 3 RGB
RT_DOSE = _testdata("rtdose.dcm")  # 15 frames


def _decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _hounsfield(path: Path) -> np.ndarray:
    dataset = pydicom.dcmread(path)
    slope, intercept = float(dataset.RescaleSlope), float(dataset.RescaleIntercept)
    return dataset.pixel_array.astype(np.float64) * slope + intercept


# --- thumbnails ----------------------------------------------------------------------------


def test_thumbnail_applies_the_exif_orientation(tmp_path: Path) -> None:
    """Stored 200 × 100, left half red; Orientation 6 shows it 100 × 200, red on top."""
    source = tmp_path / "photo"
    stored = Image.new("RGB", (200, 100), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    stored.save(source, "JPEG", quality=95, exif=exif.tobytes())

    thumb = _decoded(thumbnail(source))

    assert thumb.format == "JPEG" and thumb.size == (100, 200)
    top, bottom = thumb.getpixel((50, 20)), thumb.getpixel((50, 180))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and top[2] < 60, top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_thumbnail_fits_in_max_side(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "picture"
    Image.new("RGB", (1600, 900), (10, 120, 30)).save(source, kind)
    thumb = _decoded(thumbnail(source))
    assert max(thumb.size) == 256 and thumb.size == (256, 144)
    small = _decoded(thumbnail(source, max_side=64))
    assert small.size == (64, 36)


def test_thumbnail_of_a_big_jpeg_is_decoded_at_reduced_scale(tmp_path: Path) -> None:
    source = tmp_path / "photo"
    Image.new("RGB", (4000, 3000), (200, 10, 10)).save(source, "JPEG")
    with Image.open(source) as img:
        img.draft(None, (256, 256))
        assert img.size == (500, 375)  # what draft makes of it: 1/8 scale
    assert _decoded(thumbnail(source)).size == (256, 192)


def test_thumbnail_flattens_transparency_on_white_and_carries_no_metadata(
    tmp_path: Path,
) -> None:
    source = tmp_path / "picture"
    Image.new("RGBA", (40, 40), (0, 0, 0, 0)).save(source, "PNG")
    thumb = _decoded(thumbnail(source))
    assert thumb.mode == "RGB" and thumb.getpixel((20, 20)) == (255, 255, 255)

    commented = tmp_path / "commented"
    Image.new("RGB", (40, 40)).save(commented, "JPEG", comment="patient Jane Roe")
    data = thumbnail(commented)
    assert b"Jane Roe" not in data and "comment" not in _decoded(data).info


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, on the DICOM's TIFF preamble
def test_thumbnail_of_something_else_is_a_value_error(tmp_path: Path) -> None:
    source = tmp_path / "document"
    source.write_bytes(b"%PDF-1.4\n%%EOF\n")
    with pytest.raises(ValueError, match="thumbnail"):
        thumbnail(source)
    with pytest.raises(ValueError, match="thumbnail"):
        thumbnail(CT_SMALL)


# --- DICOM ---------------------------------------------------------------------------------


def test_ct_slice_renders_as_a_grey_png_of_its_size() -> None:
    picture = _decoded(render_dicom(CT_SMALL))
    assert picture.format == "PNG" and picture.mode == "L" and picture.size == (128, 128)
    pixels = np.asarray(picture)
    assert pixels.min() == 0 and pixels.max() == 255  # default: the full range


def test_max_side_scales_the_slice_down() -> None:
    assert _decoded(render_dicom(CT_SMALL, max_side=64)).size == (64, 64)


def test_window_settings_change_the_picture_as_dicom_defines() -> None:
    soft_tissue = np.asarray(_decoded(render_dicom(CT_SMALL, center=40, width=400)))
    bone = np.asarray(_decoded(render_dicom(CT_SMALL, center=500, width=2000)))
    assert not np.array_equal(soft_tissue, bone)

    hounsfield = _hounsfield(CT_SMALL)
    assert np.all(soft_tissue[hounsfield <= 40 - 0.5 - 399 / 2] == 0)
    assert np.all(soft_tissue[hounsfield > 40 - 0.5 + 399 / 2] == 255)
    inside = (hounsfield > -150) & (hounsfield < 230)
    expected = np.rint(((hounsfield[inside] - 39.5) / 399 + 0.5) * 255)
    assert np.abs(soft_tissue[inside].astype(float) - expected).max() <= 1


def test_window_defaults_come_from_the_header_or_the_pixel_range() -> None:
    assert dicom_window_defaults(MR_SMALL) == (600.0, 1600.0)
    hounsfield = _hounsfield(CT_SMALL)
    low, high = hounsfield.min(), hounsfield.max()
    assert dicom_window_defaults(CT_SMALL) == pytest.approx(((low + high) / 2, high - low))


def test_multi_valued_window_uses_the_first_value(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(CT_SMALL)
    dataset.WindowCenter = [40, 300]
    dataset.WindowWidth = [400, 1500]
    path = tmp_path / "windowed.dcm"
    dataset.save_as(path)
    assert dicom_window_defaults(path) == (40.0, 400.0)
    assert np.array_equal(
        np.asarray(_decoded(render_dicom(path))),
        np.asarray(_decoded(render_dicom(CT_SMALL, center=40, width=400))),
    )


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(CT_SMALL)
    dataset.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    dataset.save_as(path)
    normal = np.asarray(_decoded(render_dicom(CT_SMALL, center=100, width=800)), dtype=int)
    inverted = np.asarray(_decoded(render_dicom(path, center=100, width=800)), dtype=int)
    assert np.all(normal + inverted == 255)


def test_rgb_passes_through() -> None:
    picture = _decoded(render_dicom(RGB_SMALL, center=0, width=1))
    assert picture.mode == "RGB"
    assert np.array_equal(np.asarray(picture), pydicom.dcmread(RGB_SMALL).pixel_array)


def test_one_frame_of_a_multi_frame_file() -> None:
    frames = pydicom.dcmread(RT_DOSE).pixel_array
    last = np.asarray(_decoded(render_dicom(RT_DOSE, frame=14)))
    assert last.shape == frames.shape[1:]
    with pytest.raises(ValueError, match="frame 15 does not exist"):
        render_dicom(RT_DOSE, frame=15)


def test_invalid_window_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="width"):
        render_dicom(CT_SMALL, center=40, width=0)


def test_non_dicom_input_is_a_value_error(tmp_path: Path) -> None:
    picture = tmp_path / "picture.dcm"
    Image.new("L", (8, 8)).save(picture, "PNG")
    stripped = tmp_path / "stripped.dcm"
    stripped.write_bytes(CT_SMALL.read_bytes()[132:])
    for path in (picture, stripped):
        with pytest.raises(ValueError, match="DICOM"):
            render_dicom(path)
        with pytest.raises(ValueError, match="DICOM"):
            dicom_window_defaults(path)
