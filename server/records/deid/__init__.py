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

from server.records.deid.dicom import DEIDENTIFICATION_METHOD, deidentify_dicom
from server.records.deid.dicom_profile import ANNEX_E_ACTIONS
from server.records.deid.emr import (
    DATE_REDACTED,
    IDENTITY_KEYS,
    REDACTED,
    TOP_LEVEL_IDENTITY_KEYS,
    deidentify_emr,
)
from server.records.deid.leak_check import scan_for_identifiers
from server.records.deid.photos import MAX_IMAGE_PIXELS, strip_image_metadata
from server.records.deid.pseudonyms import Pseudonymizer

__all__ = [
    "ANNEX_E_ACTIONS",
    "DATE_REDACTED",
    "DEIDENTIFICATION_METHOD",
    "IDENTITY_KEYS",
    "MAX_IMAGE_PIXELS",
    "REDACTED",
    "TOP_LEVEL_IDENTITY_KEYS",
    "Pseudonymizer",
    "deidentify_dicom",
    "deidentify_emr",
    "scan_for_identifiers",
    "strip_image_metadata",
]
