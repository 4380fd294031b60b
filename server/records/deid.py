"""De-identified export (privacy requirement R15): DICOM, photographs and EMR entries.

A consultation record leaves Clinicam de-identified when it is shared for teaching,
research or a second opinion outside the care team. The three kinds of content hide
identity in different places, so each has its own cleaner, and all three share one
:class:`Pseudonymizer` so that the pieces of one export still fit together: the same
patient gets the same pseudonym, the same study the same replacement UID, and every
date moves by the same number of days (intervals between visits survive, calendar
dates do not). A new Pseudonymizer, with a new random secret, is made per export, so
two exports of the same patient cannot be linked through their pseudonyms.

DICOM follows the Basic Application Level Confidentiality Profile of DICOM PS3.15
Annex E (table E.1-1) with the *Retain Longitudinal Temporal Information with Modified
Dates* option (code 113107):

- Every attribute of :data:`ANNEX_E_ACTIONS` gets the profile's action. Where the
  profile leaves a choice that depends on the attribute's Type in the IOD (``X/Z``,
  ``X/D``, ``Z/D``, ``X/Z/D``), and without IOD tables here, we take the choice that is
  valid whatever the Type: a dummy value (D) if allowed, else zero length (Z), else
  removal (X). Sequences prefer Z, then X, and a D sequence becomes one empty item.
  ``U*`` sequences are kept and their contents cleaned.
- Dates (DA, DT) the profile lists are shifted by the export's whole-day offset
  instead of being removed, as option 113107 allows; times (TM) are kept, since a
  whole-day shift does not change them. Patient's Birth Date/Time and Last Menstrual
  Date are not shifted but removed or zeroed as in the basic profile: they describe
  the patient, not the study timeline.
- Beyond the table, as a safety net: any other person name (PN) is zeroed, any other
  date (DA, DT) shifted, and any other UID replaced unless it names a class, a
  transfer syntax or a coding scheme (those identify standards, not people).
- All private (odd-group) elements, curve (50xx) and overlay (60xx) groups and
  trailing padding are removed; the 128-byte preamble is zeroed (it can hold a TIFF
  header with its own metadata, as in dual-format files).
- An image whose Burned In Annotation is ``YES`` is refused: text drawn into the pixels
  would need the Clean Pixel Data option, which is not implemented.

Photographs are decoded and re-encoded from pixels only, which is the one reliable way
to drop EXIF (GPS, camera serial, owner), XMP, comments and PNG text chunks.

EMR entries are free-form JSON, so they are cleaned by key names, by the patient's own
identifiers and by date patterns. :func:`scan_for_identifiers` is the check that
proves, after the fact, that none of the identifiers survived in an exported blob.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

import pydicom
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID

_LOGGER = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Pseudonyms
# --------------------------------------------------------------------------------------

_SECRET_BYTES: Final = 32
_MIN_SECRET_BYTES: Final = 16
_PSEUDONYM_CHARS: Final = 12
_SHIFT_MIN_DAYS: Final = -365
_SHIFT_MAX_DAYS: Final = -30
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}")


class Pseudonymizer:
    """Consistent pseudonyms, UIDs and date shift within one export.

    Everything derives from one secret: ``HMAC-SHA256(secret, domain || value)``. With
    no secret given a random 32-byte one is drawn, so pseudonyms of different exports
    cannot be linked. Passing the same secret again reproduces an export exactly.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is None:
            secret = secrets.token_bytes(_SECRET_BYTES)
        elif len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"the secret must be at least {_MIN_SECRET_BYTES} bytes")
        self._secret = secret
        span = _SHIFT_MAX_DAYS - _SHIFT_MIN_DAYS + 1
        draw = int.from_bytes(self._mac("date-shift", "")[:8], "big")
        self.date_shift_days: Final[int] = _SHIFT_MIN_DAYS + draw % span

    def _mac(self, domain: str, value: str) -> bytes:
        message = domain.encode() + b"\x00" + value.encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def pseudonym(self, kind: str, value: str) -> str:
        """``KIND-`` and 12 base32 characters, e.g. ``pseudonym("P", "MRN-1")`` → ``P-K3…``."""
        if not _KIND.fullmatch(kind):
            raise ValueError(f"pseudonym kind must be 1-16 letters or digits, got {kind!r}")
        digest = self._mac("pseudonym:" + kind.upper(), value)
        return f"{kind.upper()}-{base64.b32encode(digest).decode()[:_PSEUDONYM_CHARS]}"

    def uid(self, value: str) -> str:
        """A DICOM UID under ``2.25.`` (UUID-derived root): 128 bits of the HMAC as decimal."""
        number = int.from_bytes(self._mac("uid", value.strip())[:16], "big")
        return f"2.25.{number}"

    def shift_date(self, d: date) -> date:
        """Move ``d`` by this export's fixed whole-day offset (works for datetimes too)."""
        return d + timedelta(days=self.date_shift_days)


