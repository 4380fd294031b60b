"""FHIR R4 Bundle import: a realistic referral bundle, and each kind of bad input."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import socket
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from PIL import Image

from server.records.fhir import (
    FhirAttachment,
    FhirEntry,
    FhirError,
    FhirImport,
    FhirPatient,
    parse_bundle,
)

_PATIENT_URL = "urn:uuid:5a7c1f4e-0d3b-4f55-9c1e-2b8e6f0a9d11"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


_PNG = _png()
_PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def _patient() -> dict[str, Any]:
    return {
        "fullUrl": _PATIENT_URL,
        "resource": {
            "resourceType": "Patient",
            "id": "pat-1",
            "identifier": [
                {"system": "urn:oid:2.16.840.1.113883.2.1.4.1", "value": "NAT-99"},
                {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "MR",
                            }
                        ]
                    },
                    "system": "urn:hospital:mrn",
                    "value": "MRN-778812",
                },
            ],
            "name": [
                {"use": "nickname", "given": ["Janey"]},
                {"use": "official", "family": "Doe", "given": ["Jane", "Q"]},
            ],
            "gender": "female",
            "birthDate": "1961-04-12",
        },
    }


def _bundle() -> dict[str, Any]:
    """A referral: patient, vitals, a diagnosis, a photo, a letter and things to skip."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:0c1b",
                "resource": {
                    "resourceType": "Observation",
                    "id": "hr-1",
                    "status": "final",
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "observation-category",
                                    "code": "vital-signs",
                                    "display": "Vital Signs",
                                }
                            ]
                        }
                    ],
                    "code": {
                        "coding": [
                            {
                                "system": "http://loinc.org",
                                "code": "8867-4",
                                "display": "Heart rate",
                            }
                        ]
                    },
                    "subject": {"reference": "Patient/pat-1"},
                    "effectiveDateTime": "2025-03-02T09:30:00+01:00",
                    "valueQuantity": {
                        "value": 72,
                        "unit": "beats/minute",
                        "system": "http://unitsofmeasure.org",
                        "code": "/min",
                    },
                },
            },
            _patient(),
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "Wound appearance"},
                    "subject": {"reference": _PATIENT_URL},
                    "effectiveDateTime": "2025-03-02",
                    "valueString": "Clean, no discharge",
                    "note": [{"text": "Photo taken"}],
                },
            },
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "cond-1",
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {
                        "coding": [
                            {
                                "system": "http://snomed.info/sct",
                                "code": "44054006",
                                "display": "Diabetes mellitus type 2",
                            }
                        ]
                    },
                    "subject": {"reference": "Patient/pat-1/_history/3"},
                    "onsetDateTime": "2019-06",
                    "recordedDate": "2025-03-02T10:15:00Z",
                },
            },
            {
                "resource": {
                    "resourceType": "Media",
                    "status": "completed",
                    "subject": {"reference": "Patient/pat-1"},
                    "createdDateTime": "2025-03-02T09:45:00Z",
                    "content": {
                        "contentType": "image/png",
                        "data": _b64(_PNG),
                        "size": len(_PNG),
                        "hash": _sha1(_PNG),
                        "title": "Left forearm wound",
                    },
                },
            },
            {
                "resource": {
                    "resourceType": "DocumentReference",
                    "status": "current",
                    "subject": {"reference": _PATIENT_URL},
                    "date": "2025-03-02T11:00:00.250Z",
                    "description": "Discharge letter",
                    "content": [
                        {
                            "attachment": {
                                "contentType": "application/pdf",
                                "data": _b64(_PDF),
                                "creation": "2025-03-01T16:20:00-05:00",
                            }
                        },
                        {"attachment": {"contentType": "application/pdf", "url": "Binary/77"}},
                    ],
                },
            },
            {
                "resource": {
                    "resourceType": "Encounter",
                    "status": "finished",
                    "subject": {"reference": "Patient/pat-1"},
                },
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "Weight"},
                    "subject": {"reference": "Patient/someone-else"},
                    "valueQuantity": {"value": 70.5, "unit": "kg"},
                },
            },
            {
                "resource": {
                    "resourceType": "Media",
                    "status": "completed",
                    "subject": {"reference": "Patient/pat-1"},
                    "content": {
                        "contentType": "image/jpeg",
                        "url": "http://127.0.0.1:9/never-fetched.jpg",
                    },
                },
            },
        ],
    }


