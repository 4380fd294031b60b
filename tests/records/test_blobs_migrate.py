"""``clinicam blobs migrate``: local → SeaweedFS → local keeps every blob, and resumes."""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from clinicam_app.cli import main
from server.audit.log import AuditEntry
from server.db import open_database
from server.records.blob_stores import open_blob_store
from server.records.blobs import LocalBlobStore
from server.records.models import SOURCE_UPLOAD, ClinicalPhoto, Patient
from tests.seaweed import ACCESS_KEY, SECRET_KEY, SeaweedS3


def _toml(path: Path, state: Path, seaweed: SeaweedS3, prefix: str, backend: str) -> Path:
    path.write_text(
        f'state_dir = "{state}"\n'
        f'database_url = "sqlite:///{state / "db.sqlite"}"\n'
        "[blobs]\n"
        f'backend = "{backend}"\n'
        f'endpoint_url = "{seaweed.endpoint_url}"\n'
        f'bucket = "{seaweed.bucket}"\n'
        f'prefix = "{prefix}"\n'
        f'access_key = "{ACCESS_KEY}"\n'
        f'secret_key = "{SECRET_KEY}"\n'
        "part_mb = 5\n"
    )
    return path


def _site(state: Path, contents: list[bytes]) -> list[str]:
    """A database whose photo rows reference ``contents`` in the local store."""
    database = open_database(f"sqlite:///{state / 'db.sqlite'}")
    local = LocalBlobStore(state / "blobs")
    shas = []
    try:
        with database.session() as session:
            patient = Patient(external_id="P-1", display_name="Jane Hill")
            session.add(patient)
            session.flush()
            for content in contents:
                ref = local.put_bytes(content, max_bytes=len(content))
                shas.append(ref.sha256)
                session.add(
                    ClinicalPhoto(
                        patient_id=patient.id,
                        created_by="alice",
                        blob_sha256=ref.sha256,
                        blob_size=ref.size,
                        media_type="image/jpeg",
                        width=1,
                        height=1,
                        taken_at=datetime.now(UTC),
                        source=SOURCE_UPLOAD,
                    )
                )
            session.commit()
    finally:
        database.close()
    return shas


def _audited(state: Path) -> list[dict[str, Any]]:
    database = open_database(f"sqlite:///{state / 'db.sqlite'}")
    try:
        with database.session() as session:
            rows = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "blobs.migrate")
            ).all()
            assert all(row.actor == f"cli:{getpass.getuser()}" for row in rows)
            return [dict(row.detail) for row in rows]
    finally:
        database.close()


def test_migrate_there_and_back_resuming_after_a_failed_copy(
    tmp_path: Path,
    seaweed: SeaweedS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLINICAM_LANG", "en")
    state = tmp_path / "state"
    state.mkdir()
    prefix = seaweed.new_prefix()
    contents = [b"photo one", b"photo two", os.urandom(5 * 1024 * 1024 + 99), b"photo four"]
    shas = _site(state, contents)
    config = _toml(tmp_path / "server.toml", state, seaweed, prefix, "local")
    local = LocalBlobStore(state / "blobs")

    assert main(["blobs", "migrate", "--config", str(config), "--to", "local"]) == 2
    # One source file is damaged: that copy fails, the others go through.
    damaged = local.path_of(shas[1])
    damaged.write_bytes(b"photo 2wo")
    assert main(["blobs", "migrate", "--config", str(config), "--to", "s3"]) == 1
    out = capsys.readouterr()
    assert "3 copied, 0 already there (verified), 1 failed, of 4" in out.out
    assert shas[1] in out.err and "run the same command again" in out.err
    store = open_blob_store(seaweed.config(prefix), state)
    assert [store.exists(sha) for sha in shas] == [True, False, True, True]
    assert len(seaweed.keys(prefix + "blobs/")) == 3  # nothing under the damaged content's hash

    damaged.write_bytes(contents[1])  # repaired: the same command continues
    assert main(["blobs", "migrate", "--config", str(config), "--to", "s3"]) == 0
    out = capsys.readouterr()
    assert "1 copied, 3 already there (verified), 0 failed, of 4" in out.out
    assert '[blobs] backend = "s3"' in out.out
    assert seaweed.uploads(prefix) == [] and seaweed.keys(prefix + "incoming/") == []

    # The site switched to S3; its local folder is gone; then back to local.
    _toml(config, state, seaweed, prefix, "s3")
    shutil.rmtree(state / "blobs")
    assert main(["blobs", "migrate", "--config", str(config), "--to", "local"]) == 0
    assert "4 copied, 0 already there (verified), 0 failed, of 4" in capsys.readouterr().out
    for sha, content in zip(shas, contents, strict=True):
        stored = local.path_of(sha).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == sha and stored == content
    audited = _audited(state)
    assert [(a["to"], a["copied"], a["present"], a["failed"]) for a in audited] == [
        ("s3", 3, 0, 1),
        ("s3", 1, 3, 0),
        ("local", 4, 0, 0),
    ]


def test_migrate_speaks_chinese(
    tmp_path: Path,
    seaweed: SeaweedS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    prefix = seaweed.new_prefix()
    _site(state, [b"photo"])
    config = _toml(tmp_path / "server.toml", state, seaweed, prefix, "local")
    monkeypatch.setenv("CLINICAM_LANG", "zh-CN")
    assert main(["blobs", "migrate", "--config", str(config), "--to", "s3"]) == 0
    out = capsys.readouterr().out
    assert "已复制 1" in out and 'backend = "s3"' in out


def test_server_check_refuses_a_bucket_the_store_refuses(
    tmp_path: Path,
    seaweed: SeaweedS3,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLINICAM_LANG", "en")
    state = tmp_path / "state"
    state.mkdir()
    config = _toml(tmp_path / "server.toml", state, seaweed, "", "s3")
    assert main(["server", "--check", "--config", str(config)]) == 0
    assert "server configuration OK" in capsys.readouterr().out
    wrong = config.read_text().replace(f'"{SECRET_KEY}"', '"not-the-secret"')
    config.write_text(wrong)
    assert main(["server", "--check", "--config", str(config)]) == 2
    assert "refuses bucket" in capsys.readouterr().err
    away = wrong.replace(seaweed.endpoint_url, "http://127.0.0.1:9")
    config.write_text(away)  # not answering: the server starts, uploads are 503s
    assert main(["server", "--check", "--config", str(config)]) == 0