# --------------------------------------------------------------------------------------
# DICOM: the PS3.15 Annex E table
# --------------------------------------------------------------------------------------

# Keyword → action code of PS3.15 table E.1-1 (Basic Profile column). Not every entry
# of the standard's table is here; these are the ones that appear in the modalities a
# rural clinic produces (CR/DX/CT/MR/US/SC/VL photographs, SR), and the safety net
# below covers names, dates and UIDs the table misses.
ANNEX_E_ACTIONS: Final[Mapping[str, str]] = {
    # Patient identification and demographics
    "PatientName": "Z",
    "PatientID": "Z/D",
    "IssuerOfPatientID": "X",
    "IssuerOfPatientIDQualifiersSequence": "X",
    "OtherPatientIDs": "X",
    "OtherPatientIDsSequence": "X",
    "OtherPatientNames": "X",
    "PatientBirthName": "X",
    "PatientMotherBirthName": "X",
    "PatientBirthDate": "Z",
    "PatientBirthTime": "X",
    "PatientSex": "Z",
    "PatientSexNeutered": "X/Z",
    "PatientAge": "X",
    "PatientSize": "X",
    "PatientWeight": "X",
    "PatientAddress": "X",
    "PatientTelephoneNumbers": "X",
    "PatientTelecomInformation": "X",
    "PatientReligiousPreference": "X",
    "PatientInsurancePlanCodeSequence": "X",
    "PatientPrimaryLanguageCodeSequence": "X",
    "PatientComments": "X",
    "PatientState": "X",
    "PatientTransportArrangements": "X",
    "MedicalRecordLocator": "X",
    "MedicalAlerts": "X",
    "Allergies": "X",
    "AdditionalPatientHistory": "X",
    "Occupation": "X",
    "EthnicGroup": "X",
    "MilitaryRank": "X",
    "BranchOfService": "X",
    "CountryOfResidence": "X",
    "RegionOfResidence": "X",
    "PregnancyStatus": "X",
    "SmokingStatus": "X",
    "LastMenstrualDate": "X",
    "ResponsiblePerson": "X",
    "ResponsibleOrganization": "X",
    "InsurancePlanIdentification": "X",
    "ReferencedPatientSequence": "X",
    "ReferencedPatientPhotoSequence": "X",
    "ReferencedPatientAliasSequence": "X",
    # Visit, admission, order
    "AdmissionID": "X",
    "IssuerOfAdmissionIDSequence": "X",
    "AdmittingDate": "X",
    "AdmittingTime": "X",
    "AdmittingDiagnosesDescription": "X",
    "AdmittingDiagnosesCodeSequence": "X",
    "CurrentPatientLocation": "X",
    "PatientInstitutionResidence": "X",
    "ServiceEpisodeID": "X",
    "ServiceEpisodeDescription": "X",
    "VisitComments": "X",
    "SpecialNeeds": "X",
    "RequestAttributesSequence": "X",
    "RequestedProcedureID": "X",
    "RequestedProcedureDescription": "X/Z",
    "RequestedProcedureComments": "X",
    "RequestedProcedureLocation": "X",
    "ReasonForTheRequestedProcedure": "X",
    "ReasonForStudy": "X",
    "ReasonForVisit": "X",
    "RequestingPhysician": "X",
    "RequestingService": "X",
    "RequestedContrastAgent": "X",
    "PlacerOrderNumberImagingServiceRequest": "Z",
    "FillerOrderNumberImagingServiceRequest": "Z",
    "ImagingServiceRequestComments": "X",
    "OrderEnteredBy": "X",
    "OrderEntererLocation": "X",
    "OrderCallbackPhoneNumber": "X",
    "ScheduledProcedureStepID": "X",
    "ScheduledProcedureStepDescription": "X",
    "ScheduledProcedureStepLocation": "X",
    "ScheduledProcedureStepStartDate": "X",
    "ScheduledProcedureStepStartTime": "X",
    "ScheduledProcedureStepEndDate": "X",
    "ScheduledProcedureStepEndTime": "X",
    "ScheduledPerformingPhysicianName": "X",
    "ScheduledPerformingPhysicianIdentificationSequence": "X",
    "ScheduledStationName": "X",
    "ScheduledStationAETitle": "X",
    "ScheduledStudyLocation": "X",
    "PerformedProcedureStepID": "X",
    "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepStartDate": "X",
    "PerformedProcedureStepStartTime": "X",
    "PerformedProcedureStepEndDate": "X",
    "PerformedProcedureStepEndTime": "X",
    "CommentsOnThePerformedProcedureStep": "X",
    "PerformedStationName": "X",
    "PerformedStationAETitle": "X",
    "PerformedLocation": "X",
    "ReferencedPerformedProcedureStepSequence": "X/Z/D",
    "ReferencedStudySequence": "X/Z",
    # People
    "ReferringPhysicianName": "Z",
    "ReferringPhysicianAddress": "X",
    "ReferringPhysicianTelephoneNumbers": "X",
    "ReferringPhysicianIdentificationSequence": "X",
    "ConsultingPhysicianName": "Z",
    "PerformingPhysicianName": "X",
    "PerformingPhysicianIdentificationSequence": "X",
    "PhysiciansOfRecord": "X",
    "PhysiciansOfRecordIdentificationSequence": "X",
    "NameOfPhysiciansReadingStudy": "X",
    "PhysiciansReadingStudyIdentificationSequence": "X",
    "OperatorsName": "X/Z/D",
    "OperatorIdentificationSequence": "X/D",
    "PersonName": "D",
    "PersonAddress": "X",
    "PersonTelephoneNumbers": "X",
    "PersonIdentificationCodeSequence": "D",
    "VerifyingObserverName": "D",
    "VerifyingObserverSequence": "D",
    "VerifyingOrganization": "D",
    "ContentCreatorName": "Z/D",
    "AuthorObserverSequence": "X",
    "ParticipantSequence": "X",
    "NamesOfIntendedRecipientsOfResults": "X",
    "ReviewerName": "X/Z",
    # Institution and equipment
    "InstitutionName": "X/Z/D",
    "InstitutionAddress": "X",
    "InstitutionCodeSequence": "X/Z/D",
    "InstitutionalDepartmentName": "X",
    "StationName": "X/Z/D",
    "StationAETitle": "X",
    "RetrieveAETitle": "X",
    "DeviceSerialNumber": "X/Z/D",
    "DeviceUID": "U",
    "DetectorID": "X/D",
    "GantryID": "X",
    "GeneratorID": "X",
    "PlateID": "X",
    "CassetteID": "X",
    "NetworkID": "X",
    "UniqueDeviceIdentifier": "X",
    "UDISequence": "X",
    "DeviceDescription": "X",
    "TimezoneOffsetFromUTC": "X",
    # Study, series and acquisition descriptors
    "AccessionNumber": "Z",
    "StudyID": "Z",
    "StudyDescription": "X",
    "SeriesDescription": "X",
    "ProtocolName": "X/D",
    "ImageComments": "X",
    "FrameComments": "X",
    "AcquisitionComments": "X",
    "DerivationDescription": "X",
    "StudyComments": "X",
    "IdentifyingComments": "X",
    "TextComments": "X",
    "TextString": "X",
    "ContrastBolusAgent": "Z/D",
    "AcquisitionDeviceProcessingDescription": "X/D",
    "ContentSequence": "D",
    "AcquisitionContextSequence": "X/Z",
    "IconImageSequence": "X",
    "ModifiedAttributesSequence": "X",
    "OriginalAttributesSequence": "X",
    "DigitalSignaturesSequence": "X",
    "DataSetTrailingPadding": "X",
    "LabelText": "X/Z",
    "BarcodeValue": "X/Z",
    "SpecimenAccessionNumber": "X",
    "SpecimenIdentifier": "D",
    "ContainerIdentifier": "D",
    # Dates and times (DA/DT shifted, TM kept, under option 113107)
    "StudyDate": "Z",
    "StudyTime": "Z",
    "SeriesDate": "X/D",
    "SeriesTime": "X/D",
    "AcquisitionDate": "X/Z",
    "AcquisitionTime": "X/Z",
    "AcquisitionDateTime": "X/Z/D",
    "ContentDate": "Z/D",
    "ContentTime": "Z/D",
    "InstanceCreationDate": "X/D",
    "InstanceCreationTime": "X/Z/D",
    "InstanceCoercionDateTime": "X",
    "OverlayDate": "X",
    "OverlayTime": "X",
    "CurveDate": "X",
    "CurveTime": "X",
    "DateOfSecondaryCapture": "X",
    "TimeOfSecondaryCapture": "X",
    "DateOfLastCalibration": "X",
    "TimeOfLastCalibration": "X",
    "StudyArrivalDate": "X",
    "StudyArrivalTime": "X",
    "StudyCompletionDate": "X",
    "StudyCompletionTime": "X",
    "StudyVerifiedDate": "X",
    "StudyVerifiedTime": "X",
    "StudyReadDate": "X",
    "StudyReadTime": "X",
    "ObservationDateTime": "X/D",
    "StartAcquisitionDateTime": "X/D",
    "EndAcquisitionDateTime": "X/D",
    "FrameAcquisitionDateTime": "D",
    "FrameReferenceDateTime": "D",
    "DateTime": "D",
    "Date": "D",
    "Time": "D",
    "VerificationDateTime": "D",
    "ReferencedDateTime": "D",
    "PresentationCreationDate": "X",
    "PresentationCreationTime": "X",
    # UIDs
    "StudyInstanceUID": "U",
    "SeriesInstanceUID": "U",
    "SOPInstanceUID": "U",
    "MediaStorageSOPInstanceUID": "U",
    "FrameOfReferenceUID": "U",
    "SynchronizationFrameOfReferenceUID": "U",
    "ReferencedFrameOfReferenceUID": "U",
    "RelatedFrameOfReferenceUID": "U",
    "SourceFrameOfReferenceUID": "U",
    "ReferencedSOPInstanceUID": "U",
    "ReferencedSOPInstanceUIDInFile": "U",
    "AffectedSOPInstanceUID": "U",
    "RequestedSOPInstanceUID": "U",
    "FailedSOPInstanceUIDList": "U",
    "InstanceCreatorUID": "U",
    "IrradiationEventUID": "U",
    "ConcatenationUID": "U",
    "DimensionOrganizationUID": "U",
    "AcquisitionUID": "U",
    "PaletteColorLookupTableUID": "U",
    "LargePaletteColorLookupTableUID": "U",
    "ObservationUID": "U",
    "UID": "U",
    "StorageMediaFileSetUID": "U",
    "TransactionUID": "U",
    "TrackingUID": "U",
    "SpecimenUID": "U",
    "FiducialUID": "U",
    "TemplateExtensionCreatorUID": "U",
    "TemplateExtensionOrganizationUID": "U",
    "ReferencedImageSequence": "X/Z/U*",
    "SourceImageSequence": "X/Z/U*",
    # File meta information: the sender's AE titles name the clinic's machines.
    "SourceApplicationEntityTitle": "X",
    "SendingApplicationEntityTitle": "X",
    "ReceivingApplicationEntityTitle": "X",
    "PrivateInformationCreatorUID": "X",
    "PrivateInformation": "X",
}

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