def _raw(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle).encode()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test (URLs must never be followed)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
def test_a_referral_bundle_becomes_patients_entries_and_attachments() -> None:
    result = parse_bundle(_raw(_bundle()))

    patient = FhirPatient(
        fhir_id="pat-1",
        identifier="MRN-778812",
        name="Jane Q Doe",
        birth_date=date(1961, 4, 12),
        sex="female",
    )
    heart_rate = FhirEntry(
        patient_ref="pat-1",
        kind="Observation",
        recorded_at=datetime(2025, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=1))),
        fields={
            "code": {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
            "status": "final",
            "value": 72.0,
            "unit": "beats/minute",
            "category": ["Vital Signs"],
            "fhir_id": "hr-1",
            "effective": "2025-03-02T09:30:00+01:00",
        },
    )
    wound = FhirEntry(
        patient_ref="pat-1",
        kind="Observation",
        recorded_at=None,  # a bare date is not placed on the clock
        fields={
            "code": {"display": "Wound appearance"},
            "status": "final",
            "value": "Clean, no discharge",
            "note": "Photo taken",
            "effective": "2025-03-02",
        },
    )
    diabetes = FhirEntry(
        patient_ref="pat-1",
        kind="Condition",
        recorded_at=datetime(2025, 3, 2, 10, 15, tzinfo=UTC),
        fields={
            "code": {
                "system": "http://snomed.info/sct",
                "code": "44054006",
                "display": "Diabetes mellitus type 2",
            },
            "clinicalStatus": "active",
            "onset": "2019-06",
            "recordedDate": "2025-03-02T10:15:00Z",
            "fhir_id": "cond-1",
        },
    )
    photo = FhirAttachment(
        patient_ref="pat-1",
        source="Media",
        content_type="image/png",
        title="Left forearm wound",
        data=_PNG,
        created=datetime(2025, 3, 2, 9, 45, tzinfo=UTC),
    )
    letter = FhirAttachment(
        patient_ref="pat-1",
        source="DocumentReference",
        content_type="application/pdf",
        title="Discharge letter",
        data=_PDF,
        created=datetime(2025, 3, 1, 16, 20, tzinfo=timezone(timedelta(hours=-5))),
    )
    assert result == FhirImport(
        patients=[patient],
        entries=[heart_rate, wound, diabetes],
        attachments=[photo, letter],
        skipped=[
            "entry[5] DocumentReference.content[1].attachment: attachment given only by url,"
            " not fetched",
            "entry[6] Encounter: not imported",
            "entry[7] Observation: subject 'Patient/someone-else' is not a patient of the bundle",
            "entry[8] Media.content: attachment given only by url, not fetched",
        ],
    )


def test_every_bundle_type_is_accepted_and_other_types_refused() -> None:
    for kind in ("collection", "document", "transaction", "searchset", "batch"):
        bundle = _bundle()
        bundle["type"] = kind
        assert len(parse_bundle(_raw(bundle)).patients) == 1
    bundle = _bundle()
    bundle["type"] = "history-of-everything"
    with pytest.raises(FhirError, match=r"^Bundle\.type"):
        parse_bundle(_raw(bundle))


def _with_entry(resource: dict[str, Any]) -> bytes:
    """A bundle of the patient (entry[0]) and one more resource (entry[1])."""
    return _raw(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [_patient(), {"resource": resource}],
        }
    )


def _media(**content: Any) -> dict[str, Any]:
    return {
        "resourceType": "Media",
        "status": "completed",
        "subject": {"reference": "Patient/pat-1"},
        "content": {"contentType": "image/png", **content},
    }


def test_input_that_is_not_a_fhir_bundle_is_refused() -> None:
    with pytest.raises(FhirError, match="not JSON"):
        parse_bundle(b"{this is not json")
    with pytest.raises(FhirError, match="not JSON"):
        parse_bundle(b'{"resourceType": "Bundle", "type": "collection", "total": NaN}')
    with pytest.raises(FhirError, match="not a FHIR Bundle"):
        parse_bundle(json.dumps(_patient()["resource"]).encode())
    with pytest.raises(FhirError, match="not a FHIR Bundle"):
        parse_bundle(b"[1, 2, 3]")
    many = {"resourceType": "Bundle", "type": "collection", "entry": [{}] * 10_001}
    with pytest.raises(FhirError, match="10001 entries"):
        parse_bundle(_raw(many))
    with pytest.raises(FhirError, match=r"^Bundle\.entry\[1\]\.fullUrl"):
        bad_entry = {"resourceType": "Bundle", "type": "batch", "entry": [{}, {"fullUrl": 7}]}
        parse_bundle(_raw(bad_entry))


