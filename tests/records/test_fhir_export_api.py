"""FHIR out through the API (grant-checked, consent for de-identified, audited) and the CLI."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from clinicam import tomlwrite
from server.audit.log import AuditEntry
from server.db import Database, open_database
from server.records.blob_stores import open_blob_store
from server.records.deid import scan_for_identifiers
from tests.records.api_helpers import png_bytes, records_config, running_site
from tests.records.fhir_export_helpers import (
    IDENTIFIER,
    NEEDLES,
    file_everything,
    filing_for,
    record_summary,
)


def _last_entry(database: Database, actor_prefix: str) -> AuditEntry:
    with database.session() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()))
        return next(e for e in entries if e.actor.startswith(actor_prefix))


async def test_fhir_export_is_grant_checked_consented_and_audited(tmp_path: Path) -> None:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with running_site(config) as site:
        alice, carol = await site.user("alice"), await site.user("carol")
        granted = await alice.access("P-1", ("view", "edit"))
        base = f"/api/patients/{granted['patient_id']}"
        resp = await alice.request("POST", base + "/records", data=png_bytes())
        assert resp.status == 201
        note = {"note": "Jane Hill (P-1) seen on 2025-03-02", "pulse": 72}
        assert (await alice.request("POST", base + "/emr", json={"fields": note})).status == 201

        resp = await carol.request("GET", base + "/fhir")  # no grant: like every other read
        assert resp.status == 404
        assert _last_entry(site.database, "carol").action == "access.denied"

        resp = await alice.request("GET", base + "/fhir")
        assert resp.status == 200 and resp.content_type == "application/fhir+json"
        assert 'filename="P-1.fhir.json"' in resp.headers["Content-Disposition"]
        data = await resp.read()
        Bundle.model_validate_json(data)
        kinds = [e["resource"]["resourceType"] for e in json.loads(data)["entry"]]
        assert kinds.count("Media") == 1 and kinds.count("Observation") == 1
        entry = _last_entry(site.database, "alice")
        assert entry.action == "record.export" and entry.target == "patient:P-1"
        assert entry.detail["format"] == "fhir" and entry.detail["deidentified"] is False

        resp = await alice.request("GET", base + "/fhir?deidentified=true")
        assert resp.status == 409 and "consent" in (await resp.json())["error"]
        assert _last_entry(site.database, "alice").action == "record.export_refused"
        consent = {"purpose": "export", "granted": True}
        assert (await alice.request("POST", base + "/consent", json=consent)).status == 201
        resp = await alice.request("GET", base + "/fhir?deidentified=true")
        assert resp.status == 200
        data = await resp.read()
        assert scan_for_identifiers(data, NEEDLES) == []
        media = next(e["resource"] for e in json.loads(data)["entry"] if "content" in e["resource"])
        assert scan_for_identifiers(base64.b64decode(media["content"]["data"]), NEEDLES) == []
        entry = _last_entry(site.database, "alice")
        assert entry.action == "record.export" and entry.detail["deidentified"] is True
        assert entry.detail["patient"].startswith("PATIENT-")


def _toml(tmp_path: Path, name: str) -> tuple[Path, Any]:
    state = tmp_path / name
    config = records_config(state, f"sqlite:///{state / 'db.sqlite'}")
    path = tmp_path / f"{name}.toml"
    path.write_text(tomlwrite.dumps(config.model_dump(mode="json", exclude_none=True)))
    return path, config


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "clinicam_app", "records", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_cli_export_then_import_into_an_empty_site(tmp_path: Path) -> None:
    toml, config = _toml(tmp_path, "hospital")
    source = open_database(str(config.database_url))
    # The site's own store: the CLI reads what was filed (on SeaweedFS with CLINICAM_TEST_BLOBS=s3).
    file_everything(
        filing_for(source, config.state_dir, open_blob_store(config.blobs, config.state_dir))
    )
    before = record_summary(source, IDENTIFIER)
    out = tmp_path / "p1.fhir.json"
    done = _cli("export-fhir", IDENTIFIER, "--out", str(out), "-c", str(toml))
    assert done.returncode == 0, done.stderr
    Bundle.model_validate_json(out.read_bytes())
    entry = _last_entry(source, "cli:")
    assert entry.action == "record.export" and entry.detail["resources"]["emr_entry"] == 2
    deid = tmp_path / "p1-deid.fhir.json"
    done = _cli("export-fhir", IDENTIFIER, "--out", str(deid), "--deidentified", "-c", str(toml))
    assert done.returncode == 0, done.stderr
    assert scan_for_identifiers(deid.read_bytes(), NEEDLES) == []
    done = _cli("export-fhir", "P-404", "--out", str(tmp_path / "x.json"), "-c", str(toml))
    assert done.returncode == 1 and not (tmp_path / "x.json").exists()
    source.close()

    empty_toml, empty = _toml(tmp_path, "empty")
    done = _cli("import-fhir", str(out), "--create-patients", "-c", str(empty_toml))
    assert done.returncode == 0, done.stdout + done.stderr
    site = open_database(str(empty.database_url))
    try:
        assert record_summary(site, IDENTIFIER) == before
    finally:
        site.close()
