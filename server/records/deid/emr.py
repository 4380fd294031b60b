"""EMR entries cleaned by key names, the patient's identifiers and date patterns."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from server.records.deid.pseudonyms import Pseudonymizer

_LOGGER = logging.getLogger(__name__)


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
