"""De-identified export: DICOM (PS3.15 Annex E), photographs, EMR entries, leak scan.

Every test first checks that the identifiers are present in the input (so a scan that
finds nothing proves a removal, not a broken scanner), then that none survive.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from datetime import date

import numpy as np
import pydicom
import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileDataset
from pydicom.uid import UID, CTImageStorage, generate_uid

from server.records.deid import (
    DATE_REDACTED,
    REDACTED,
    Pseudonymizer,
    deidentify_dicom,
    deidentify_emr,
    scan_for_identifiers,
    strip_image_metadata,
)

_UID = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*")
_SECRET_A = b"A" * 32
_SECRET_B = b"B" * 32


# --------------------------------------------------------------------------------------
# Pseudonymizer
# --------------------------------------------------------------------------------------


def test_pseudonyms_are_consistent_per_secret_and_unlinkable_across_exports() -> None:
    a, a_again, b = Pseudonymizer(_SECRET_A), Pseudonymizer(_SECRET_A), Pseudonymizer()
    pseudonym = a.pseudonym("P", "MRN-778812")
    assert re.fullmatch(r"P-[A-Z2-7]{12}", pseudonym)
    assert a_again.pseudonym("P", "MRN-778812") == pseudonym
    assert b.pseudonym("P", "MRN-778812") != pseudonym
    assert a.pseudonym("P", "MRN-778813") != pseudonym
    assert a.pseudonym("S", "MRN-778812").startswith("S-")
    assert a.uid("1.2.3") == a_again.uid("1.2.3") != b.uid("1.2.3")
    with pytest.raises(ValueError):
        a.pseudonym("bad kind!", "x")
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")


def test_date_shift_is_a_fixed_whole_number_of_days_in_range() -> None:
    shifts = {Pseudonymizer().date_shift_days for _ in range(50)}
    assert all(-365 <= s <= -30 for s in shifts)
    assert len(shifts) > 1  # random per instance
    p = Pseudonymizer(_SECRET_A)
    day = date(2025, 3, 2)
    assert (p.shift_date(day) - day).days == p.date_shift_days
    assert p.shift_date(day) == Pseudonymizer(_SECRET_A).shift_date(day)


# --------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------

_STUDY_DATE = "20250302"


def _identified_slice(sop_uid: str | None = None, references: str | None = None) -> FileDataset:
    """pydicom's CT slice dressed with a patient's identity in the usual places."""
    path = get_testdata_file("CT_small.dcm")
    assert isinstance(path, str)
    ds = pydicom.dcmread(path)
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-778812"
    ds.PatientBirthDate = "19610412"
    ds.InstitutionName = "St Example Hospital"
    ds.InstitutionAddress = "1 Example Road, Exampleton"
    ds.ReferringPhysicianName = "Smith^John"
    ds.OtherPatientIDs = "OLD-4471"
    ds.AccessionNumber = "ACC-55512"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = _STUDY_DATE
    ds.AcquisitionDateTime = _STUDY_DATE + "093000.000000+0100"
    block = ds.private_block(0x0013, "CLINICAM TEST", create=True)
    block.add_new(0x01, "LO", "Jane Doe private note")
    ds.add_new(0x60000022, "LO", "Jane Doe overlay note")
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage
    reference.ReferencedSOPInstanceUID = references or generate_uid()
    reference.EvaluatorName = "Smith^John"  # a PN the table does not list
    ds.ReferencedImageSequence = [reference]
    if sop_uid is not None:
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    return ds


def _to_bytes(ds: FileDataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _read(data: bytes) -> FileDataset:
    return pydicom.dcmread(io.BytesIO(data), force=False)


def _uids(ds: FileDataset) -> list[str]:
    return [
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPInstanceUID),
        str(ds.FrameOfReferenceUID),
        str(ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID),
    ]


def test_dicom_output_holds_none_of_the_identifiers() -> None:
    original = _identified_slice()
    data = _to_bytes(original)
    needles = [
        "Jane Doe",
        "Doe^Jane",
        "MRN-778812",
        "19610412",
        _STUDY_DATE,
        "St Example Hospital",
        "Exampleton",
        "Smith",
        "OLD-4471",
        "ACC-55512",
        "CLINICAM TEST",
        *_uids(original),
    ]
    assert scan_for_identifiers(data, needles) == needles  # all there before
    pseudo = Pseudonymizer(_SECRET_A)
    pseudonym = pseudo.pseudonym("P", "MRN-778812")

    out = deidentify_dicom(data, pseudo, patient_pseudonym=pseudonym)

    assert scan_for_identifiers(out, needles) == []
    ds = _read(out)
    assert ds.PatientName == pseudonym and ds.PatientID == pseudonym
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethod.startswith("DICOM PS3.15 E.1 Basic Profile; Clinicam")
    codes = {(i.CodeValue, i.CodingSchemeDesignator) for i in ds.DeidentificationMethodCodeSequence}
    assert codes == {("113100", "DCM"), ("113107", "DCM")}
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert ds.PatientBirthDate == ""
    assert ds.AccessionNumber == ""
    assert "OtherPatientIDs" not in ds and "InstitutionAddress" not in ds
    assert ds.ReferencedImageSequence[0].EvaluatorName == ""


def test_dicom_dates_move_by_the_export_offset_and_times_stay() -> None:
    pseudo = Pseudonymizer(_SECRET_A)
    out = deidentify_dicom(_to_bytes(_identified_slice()), pseudo, patient_pseudonym="P-X")
    ds = _read(out)
    shifted = pseudo.shift_date(date(2025, 3, 2)).strftime("%Y%m%d")
    assert ds.StudyDate == ds.SeriesDate == ds.AcquisitionDate == ds.ContentDate == shifted
    assert ds.AcquisitionDateTime == shifted + "093000.000000+0100"
    assert ds.ContentTime == "113008"


def test_dicom_pixels_and_transfer_syntax_are_unchanged_and_extras_removed() -> None:
    original = _identified_slice()
    data = _to_bytes(original)
    ds = _read(deidentify_dicom(data, Pseudonymizer(), patient_pseudonym="P-X"))
    np.testing.assert_array_equal(ds.pixel_array, _read(data).pixel_array)
    assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert ds.preamble == b"\x00" * 128  # CT_small's preamble is a TIFF header
    elements = list(ds.iterall())
    assert not [e for e in elements if e.tag.is_private]
    assert not [e for e in elements if (e.tag.group & 0xFF00) in (0x5000, 0x6000)]
    assert "SourceApplicationEntityTitle" not in ds.file_meta


def _valid_uid(uid: str) -> bool:
    return len(uid) <= 64 and uid.startswith("2.25.") and _UID.fullmatch(uid) is not None


def test_dicom_uids_are_replaced_consistently_within_one_export() -> None:
    first = _identified_slice()
    second = _identified_slice(sop_uid=generate_uid(), references=str(first.SOPInstanceUID))
    pseudo = Pseudonymizer(_SECRET_A)
    a = _read(deidentify_dicom(_to_bytes(first), pseudo, patient_pseudonym="P-X"))
    b = _read(deidentify_dicom(_to_bytes(second), pseudo, patient_pseudonym="P-X"))

    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert a.SeriesInstanceUID == b.SeriesInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert a.SOPClassUID == first.SOPClassUID  # a class UID names a standard, not a person
    for ds in (a, b):
        assert all(_valid_uid(uid) for uid in _uids(ds))

    other = Pseudonymizer(_SECRET_B)
    c = _read(deidentify_dicom(_to_bytes(first), other, patient_pseudonym="P-X"))
    assert c.StudyInstanceUID != a.StudyInstanceUID and c.SOPInstanceUID != a.SOPInstanceUID


def test_dicom_refuses_what_it_cannot_make_safe() -> None:
    pseudo = Pseudonymizer()
    with pytest.raises(ValueError, match="not a DICOM"):
        deidentify_dicom(b"\x89PNG\r\n\x1a\n" + b"\x00" * 300, pseudo, patient_pseudonym="P-X")
    with pytest.raises(ValueError, match="not a DICOM"):
        deidentify_dicom(b"", pseudo, patient_pseudonym="P-X")
    burned = _identified_slice()
    burned.BurnedInAnnotation = "YES"
    with pytest.raises(ValueError, match="burned-in"):
        deidentify_dicom(_to_bytes(burned), pseudo, patient_pseudonym="P-X")
    with pytest.raises(ValueError, match="patient_pseudonym"):
        deidentify_dicom(_to_bytes(_identified_slice()), pseudo, patient_pseudonym="Doe^Jane")


# --------------------------------------------------------------------------------------
# Photographs
# --------------------------------------------------------------------------------------

_RED, _BLUE = (220, 20, 20), (20, 20, 220)


def _two_colour_image(size: tuple[int, int]) -> Image.Image:
    """Left half red, right half blue."""
    image = Image.new("RGB", size, _BLUE)
    image.paste(_RED, (0, 0, size[0] // 2, size[1]))
    return image


def _close(pixel: object, colour: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=False))


def test_jpeg_loses_exif_gps_and_comments_and_gets_its_orientation_applied() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Artist] = "Jane Doe"
    exif[ExifTags.Base.Orientation] = 6  # stored sideways: rotate 90° clockwise to view
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 15.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (0.0, 7.0, 39.0)
    source = io.BytesIO()
    _two_colour_image((40, 20)).save(
        source, "JPEG", quality=95, exif=exif, comment=b"Clinic Mill Lane"
    )
    data = source.getvalue()
    with Image.open(io.BytesIO(data)) as before:
        assert before.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert scan_for_identifiers(data, ["Jane Doe", "Mill Lane"]) == ["Jane Doe", "Mill Lane"]

    out, media_type = strip_image_metadata(data)

    assert media_type == "image/jpeg"
    assert scan_for_identifiers(out, ["Jane Doe", "Mill Lane"]) == []
    assert b"Exif" not in out
    with Image.open(io.BytesIO(out)) as after:
        assert after.format == "JPEG"
        assert len(after.getexif()) == 0
        assert not {"exif", "comment", "icc_profile", "xmp"} & set(after.info)
        assert after.size == (20, 40)  # orientation applied
        rgb = after.convert("RGB")
        assert _close(rgb.getpixel((10, 5)), _RED)  # the left half is now on top
        assert _close(rgb.getpixel((10, 35)), _BLUE)


def test_png_loses_text_chunks_and_keeps_its_pixels_exactly() -> None:
    image = _two_colour_image((31, 17)).convert("RGBA")
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe")
    info.add_text("Comment", "MRN-778812", zip=True)
    info.add_itxt("Description", "St Example Hospital")
    exif = Image.Exif()
    exif[ExifTags.Base.Artist] = "Jane Doe"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = io.BytesIO()
    image.save(source, "PNG", pnginfo=info, exif=exif, icc_profile=icc)
    data = source.getvalue()
    needles = ["Author", "Jane Doe", "St Example Hospital"]
    assert scan_for_identifiers(data, needles) == needles
    assert b"eXIf" in data and b"iCCP" in data

    out, media_type = strip_image_metadata(data)

    assert media_type == "image/png"
    assert scan_for_identifiers(out, needles) == []
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"iCCP"):
        assert chunk not in out
    with Image.open(io.BytesIO(out)) as after:
        assert after.format == "PNG"
        assert after.text == {}  # type: ignore[attr-defined]
        assert len(after.getexif()) == 0
        assert after.size == image.size
        np.testing.assert_array_equal(np.asarray(after), np.asarray(image))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width``x``height`` but carries almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_huge_or_broken_images_are_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        strip_image_metadata(_png_header_only(10_000, 6_000))  # 60 MP, refused before decoding
    with pytest.raises(ValueError):
        strip_image_metadata(b"not an image at all")


# --------------------------------------------------------------------------------------
# EMR entries
# --------------------------------------------------------------------------------------


def _emr_entry() -> dict[str, object]:
    return {
        "diagnosis": "Type 2 diabetes mellitus",
        "note": (
            "Seen by Dr Okafor on 2025-03-02 for patient John Smith MRN 12345. "
            "Follow-up 02/04/2025, review on 2 March 2026. Mr SMITH is anxious."
        ),
        "bmi": 27.1,
        "smoker": False,
        "visits": 3,
        "date_of_visit": "2025-03-02",
        "patient_name": "John Smith",
        "DOB": "1961-04-12",
        "Phone": "+44 7700 900123",
        "homeAddress": "12 Mill Lane, Exampleton",
        "name": "John Smith",
        "vitals": [{"taken_at": "2025-03-02T09:30:00Z", "bp": "140/90", "pulse": 88}],
        "history": {
            "previous": {
                "when": "2024-11-20",
                "text": "mrn12345 reviewed in March 2024; mail john.smith@example.org",
            }
        },
        "medication": {"name": "metformin", "dose_mg": 500},
    }


def test_emr_identifiers_and_dates_are_removed_and_clinical_values_kept() -> None:
    entry = _emr_entry()
    pseudo = Pseudonymizer(_SECRET_A)
    leaks = ["John", "Smith", "12345", "1961-04-12", "7700", "Mill Lane", "example.org"]
    dates = ["2025-03-02", "02/04/2025", "2 March 2026", "2024-11-20", "March 2024"]
    assert scan_for_identifiers(json.dumps(entry).encode(), leaks + dates) == leaks + dates

    out = deidentify_emr(entry, pseudo, identifiers=["John Smith", "MRN 12345"])

    dumped = json.dumps(out)
    assert scan_for_identifiers(dumped.encode(), leaks + dates) == []
    visit = pseudo.shift_date(date(2025, 3, 2)).isoformat()
    assert out["date_of_visit"] == visit
    assert out["vitals"] == [{"taken_at": visit + "T09:30:00Z", "bp": "140/90", "pulse": 88}]
    assert out["history"]["previous"]["when"] == pseudo.shift_date(date(2024, 11, 20)).isoformat()
    assert out["diagnosis"] == "Type 2 diabetes mellitus"
    assert (out["bmi"], out["smoker"], out["visits"]) == (27.1, False, 3)
    assert out["medication"] == {"name": "metformin", "dose_mg": 500}  # nested name is clinical
    for dropped in ("patient_name", "DOB", "Phone", "homeAddress", "name"):
        assert dropped not in out
    assert out["note"] == (
        f"Seen by Dr Okafor on {visit} for patient {REDACTED} {REDACTED}. "
        f"Follow-up {DATE_REDACTED}, review on {DATE_REDACTED}. Mr {REDACTED} is anxious."
    )
    assert entry == _emr_entry()  # the input is not modified


def test_emr_date_shift_is_consistent_within_an_export_and_differs_between_exports() -> None:
    a, b = Pseudonymizer(_SECRET_A), Pseudonymizer(_SECRET_B)
    assert a.date_shift_days != b.date_shift_days
    first = deidentify_emr(_emr_entry(), a, identifiers=["John Smith"])
    again = deidentify_emr(_emr_entry(), a, identifiers=["John Smith"])
    other = deidentify_emr(_emr_entry(), b, identifiers=["John Smith"])
    assert first == again
    assert first["date_of_visit"] in first["note"]
    assert other["date_of_visit"] != first["date_of_visit"]


def test_emr_dates_in_datetime_values_and_invalid_iso_dates() -> None:
    from datetime import datetime

    pseudo = Pseudonymizer(_SECRET_A)
    when = datetime(2025, 3, 2, 9, 30)
    out = deidentify_emr({"at": when, "bad": "on 2025-02-30"}, pseudo, identifiers=[])
    assert out == {"at": pseudo.shift_date(when), "bad": f"on {DATE_REDACTED}"}


# --------------------------------------------------------------------------------------
# Leak scan
# --------------------------------------------------------------------------------------


def test_scan_finds_names_in_other_encodings_cases_and_dicom_order() -> None:
    blob = b"\x00\x01" + "DOE^JANE".encode("utf-16-le") + b"\xff" + "Müller".encode("latin-1")
    found = scan_for_identifiers(blob, ["Jane Doe", "MÜLLER", "Smith", "", "Jane Doe"])
    assert found == ["Jane Doe", "MÜLLER"]
    assert scan_for_identifiers(b"patient jane doe", ["Doe^Jane"]) == ["Doe^Jane"]
    odd = b"\x00" + "Okafor".encode("utf-16-le")  # odd alignment
    assert scan_for_identifiers(odd, ["okafor"]) == ["okafor"]
