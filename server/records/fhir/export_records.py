"""The record categories as FHIR R4 resources: Observation, Media, DocumentReference,
ImagingStudy.

- An EMR entry is an Observation: its fields, verbatim, in the ``emr-fields`` extension
  (so Clinicam's importer gets exactly the same entry back), and each top-level scalar
  field as a component a receiving system can show.
- A photo, an image scan and a voice note are a Media with the file inline; a PDF scan
  a DocumentReference. CT slices are grouped into one ImagingStudy per study (DICOM
  study, series and instance UIDs), and each slice's DICOM file is a Media ``partOf``
  it. Every file carries the ``record-category`` extension, so the importer files a
  scanned page as a scan, not as a photo.
- Files are inline base64, checked by size and SHA-1: the bundle is self-contained and
  imports offline. A file over the per-file limit (the store's upload limit), or past
  the bundle's total (what the importer reads, less base64's growth), keeps its
  resource without data and is listed as left out.

De-identified: EMR fields through :func:`deidentify_emr`, images re-encoded from
pixels, DICOM through the PS3.15 basic profile with the export's UIDs, and voice
notes and PDF documents left out (a voice identifies; a PDF's text cannot be cleaned
reliably), as in the ZIP export.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any, Final

import pydicom
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.media import Media
from fhir.resources.R4B.observation import Observation
from sqlalchemy import select

from server.records.deid import deidentify_dicom, deidentify_emr, strip_image_metadata
from server.records.fhir.export_context import (
    Contribution,
    Contributor,
    ExportContext,
    category_extension,
    coding,
)
from server.records.fhir.systems import BLOB_SYSTEM, EMR_FIELDS_EXTENSION, RECORD_SYSTEM
from server.records.ingest import Category
from server.records.models import ClinicalPhoto, CtImage, EmrEntry, RecordScan, VoiceNote
from server.records.store import EMR, BlobRecord

_LOGGER = logging.getLogger(__name__)

MEDIA_TYPES: Final = "http://terminology.hl7.org/CodeSystem/media-type"
DICOM_UID: Final = "urn:dicom:uid"
DICOM_CODES: Final = "http://dicom.nema.org/resources/ontology/DCM"
SOP_CLASSES: Final = "urn:ietf:rfc:3986"
CT_IMAGE_STORAGE: Final = "1.2.840.10008.5.1.4.1.1.2"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"


def _record_id(ctx: ExportContext, category: str, row_id: int) -> list[dict[str, str]]:
    return [{"system": RECORD_SYSTEM, "value": ctx.key("R", f"{category}/{row_id}")}]


def _rows(ctx: ExportContext, table: type[Any]) -> list[Any]:
    query = select(table).where(table.patient_id == ctx.patient.id).order_by(table.id)
    return list(ctx.session.scalars(query))


def _blob(ctx: ExportContext, row: BlobRecord, category: str) -> bytes | None:
    if not ctx.room_for(row.blob_size):
        ctx.left_out.append(
            f"{category} {row.id}: file of {row.blob_size} bytes not inline (over the "
            f"{ctx.max_attachment_bytes}-byte file or {ctx.max_inline_bytes}-byte bundle limit)"
        )
        return None
    with ctx.blobs.open(row.blob_sha256) as stream:
        return stream.read()


def _content(
    ctx: ExportContext, row: BlobRecord, category: str
) -> tuple[dict[str, Any], bool] | None:
    """The row's Attachment (de-identified when asked), and whether it has its data;
    None when the file may not leave de-identified."""
    data = _blob(ctx, row, category)
    media_type = str(row.media_type)
    if data is None:
        return {"contentType": media_type, "size": int(row.blob_size)}, False
    if ctx.pseudo is not None:
        if category == Category.CT.value:
            pseudonym = ctx.key("patient", ctx.patient.external_id)
            data = deidentify_dicom(data, ctx.pseudo, patient_pseudonym=pseudonym)
        elif media_type.startswith("image/"):
            data, media_type = strip_image_metadata(data)
        else:
            ctx.left_out.append(f"{category} {row.id} ({media_type}): not de-identifiable")
            return None
    return ctx.attachment(data, media_type, row.title, row.created_at), True


def _identifiers(ctx: ExportContext, row: BlobRecord, category: str) -> list[dict[str, str]]:
    out = _record_id(ctx, category, row.id)
    if not ctx.deidentified:  # a de-identified file is a different file
        out.append({"system": BLOB_SYSTEM, "value": row.blob_sha256})
    return out


def _media(ctx: ExportContext, rows: list[Any], category: str, kind: str) -> list[Contribution]:
    out: list[Contribution] = []
    for row in rows:
        content = _content(ctx, row, category)
        if content is None:
            continue
        attachment, _has_data = content
        taken = getattr(row, "taken_at", None) or row.created_at
        resource: dict[str, Any] = {
            "extension": [category_extension(category)],
            "identifier": _identifiers(ctx, row, category),
            "status": "completed",
            "type": coding(MEDIA_TYPES, kind, kind.title()),
            "subject": ctx.subject(),
            "createdDateTime": ctx.when(taken),
            "content": attachment,
        }
        if getattr(row, "width", None):
            resource.update(width=row.width, height=row.height)
        if isinstance(row, VoiceNote):
            resource["duration"] = row.duration_s
        consultation = getattr(row, "consultation_id", None)
        if consultation and ctx.known_ref("Encounter", consultation):
            resource["encounter"] = {"reference": ctx.known_ref("Encounter", consultation)}
        ref = ctx.ref("Media", f"{category}/{row.id}")
        out.append(_made(category, ref, Media.model_validate(resource), row))
    return out


def _made(section: str, ref: str, resource: Any, row: Any) -> Contribution:
    return Contribution(section, ref, resource, row.created_by, row.created_at, (section, row.id))


def photos(ctx: ExportContext) -> list[Contribution]:
    return _media(ctx, _rows(ctx, ClinicalPhoto), Category.PHOTO.value, "image")


def voice_notes(ctx: ExportContext) -> list[Contribution]:
    return _media(ctx, _rows(ctx, VoiceNote), Category.VOICE.value, "audio")


def scans(ctx: ExportContext) -> list[Contribution]:
    """Image scans as Media; PDF scans as DocumentReference."""
    category = Category.SCAN.value
    rows = _rows(ctx, RecordScan)
    images = [row for row in rows if str(row.media_type).startswith("image/")]
    out = _media(ctx, images, category, "image")
    for row in rows:
        if row in images:
            continue
        content = _content(ctx, row, category)
        if content is None:
            continue
        resource = {
            "extension": [category_extension(category)],
            "identifier": _identifiers(ctx, row, category),
            "status": "current",
            "type": {"text": "Scanned record"},
            "subject": ctx.subject(),
            "date": ctx.when(row.created_at),
            "description": ctx.text(row.title) if not ctx.deidentified else None,
            "content": [{"attachment": content[0]}],
        }
        ref = ctx.ref("DocumentReference", f"{category}/{row.id}")
        out.append(_made(category, ref, DocumentReference.model_validate(resource), row))
    return out


def _sop_class(data: bytes | None) -> str:
    if data is None:
        return CT_IMAGE_STORAGE
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        return str(ds.get("SOPClassUID") or CT_IMAGE_STORAGE)
    except Exception:  # the study reference still stands without it
        return CT_IMAGE_STORAGE


def ct_images(ctx: ExportContext) -> list[Contribution]:
    """One ImagingStudy per study (series and instances by UID); each slice a Media."""
    category = Category.CT.value
    rows: list[CtImage] = _rows(ctx, CtImage)
    out: list[Contribution] = []
    studies: dict[str, dict[str, list[tuple[CtImage, str]]]] = {}
    for row in rows:
        content = _content(ctx, row, category)
        if content is None:
            continue
        attachment, has_data = content
        data = ctx.attachments[-1] if has_data else None
        series = studies.setdefault(row.study_uid, {}).setdefault(row.series_uid, [])
        series.append((row, _sop_class(data)))
        study_ref = ctx.ref("ImagingStudy", row.study_uid)
        resource: dict[str, Any] = {
            "extension": [category_extension(category)],
            "identifier": [
                *_identifiers(ctx, row, category),
                {"system": DICOM_UID, "value": f"urn:oid:{_uid(ctx, row.instance_uid)}"},
            ],
            "partOf": [{"reference": study_ref}],
            "status": "completed",
            "type": coding(MEDIA_TYPES, "image", "Image"),
            "modality": coding(DICOM_CODES, row.modality),
            "subject": ctx.subject(),
            "createdDateTime": ctx.when(row.created_at),
            "content": attachment,
        }
        ref = ctx.ref("Media", f"{category}/{row.id}")
        out.append(_made(category, ref, Media.model_validate(resource), row))
    for study_uid, series_of in studies.items():
        out.insert(0, _study(ctx, study_uid, series_of))
    return out


def _uid(ctx: ExportContext, uid: str) -> str:
    return ctx.pseudo.uid(uid) if ctx.pseudo is not None else uid


def _study(
    ctx: ExportContext, study_uid: str, series_of: dict[str, list[tuple[CtImage, str]]]
) -> Contribution:
    series = []
    first = next(iter(series_of.values()))[0][0]
    for number, (series_uid, instances) in enumerate(series_of.items(), start=1):
        modality = instances[0][0].modality
        series.append(
            {
                "uid": _uid(ctx, series_uid),
                "number": number,
                "modality": {"system": DICOM_CODES, "code": modality},
                "numberOfInstances": len(instances),
                "instance": [
                    {
                        "uid": _uid(ctx, row.instance_uid),
                        "sopClass": {"system": SOP_CLASSES, "code": f"urn:oid:{sop}"},
                        "number": index,
                    }
                    for index, (row, sop) in enumerate(instances, start=1)
                ],
            }
        )
    resource = {
        "identifier": [{"system": DICOM_UID, "value": f"urn:oid:{_uid(ctx, study_uid)}"}],
        "status": "available",
        "subject": ctx.subject(),
        "started": ctx.when(first.created_at),
        "numberOfSeries": len(series),
        "numberOfInstances": sum(len(i) for i in series_of.values()),
        "series": series,
    }
    ref = ctx.ref("ImagingStudy", study_uid)
    return Contribution(
        Category.CT.value,
        ref,
        ImagingStudy.model_validate(resource),
        first.created_by,
        first.created_at,
    )


def _components(fields: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in fields.items():
        component: dict[str, Any] = {"code": {"text": str(key)[:200]}}
        if isinstance(value, bool):
            component["valueBoolean"] = value
        elif isinstance(value, int):
            component["valueInteger"] = value
        elif isinstance(value, float):
            component["valueQuantity"] = {"value": value}
        elif isinstance(value, str) and value:
            component["valueString"] = value
        else:
            continue
        out.append(component)
    return out


def emr_entries(ctx: ExportContext) -> list[Contribution]:
    out: list[Contribution] = []
    for row in _rows(ctx, EmrEntry):
        fields = dict(row.fields)
        if ctx.pseudo is not None:
            fields = deidentify_emr(fields, ctx.pseudo, identifiers=ctx.identifiers)
        text = json.dumps(fields, ensure_ascii=False)
        resource: dict[str, Any] = {
            "extension": [{"url": EMR_FIELDS_EXTENSION, "valueString": text}],
            "identifier": _record_id(ctx, EMR, row.id),
            "status": "final",
            "category": [coding(OBSERVATION_CATEGORY, "exam", "Exam")],
            "code": {"text": "Clinicam EMR entry"},
            "subject": ctx.subject(),
            "effectiveDateTime": ctx.when(row.recorded_at),
            "issued": ctx.when(row.created_at),
        }
        components = _components(fields)
        if components:
            resource["component"] = components
        ref = ctx.ref("Observation", f"{EMR}/{row.id}")
        out.append(_made(EMR, ref, Observation.model_validate(resource), row))
    return out


RECORD_CONTRIBUTORS: Final[dict[str, Contributor]] = {
    Category.PHOTO.value: photos,
    Category.SCAN.value: scans,
    Category.CT.value: ct_images,
    Category.VOICE.value: voice_notes,
    EMR: emr_entries,
}
"""The records' own categories, in the order the Composition lists them."""