# --------------------------------------------------------------------------------------
# Photographs
# --------------------------------------------------------------------------------------

MAX_IMAGE_PIXELS: Final = 50_000_000
_JPEG_FORMATS: Final = frozenset({"JPEG", "MPO"})
_PNG_MODES: Final = frozenset({"1", "L", "LA", "I;16", "RGB", "RGBA"})


def _open_image(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image too large: {exc}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not a readable image: {exc}") from exc
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"image of {width}x{height} pixels exceeds {MAX_IMAGE_PIXELS} pixels; refusing"
        )
    return image


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pixels from an embedded ICC profile to sRGB, so dropping it keeps colours."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode=image.mode
        )
    except (ImportError, OSError, ValueError) as exc:
        _LOGGER.warning("could not apply the image's ICC profile, dropping it: %s", exc)
        return image
    return converted if converted is not None else image


def _output_mode(image: Image.Image, as_jpeg: bool) -> str:
    if as_jpeg:
        return "L" if image.mode in ("1", "L", "I;16", "I", "F") else "RGB"
    if image.mode in _PNG_MODES:
        return image.mode
    if image.mode in ("I", "F"):
        return "I;16"
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    return "RGBA" if has_alpha else "RGB"


def _pixels_only(image: Image.Image, mode: str) -> Image.Image:
    """A new image holding only the pixels: no info dict, no EXIF, no palette, no profile."""
    converted = image if image.mode == mode else image.convert(mode)
    return Image.frombytes(mode, converted.size, converted.tobytes())


