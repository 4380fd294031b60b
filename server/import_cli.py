"""``clinicam records import-dicom`` / ``import-fhir`` / ``export-fhir``: run by a site's IT staff.

They open the server's own database and blob store (the server may keep running: the
database serialises writers) and print progress as they go. Every record is audited
with its row (see :mod:`server.records.filing`), under ``cli:<operating-system user>``,
which holds no grants: a CLI import may create a new patient (only when run with
``--create-patients``) but not add records to an existing one. One more entry
summarises each import.

``export-fhir`` writes one patient's record as a FHIR Bundle (see
:mod:`server.fhir_export`); whoever runs it already holds the database, so there is
no grant to check, but the export is audited (``record.export`` under the CLI actor)
and a de-identified one still needs the patient's export consent.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from sqlalchemy import select

from clinicam.i18n import _, localized, say
from server.access.consent import has_consent
from server.access.grants import holds_edit_grant
from server.access.models import CONSENT_EXPORT
from server.audit.log import AuditLog
from server.audit.trail import AuditTrail
from server.config import ServerConfig
from server.db import Database, default_database_url, open_database
from server.fhir_export import bundle_builder
from server.records.blob_stores import open_blob_store
from server.records.deid import Pseudonymizer
from server.records.export import ExportLeak
from server.records.filing import RecordFiling
from server.records.importer import ImportJob, run_dicom_folder_import, run_fhir_import
from server.records.ingest import IngestLimits
from server.records.models import Patient
from server.records.service import fhir_detail
from server.records.store import RecordStore


def _open(config: ServerConfig) -> tuple[Database, RecordFiling]:
    database = open_database(config.database_url or default_database_url(config.state_dir))
    store = RecordStore(
        database,
        open_blob_store(config.blobs, config.state_dir),
        max_bytes=config.records.max_upload_mb * 1024 * 1024,
    )
    staging = config.state_dir / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    limits = IngestLimits(max_image_pixels=config.records.max_image_megapixels * 1_000_000)
    filing = RecordFiling(
        database,
        store,
        AuditTrail(database),
        staging=staging,
        limits=limits,
        may_edit=holds_edit_grant,
    )
    return database, filing


def _progress(job: ImportJob) -> None:
    line = _("{done}/{total} files, {filed} filed", done=job.done, total=job.total, filed=job.filed)
    print(f"\r  {localized(line)}", end="", flush=True)  # i18n: not for people (layout)


def _report(job: ImportJob, database: Database, target: str) -> int:
    print()
    for external in job.matched:
        say(_("  patient {patient}: matched by identifier (already registered)", patient=external))
    for external in job.created:
        say(_("  patient {patient}: created (--create-patients)", patient=external))
    for reason in job.skipped:
        say(_("  skipped: {reason}", reason=reason))
    if job.error:
        say(_("error: {problem}", problem=job.error), file=sys.stderr)
    with database.session() as session, session.begin():
        AuditLog().append(
            session,
            f"cli:{getpass.getuser()}",
            "record.import",
            target,
            {
                "kind": job.kind,
                "created": job.created,
                "matched": job.matched,
                "filed": job.filed,
                "skipped": len(job.skipped),
                "error": job.error,
            },
        )
    say(
        _(
            "{kind} import: {filed} filed, {skipped} skipped",
            kind=job.kind,
            filed=job.filed,
            skipped=len(job.skipped),
        )
    )
    return 0 if job.state == "done" else 1


def import_dicom(
    config: ServerConfig,
    folder: Path,
    patient: str,
    name: str | None,
    *,
    create_patients: bool = False,
) -> int:
    if not folder.is_dir():
        say(_("error: {folder} is not a folder", folder=folder), file=sys.stderr)
        return 2
    database, filing = _open(config)
    try:
        files = [p for p in folder.rglob("*") if p.is_file()]
        job = ImportJob("dicom", f"cli:{getpass.getuser()}")
        run_dicom_folder_import(
            job,
            files,
            (patient, name or patient),
            filing,
            create_patients=create_patients,
            on_progress=_progress,
        )
        return _report(job, database, f"patient:{patient}")
    finally:
        database.close()


def import_fhir(config: ServerConfig, bundle: Path, *, create_patients: bool = False) -> int:
    database, filing = _open(config)
    try:
        job = ImportJob("fhir", f"cli:{getpass.getuser()}")
        run_fhir_import(job, bundle.read_bytes(), filing, create_patients=create_patients)
        return _report(job, database, "fhir-bundle")
    finally:
        database.close()


def export_fhir(config: ServerConfig, patient: str, out: Path, *, deidentified: bool) -> int:
    """Write ``patient``'s record as a FHIR Bundle to ``out``; audited either way."""
    database, filing = _open(config)
    actor = f"cli:{getpass.getuser()}"
    target = f"patient:{patient}"
    try:
        with database.session() as session, session.begin():
            row = session.scalar(select(Patient).where(Patient.external_id == patient))
            if row is None:
                say(_("error: no patient {patient}", patient=repr(patient)), file=sys.stderr)
                return 1
            if deidentified and not has_consent(session, row.id, CONSENT_EXPORT):
                detail = {"format": "fhir", "reason": "no consent"}
                AuditLog().append(session, actor, "record.export_refused", target, detail)
                say(_("error: no export consent is recorded for this patient"), file=sys.stderr)
                return 1
            pseudo = Pseudonymizer() if deidentified else None
            try:
                result = bundle_builder(filing.store).build(session, row, pseudonymizer=pseudo)
            except ExportLeak as exc:
                say(_("error: {problem}", problem=str(exc)), file=sys.stderr)
                return 1
            AuditLog().append(session, actor, "record.export", target, fhir_detail(result))
        partial = out.with_name(out.name + ".partial")  # written after its entry commits
        partial.write_bytes(result.data)
        partial.replace(out)
        resources = sum(result.counts.values())
        say(_("wrote {path}: {count} resources", path=out, count=resources))
        for reason in result.left_out:
            say(_("  left out: {reason}", reason=reason))
        return 0
    finally:
        database.close()