def test_bad_base64_is_refused_naming_the_entry() -> None:
    with pytest.raises(FhirError, match=r"^entry\[1\] Media\.content\.data: not valid base64$"):
        # A lenient decoder would drop the "!" and accept the rest.
        parse_bundle(_with_entry(_media(data=_b64(_PNG)[:8] + "!" + _b64(_PNG)[8:])))
    document = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": "Patient/pat-1"},
        "content": [{"attachment": {"data": _b64(_PDF)[:-1]}}],  # lost its last character
    }
    with pytest.raises(
        FhirError, match=r"^entry\[1\] DocumentReference\.content\[0\]\.attachment\.data: not valid"
    ):
        parse_bundle(_with_entry(document))


def test_base64_with_whitespace_between_groups_is_accepted() -> None:
    spaced = "\n".join(_b64(_PNG)[i : i + 16] for i in range(0, len(_b64(_PNG)), 16))
    result = parse_bundle(_with_entry(_media(data=spaced)))
    assert result.attachments[0].data == _PNG


def test_hash_and_size_must_match_the_data() -> None:
    wrong_hash = _sha1(_PNG + b"x")
    with pytest.raises(FhirError, match=r"^entry\[1\] Media\.content\.hash: does not match"):
        parse_bundle(_with_entry(_media(data=_b64(_PNG), hash=wrong_hash)))
    with pytest.raises(FhirError, match=r"^entry\[1\] Media\.content\.size: says"):
        parse_bundle(_with_entry(_media(data=_b64(_PNG), size=len(_PNG) + 1)))
    r5_size = parse_bundle(_with_entry(_media(data=_b64(_PNG), size=str(len(_PNG)))))
    assert r5_size.attachments[0].data == _PNG


def test_oversized_attachment_is_refused_before_decoding() -> None:
    big = b"\x00" * 300
    with pytest.raises(FhirError, match=r"^entry\[1\] Media\.content\.data: attachment larger"):
        parse_bundle(_with_entry(_media(data=_b64(big))), max_attachment_bytes=200)
    # Invalid base64 that is also too long: the size check comes first, nothing is decoded.
    with pytest.raises(FhirError, match="attachment larger than 200 bytes"):
        parse_bundle(_with_entry(_media(data="*" * 400)), max_attachment_bytes=200)
    exactly = parse_bundle(_with_entry(_media(data=_b64(big[:200]))), max_attachment_bytes=200)
    assert len(exactly.attachments[0].data) == 200


def test_wrongly_typed_fields_are_refused_naming_entry_and_field() -> None:
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Heart rate"},
        "subject": {"reference": "Patient/pat-1"},
        "valueQuantity": {"value": "72", "unit": "/min"},
    }
    with pytest.raises(FhirError, match=r"^entry\[1\] Observation\.valueQuantity\.value: "):
        parse_bundle(_with_entry(observation))
    bad_date = copy.deepcopy(observation)
    bad_date["valueQuantity"]["value"] = 72
    bad_date["effectiveDateTime"] = "02/03/2025"
    with pytest.raises(
        FhirError, match=r"^entry\[1\] Observation\.effectiveDateTime: not a FHIR dateTime"
    ):
        parse_bundle(_with_entry(bad_date))
    patient = _patient()
    patient["resource"]["birthDate"] = "1961-02-30"
    with pytest.raises(FhirError, match=r"^entry\[0\] Patient\.birthDate: not a valid date"):
        parse_bundle(_raw({"resourceType": "Bundle", "type": "collection", "entry": [patient]}))
    no_code = {k: v for k, v in bad_date.items() if k not in ("code", "effectiveDateTime")}
    with pytest.raises(FhirError, match=r"^entry\[1\] Observation\.code: Field required"):
        parse_bundle(_with_entry(no_code))


def test_duplicate_patients_are_refused() -> None:
    twice = {"resourceType": "Bundle", "type": "collection", "entry": [_patient(), _patient()]}
    with pytest.raises(FhirError, match=r"^entry\[1\] Patient\.id: .* appears twice"):
        parse_bundle(_raw(twice))
