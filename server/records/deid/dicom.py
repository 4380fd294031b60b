"""De-identifying one DICOM instance per the Basic Profile with modified dates."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID

from server.records.deid.dicom_profile import ANNEX_E_ACTIONS
from server.records.deid.pseudonyms import Pseudonymizer

_LOGGER = logging.getLogger(__name__)


# Dates that describe the patient rather than the study timeline: never shifted.
_UNSHIFTED: Final = frozenset({"PatientBirthDate", "PatientBirthTime", "LastMenstrualDate"})
# UIDs outside the table that name a standard thing (class, syntax, coding scheme).
_STANDARD_UID_SUFFIXES: Final = (
    "ClassUID",
    "TransferSyntaxUID",
    "TransferSyntaxUIDInFile",
    "CodingSchemeUID",
    "ContextUID",
    "MappingResourceUID",
)
_DATE_VRS: Final = frozenset({"DA", "DT"})
_TIME_VRS: Final = frozenset({"TM"})
_TEXT_DUMMY: Final = "ANONYMIZED"
_DUMMIES: Final[Mapping[str, Any]] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
}
_NUMERIC_VRS: Final = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"})
_BINARY_VRS: Final = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})

_PROFILE_CODE: Final = ("113100", "Basic Application Confidentiality Profile")
_DATES_OPTION_CODE: Final = ("113107", "Retain Longitudinal Temporal Information Modified Dates")
DEIDENTIFICATION_METHOD: Final = "DICOM PS3.15 E.1 Basic Profile; Clinicam 113107 date shift"


def _tags_by_keyword(actions: Mapping[str, str]) -> dict[int, tuple[str, str]]:
    """Tag → (keyword, code); fails at import on a keyword pydicom does not know."""
    table: dict[int, tuple[str, str]] = {}
    for keyword, code in actions.items():
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise RuntimeError(f"unknown DICOM keyword in the Annex E table: {keyword}")
        table[tag] = (keyword, code)
    return table


_ACTIONS_BY_TAG: Final = _tags_by_keyword(ANNEX_E_ACTIONS)


@dataclass(frozen=True)
class _Context:
    pseudo: Pseudonymizer
    patient_pseudonym: str


def _resolve(keyword: str, code: str, vr: str) -> str:
    """The one concrete action (C, D, Z, X, K, U) for a table code and a VR."""
    choices = code.split("/")
    if vr == "SQ":
        if "U*" in choices or "K" in choices:
            return "K"
        for choice in ("Z", "X", "D"):
            if choice in choices:
                return choice
        return "X"
    if keyword in ("PatientName", "PatientID"):
        return "P"
    if (vr in _DATE_VRS or vr in _TIME_VRS) and keyword not in _UNSHIFTED:
        return "C"
    if "U" in choices:
        return "U"
    for choice in ("D", "Z", "X"):
        if choice in choices:
            return choice
    return "K"


def _default_action(elem: DataElement) -> str:
    """The safety net for public attributes the table does not list."""
    if elem.VR == "PN":
        return "Z"
    if elem.VR in _DATE_VRS:
        return "C"
    if elem.VR == "UI" and not _is_standard_uid(elem):
        return "U"
    return "K"


def _is_standard_uid(elem: DataElement) -> bool:
    keyword = elem.keyword or ""
    if keyword.endswith(_STANDARD_UID_SUFFIXES):
        return True
    return all(UID(str(v)).name != str(v) for v in _values(elem.value) if str(v))


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _map_values(elem: DataElement, change: Callable[[str], str]) -> None:
    values = [change(str(v)) if str(v) else "" for v in _values(elem.value)]
    if not values:
        return
    elem.value = values if len(values) > 1 else values[0]


def _shift_da(pseudo: Pseudonymizer, value: str) -> str:
    """YYYYMMDD shifted; anything unparseable (partial dates, ranges) is emptied."""
    try:
        return pseudo.shift_date(datetime.strptime(value.strip(), "%Y%m%d").date()).strftime(
            "%Y%m%d"
        )
    except (ValueError, OverflowError):
        return ""


def _shift_dt(pseudo: Pseudonymizer, value: str) -> str:
    """YYYYMMDD[HHMMSS[.F]][&ZZXX]: the date part shifted, the rest kept as it was."""
    stripped = value.strip()
    if len(stripped) < 8:
        return ""
    shifted = _shift_da(pseudo, stripped[:8])
    return shifted + stripped[8:] if shifted else ""


def _dummy_value(vr: str, ctx: _Context) -> Any:
    if vr in _DUMMIES:
        return _DUMMIES[vr]
    if vr == "UI":
        return ctx.pseudo.uid("dummy")
    if vr in _NUMERIC_VRS:
        return 0
    if vr in _BINARY_VRS:
        return b""
    return _TEXT_DUMMY


def _apply(ds: Dataset, elem: DataElement, action: str, ctx: _Context) -> None:
    if action == "X":
        del ds[elem.tag]
    elif action == "Z":
        elem.value = Sequence() if elem.VR == "SQ" else elem.empty_value
    elif action == "D":
        elem.value = Sequence([Dataset()]) if elem.VR == "SQ" else _dummy_value(elem.VR, ctx)
    elif action == "P":
        elem.value = ctx.patient_pseudonym
    elif action == "U":
        _map_values(elem, ctx.pseudo.uid)
    elif action == "C" and elem.VR == "DA":
        _map_values(elem, lambda v: _shift_da(ctx.pseudo, v))
    elif action == "C" and elem.VR == "DT":
        _map_values(elem, lambda v: _shift_dt(ctx.pseudo, v))


def _is_curve_or_overlay(group: int) -> bool:
    return (group & 0xFF00) in (0x5000, 0x6000)


def _clean_dataset(ds: Dataset, ctx: _Context) -> None:
    """Apply the profile to every element of ``ds``, recursing into kept sequences."""
    for elem in list(ds):
        tag = elem.tag
        if tag.is_private or _is_curve_or_overlay(tag.group):
            del ds[tag]
            continue
        entry = _ACTIONS_BY_TAG.get(int(tag))
        action = _resolve(entry[0], entry[1], elem.VR) if entry else _default_action(elem)
        _apply(ds, elem, action, ctx)
        if action == "K" and elem.VR == "SQ":
            for item in elem.value:
                _clean_dataset(item, ctx)


def _code_item(code: tuple[str, str]) -> Dataset:
    item = Dataset()
    item.CodeValue = code[0]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = code[1]
    return item


def _mark_deidentified(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    ds.DeidentificationMethodCodeSequence = Sequence(
        [_code_item(_PROFILE_CODE), _code_item(_DATES_OPTION_CODE)]
    )
    ds.LongitudinalTemporalInformationModified = "MODIFIED"


def _read_dicom(data: bytes) -> FileDataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError as exc:
        raise ValueError(f"not a DICOM Part 10 file (no DICM preamble): {exc}") from exc
    except (EOFError, OSError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"not a readable DICOM file: {exc}") from exc


def _check_pseudonym(patient_pseudonym: str) -> None:
    if not patient_pseudonym or len(patient_pseudonym) > 64:
        raise ValueError("patient_pseudonym must be 1 to 64 characters (DICOM LO)")
    if any(c in patient_pseudonym for c in "\\^=") or not patient_pseudonym.isprintable():
        raise ValueError("patient_pseudonym must be printable, without \\ ^ or =")


def deidentify_dicom(data: bytes, pseudo: Pseudonymizer, *, patient_pseudonym: str) -> bytes:
    """A de-identified copy of one DICOM Part 10 file (see the module docstring).

    The transfer syntax and the pixel data are kept byte for byte.
    """
    _check_pseudonym(patient_pseudonym)
    ds = _read_dicom(data)
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        raise ValueError("burned-in annotation: pixel data may show identity, refusing to export")
    ctx = _Context(pseudo, patient_pseudonym)
    _clean_dataset(ds.file_meta, ctx)
    _clean_dataset(ds, ctx)
    _mark_deidentified(ds)
    if "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.preamble = b"\x00" * 128
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    _LOGGER.info("de-identified a DICOM instance (%s bytes out)", out.tell())
    return out.getvalue()