def strip_image_metadata(data: bytes) -> tuple[bytes, str]:
    """Re-encode an image from its pixels alone; returns (bytes, media type).

    JPEG (and phone MPO) input comes back as JPEG quality 95, anything else as PNG
    (lossless). EXIF orientation is applied to the pixels first, since the tag that
    carried it is dropped. Only the first frame of an animated or multi-page image is
    kept. Images over 50 megapixels are refused before any pixel is decoded.
    """
    image = _open_image(data)
    as_jpeg = image.format in _JPEG_FORMATS
    try:
        image.load()
        oriented = ImageOps.exif_transpose(image)
        oriented = _to_srgb(oriented)
        clean = _pixels_only(oriented, _output_mode(oriented, as_jpeg))
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"image could not be decoded: {exc}") from exc
    out = io.BytesIO()
    if as_jpeg:
        clean.save(out, format="JPEG", quality=95)
        return out.getvalue(), "image/jpeg"
    clean.save(out, format="PNG")
    return out.getvalue(), "image/png"


# --------------------------------------------------------------------------------------
# EMR entries
# --------------------------------------------------------------------------------------

REDACTED: Final = "[REDACTED]"
DATE_REDACTED: Final = "[DATE]"

# Keys (after normalising case, camelCase and separators to snake_case) whose values
# are identity and are dropped wherever they occur in an entry.
IDENTITY_KEYS: Final = frozenset(
    {
        "patient_name",
        "first_name",
        "firstname",
        "given_name",
        "given_names",
        "last_name",
        "lastname",
        "family_name",
        "surname",
        "middle_name",
        "full_name",
        "maiden_name",
        "birth_name",
        "mother_name",
        "mothers_maiden_name",
        "nickname",
        "alias",
        "address",
        "home_address",
        "street",
        "street_address",
        "address_line",
        "postcode",
        "post_code",
        "postal_code",
        "zip",
        "zip_code",
        "phone",
        "phone_number",
        "telephone",
        "tel",
        "mobile",
        "mobile_number",
        "cell",
        "fax",
        "contact_number",
        "email",
        "email_address",
        "e_mail",
        "mrn",
        "medical_record_number",
        "patient_id",
        "patientid",
        "hospital_number",
        "hospital_id",
        "nhs_number",
        "national_id",
        "national_id_number",
        "id_number",
        "ssn",
        "social_security_number",
        "insurance_number",
        "insurance_id",
        "passport",
        "passport_number",
        "drivers_license",
        "driver_license",
        "birth_date",
        "birthdate",
        "date_of_birth",
        "dob",
        "birth_place",
        "place_of_birth",
        "next_of_kin",
        "emergency_contact",
        "guardian",
        "ip_address",
    }
)
# Keys that name identity only at the top of an entry: a nested {"drug": {"name": …}}
# is clinical content; the patient's own name inside it is caught by `identifiers`.
TOP_LEVEL_IDENTITY_KEYS: Final = frozenset({"name", "patient"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_ISO_DATE = re.compile(r"(?<![\d-])(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_ORDINAL = r"\d{1,2}(?:st|nd|rd|th)?"
_OTHER_DATES = re.compile(
    "|".join(
        (
            r"(?<![\d/.-])\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})(?![\d/.-])",
            r"(?<![\d/.-])\d{4}[/.]\d{1,2}[/.]\d{1,2}(?![\d/.-])",
            rf"\b{_ORDINAL}(?:\s+of)?\s+{_MONTH}(?:,?\s+\d{{4}})?(?![\w])",
            rf"\b{_MONTH}\s+{_ORDINAL},?\s+\d{{4}}\b",
            rf"\b{_MONTH},?\s+\d{{4}}\b",
        )
    ),
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NAME_SEPARATORS = r"[\s^,._-]+"
_MIN_SUBSTRING_ID = 4


def _normal_key(key: str) -> str:
    return _NON_ALNUM.sub("_", _CAMEL.sub("_", key).lower()).strip("_")


def _needle_pattern(needle: str) -> str:
    """One identifier as a regex: flexible separators, whole-word unless a long ID."""
    tokens = [re.escape(t) for t in re.split(r"[\s^,]+", needle.strip()) if t]
    body = _NAME_SEPARATORS.join(tokens)
    has_digit = any(c.isdigit() for c in needle)
    if has_digit and len(needle.strip()) >= _MIN_SUBSTRING_ID:
        return body
    return rf"(?<!\w){body}(?!\w)"


def _identifier_needles(identifiers: Iterable[str]) -> list[str]:
    """The identifiers, their name parts and the digit runs of their IDs."""
    needles: set[str] = set()
    for raw in identifiers:
        ident = raw.strip()
        if not ident:
            continue
        needles.add(ident)
        if any(c.isdigit() for c in ident):
            needles.update(r for r in re.findall(r"\d+", ident) if len(r) >= _MIN_SUBSTRING_ID)
        else:
            needles.update(t for t in re.split(r"[\s^,.]+", ident) if len(t) >= 2)
    return sorted(needles, key=lambda n: (-len(n), n))


def _identifier_regex(identifiers: Iterable[str]) -> re.Pattern[str] | None:
    needles = _identifier_needles(identifiers)
    if not needles:
        return None
    return re.compile("|".join(_needle_pattern(n) for n in needles), re.IGNORECASE)


@dataclass(frozen=True)
class _EmrCleaner:
    pseudo: Pseudonymizer
    identifiers: re.Pattern[str] | None

    def text(self, value: str) -> str:
        value = _EMAIL.sub(REDACTED, value)
        if self.identifiers is not None:
            value = self.identifiers.sub(REDACTED, value)
        value = _ISO_DATE.sub(self._shift_iso, value)
        return _OTHER_DATES.sub(DATE_REDACTED, value)

    def _shift_iso(self, match: re.Match[str]) -> str:
        try:
            day = date(int(match[1]), int(match[2]), int(match[3]))
            return self.pseudo.shift_date(day).isoformat()
        except (ValueError, OverflowError):
            return DATE_REDACTED

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, date):  # datetime is a date too; the shift keeps its time
            return self.pseudo.shift_date(value)
        if isinstance(value, Mapping):
            return self.mapping(value, top=False)
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def mapping(self, fields: Mapping[str, Any], *, top: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in fields.items():
            normal = _normal_key(str(key))
            if normal in IDENTITY_KEYS or (top and normal in TOP_LEVEL_IDENTITY_KEYS):
                _LOGGER.debug("dropped identity field %s", normal)
                continue
            out[self.text(str(key))] = self.value(value)
        return out


def deidentify_emr(
    fields: Mapping[str, Any], pseudo: Pseudonymizer, *, identifiers: Iterable[str]
) -> dict[str, Any]:
    """A de-identified copy of one EMR entry.

    - keys in :data:`IDENTITY_KEYS` are dropped at any depth, ``name``/``patient`` at
      the top level only;
    - each identifier (and each part of a multi-word name, and each run of 4+ digits
      of an ID) is replaced by ``[REDACTED]`` in every string, case-insensitively,
      as whole words (long IDs also inside longer tokens such as ``MRN12345``);
    - e-mail addresses become ``[REDACTED]``;
    - ISO dates (also inside datetimes) are shifted by the export's offset, other date
      spellings (``02/03/2025``, ``2 March 2025``, ``March 2025``) become ``[DATE]``;
    - numbers and booleans pass through; dicts and lists recurse. Dates written as
      numbers (epoch seconds) are not recognised.
    """
    cleaner = _EmrCleaner(pseudo, _identifier_regex(identifiers))
    return cleaner.mapping(fields, top=True)


# --------------------------------------------------------------------------------------
# Leak check
# --------------------------------------------------------------------------------------


def _needle_variants(needle: str) -> set[str]:
    """The needle, and for person names the DICOM (``Last^First``) and list forms."""
    variants = {needle}
    if "^" in needle:
        parts = [p for p in needle.split("^") if p]
        if len(parts) >= 2:
            variants.add(" ".join([*parts[1:], parts[0]]))
    words = needle.split()
    if len(words) >= 2:
        variants.add("^".join([words[-1], *words[:-1]]))
        variants.add(f"{words[-1]}, {' '.join(words[:-1])}")
    return {v.casefold() for v in variants}


def _decodings(blob: bytes) -> list[str]:
    """The blob read as UTF-8, Latin-1 and UTF-16-LE at both alignments, case-folded."""
    texts = [
        blob.decode("utf-8", errors="replace"),
        blob.decode("latin-1"),
        blob.decode("utf-16-le", errors="replace"),
        blob[1:].decode("utf-16-le", errors="replace"),
    ]
    return [t.casefold() for t in texts]


def scan_for_identifiers(blob: bytes, needles: Iterable[str]) -> list[str]:
    """Which of ``needles`` occur in ``blob`` (case-insensitive, several encodings).

    A person name given as ``First Last`` is also looked for as ``Last^First`` (DICOM
    PN) and ``Last, First``; one given as ``Last^First`` also as ``First Last``.
    """
    texts = _decodings(blob)
    found: list[str] = []
    for needle in needles:
        if not needle.strip() or needle in found:
            continue
        if any(v in text for v in _needle_variants(needle) for text in texts):
            found.append(needle)
    return found
