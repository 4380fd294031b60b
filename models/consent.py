"""Consent evidence for training on clinic cases (R15, issue 18).

The server exports a retrain's cases (``server.relevance.training_export``) only for
patients whose training consent holds *at the moment of export*, de-identified, with a
manifest ``consent.json`` beside them::

    {"schema": "clinicam-consent-manifest/1", "purpose": "training",
     "checked_at": "2026-12-07T02:40:00+00:00",
     "patients": [{"pseudonym": "P-…", "label": "malignant", "items": 2}, ...],
     "left_out": ["voice_note 4: a voice cannot be de-identified", ...]}

The offline tools refuse clinic cases without it: ``python -m models.retrain --cases``
needs a manifest whose item count matches the records in the folder (or the explicit
``--consent-verified-elsewhere``), and ``clinicam model train --data`` needs either a
manifest, or a ``dataset.json`` stating every category's provenance, or the explicit
``--no-patient-data``. No TensorFlow here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinicam.i18n import _
from models.categories import CATEGORIES
from models.dataset import SPEC_FILE, list_records, read_spec

MANIFEST_FILE = "consent.json"
SCHEMA = "clinicam-consent-manifest/1"
PURPOSE = "training"


class ConsentError(ValueError):
    """Clinic cases without the consent evidence that allows training on them."""


@dataclass(frozen=True)
class ManifestPatient:
    pseudonym: str
    label: str
    items: int


@dataclass(frozen=True)
class ConsentManifest:
    checked_at: str
    patients: tuple[ManifestPatient, ...]
    left_out: tuple[str, ...] = ()

    @property
    def items(self) -> int:
        return sum(p.items for p in self.patients)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "purpose": PURPOSE,
            "checked_at": self.checked_at,
            "patients": [
                {"pseudonym": p.pseudonym, "label": p.label, "items": p.items}
                for p in self.patients
            ],
            "left_out": list(self.left_out),
        }

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MANIFEST_FILE
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", "utf-8")
        return path


def read_manifest(folder: Path) -> ConsentManifest | None:
    """The folder's consent manifest; None without one; ConsentError if malformed."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA or data.get("purpose") != PURPOSE:
            raise ValueError("not a training consent manifest")
        patients = tuple(
            ManifestPatient(str(p["pseudonym"]), str(p["label"]), int(p["items"]))
            for p in data["patients"]
        )
        return ConsentManifest(
            str(data["checked_at"]), patients, tuple(str(x) for x in data.get("left_out", ()))
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        message = _("{path}: malformed consent manifest: {error}", path=path, error=exc)
        raise ConsentError(message) from exc


def record_count(folder: Path) -> int:
    return sum(len(list_records(folder, category)) for category in CATEGORIES)


def check_cases(folder: Path) -> ConsentManifest:
    """Clinic cases for a retrain: a manifest that accounts for every record, or refused."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise ConsentError(
            _(
                "{folder} has no consent manifest ({file}): clinic cases are used for "
                "training only with the manifest the server writes when it exports them "
                "(training consent checked at export); pass --consent-verified-elsewhere "
                "only if you hold that evidence yourself",
                folder=folder,
                file=MANIFEST_FILE,
            )
        )
    found = record_count(folder)
    if found != manifest.items:
        raise ConsentError(
            _(
                "{folder}: the consent manifest covers {covered} record items but the folder "
                "holds {found}; records without consent evidence are not used for training",
                folder=folder,
                covered=manifest.items,
                found=found,
            )
        )
    return manifest


def check_training_data(root: Path, *, no_patient_data: bool) -> str:
    """``clinicam model train``'s gate; returns the basis it accepted (for the log)."""
    manifest = read_manifest(root)
    if manifest is not None:
        check_cases(root)
        return f"consent manifest of {len(manifest.patients)} patients ({manifest.checked_at})"
    spec = read_spec(root) if (root / SPEC_FILE).is_file() else None
    stated: Sequence[str] = [] if spec is None else list(spec.provenance)
    if spec is not None and all(c in stated for c in CATEGORIES):
        return f"provenance stated in {SPEC_FILE}"
    if no_patient_data:
        return "the operator stated: no patient data (--no-patient-data)"
    raise ConsentError(
        _(
            "{root}: no consent manifest ({file}) and {spec} does not state where every "
            "category's records came from. Clinic cases need the consent manifest the "
            "server writes when it exports them; for data that is not from patients, state "
            "its provenance in {spec} or pass --no-patient-data",
            root=root,
            file=MANIFEST_FILE,
            spec=SPEC_FILE,
        )
    )


def provenance_note(manifest: ConsentManifest | None, counts: Mapping[str, int]) -> str:
    """What the card says about the clinic cases in a training set."""
    if manifest is None:
        return ""
    per = ", ".join(f"{c} {n}" for c, n in counts.items() if n)
    return (
        f"{len(manifest.patients)} consented clinic patients ({manifest.items} record "
        f"items: {per}), training consent checked at export {manifest.checked_at}"
    )
