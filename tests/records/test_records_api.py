"""Records API against a real server and database: grants decide what anyone sees.

Each refusal test checks three things: the answer, that nothing changed, and that the
attempt is in the audit log. Runs on SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from aiohttp import ClientSession
from pydicom.data import get_testdata_file

from server.records.models import ClinicalPhoto, CtImage, EmrEntry, VoiceNote
from tests.records import api_helpers
from tests.records.api_helpers import (
    Site,
    User,
    audit_actions,
    count_rows,
    png_bytes,
    records_config,
    running_site,
)


@pytest.fixture
async def site(tmp_path: Path, database_url: str) -> AsyncIterator[Site]:
    async with running_site(records_config(tmp_path, database_url)) as running:
        yield running


async def _upload(user: User, pid: int, data: bytes, **query: str) -> tuple[int, dict[str, Any]]:
    resp = await user.request("POST", f"/api/patients/{pid}/records", params=query, data=data)
    return resp.status, await resp.json()


async def test_rule_grants_view_and_the_token_is_scoped_to_one_patient(site: Site) -> None:
    bob = await site.user("bob")
    ids = site.patient_ids()
    granted = await bob.access("P-1")
    assert granted["http_status"] == 201 and granted["operations"] == ["view"]
    assert granted["basis"] == "access rule 2"
    resp = await bob.request("GET", f"/api/patients/{ids['P-1']}/records")
    assert resp.status == 200
    body = await resp.json()
    assert body["patient"]["name"] == "Jane Hill" and body["access"]["operations"] == ["view"]
    # The cookie is scoped to P-1's path: P-2 is unreachable without its own grant.
    resp = await bob.request("GET", f"/api/patients/{ids['P-2']}/records")
    assert resp.status == 404
    # A program can present the token in a header instead of the cookie.
    fresh = ClientSession()
    try:
        resp = await fresh.get(bob.url(f"/api/patients/{ids['P-1']}/records"))
        assert resp.status == 401  # no session: the token alone is not enough
    finally:
        await fresh.close()


async def test_1_view_only_grant_cannot_edit(site: Site) -> None:
    bob = await site.user("bob")
    pid = site.patient_ids()["P-1"]
    await bob.access("P-1")
    before = count_rows(site.database, EmrEntry), count_rows(site.database, ClinicalPhoto)
    resp = await bob.request("POST", f"/api/patients/{pid}/emr", json={"fields": {"bp": "120/80"}})
    assert resp.status == 403 and "edit" in (await resp.json())["error"]
    status, _ = await _upload(bob, pid, png_bytes())
    assert status == 403
    assert (count_rows(site.database, EmrEntry), count_rows(site.database, ClinicalPhoto)) == before
    assert audit_actions(site.database, "bob").count("access.denied") == 2


async def test_2_no_grant_means_not_found(site: Site) -> None:
    carol = await site.user("carol")
    ids = site.patient_ids()
    for pid in (ids["P-1"], 999_999):  # existing and non-existent look the same
        resp = await carol.request("GET", f"/api/patients/{pid}/records")
        assert resp.status == 404
        assert (await resp.json())["error"] == "no such patient, or no current access grant for it"
    assert audit_actions(site.database, "carol").count("access.denied") == 2
    # Asking without a matching rule leaves a pending request, not access.
    pending = await carol.access("P-1")
    assert pending["http_status"] == 202 and pending["status"] == "pending"
    resp = await carol.request("GET", f"/api/patients/{ids['P-1']}/records")
    assert resp.status == 404


async def test_3_another_patients_record_id_is_not_found(site: Site) -> None:
    alice, bob = await site.user("alice"), await site.user("bob")
    ids = site.patient_ids()
    await bob.access("P-2", ("view", "edit"))
    status, photo = await _upload(bob, ids["P-2"], png_bytes())
    assert status == 201
    await alice.access("P-1")
    path = f"/api/patients/{ids['P-1']}/records/clinical_photo/{photo['id']}"
    for suffix in ("", "/content", "/thumbnail"):
        resp = await alice.request("GET", path + suffix)
        assert resp.status == 404
    assert audit_actions(site.database, "alice").count("access.denied") == 3


async def test_4_revocation_takes_effect_on_the_next_request(site: Site) -> None:
    bob, root = await site.user("bob"), await site.user("root")
    pid = site.patient_ids()["P-1"]
    granted = await bob.access("P-1")
    assert (await bob.request("GET", f"/api/patients/{pid}/records")).status == 200
    resp = await root.request("POST", f"/api/admin/grants/{granted['grant_id']}/revoke")
    assert resp.status == 200 and (await resp.json())["revoked_by"] == "root"
    assert (await bob.request("GET", f"/api/patients/{pid}/records")).status == 404
    assert "access.revoked" in audit_actions(site.database, "root")
    assert audit_actions(site.database, "bob")[-1] == "access.denied"
    # Only admins revoke.
    resp = await bob.request("POST", f"/api/admin/grants/{granted['grant_id']}/revoke")
    assert resp.status == 403


async def test_5_decompression_bomb_is_refused(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.access("P-1", ("view", "edit"))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * 30_000
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(200)) + compressor.flush()
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    status, body = await _upload(alice, pid, bomb, category="clinical_photo")
    assert status == 422 and "30000" in body["error"].replace(",", "").replace(" ", "")
    assert count_rows(site.database, ClinicalPhoto) == 0
    assert "record.upload_refused" in audit_actions(site.database, "alice")


async def test_6_oversized_body_is_413_and_nothing_is_kept(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.access("P-1", ("view", "edit"))
    status, body = await _upload(alice, pid, os.urandom(3 * 1024 * 1024))
    assert status == 413 and "2 MB" in body["error"]  # refused from Content-Length

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while streaming
        for _ in range(48):
            yield os.urandom(64 * 1024)

    resp = await alice.request("POST", f"/api/patients/{pid}/records", data=chunks())
    assert resp.status == 413
    assert count_rows(site.database, ClinicalPhoto) == 0
    staging = site.state_dir / "staging"
    assert not staging.exists() or list(staging.iterdir()) == []


async def test_7_client_file_names_are_never_paths(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.access("P-1", ("view", "edit"))
    status, body = await _upload(alice, pid, png_bytes(), title="../../x.py")
    assert status == 201
    assert "/" not in body["title"] and body["title"].endswith("x.py")
    assert not list(site.state_dir.parent.rglob("x.py"))
    if api_helpers.SUITE_BLOBS is None:  # the local store (CLINICAM_TEST_BLOBS unset)
        stored = list((site.state_dir / "blobs").rglob(body["sha256"]))
        assert len(stored) == 1 and stored[0].name == body["sha256"]
    resp = await alice.request(
        "GET", f"/api/patients/{pid}/records/clinical_photo/{body['id']}/content"
    )
    assert resp.status == 200 and "x.py" not in resp.headers["Content-Disposition"]


async def test_8_non_dicom_declared_ct_is_422(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.access("P-1", ("view", "edit"))
    status, body = await _upload(alice, pid, png_bytes(), category="ct_image")
    assert status == 422 and "DICOM" in body["error"]
    assert count_rows(site.database, CtImage) == 0
    assert "record.upload_refused" in audit_actions(site.database, "alice")


async def test_9_garbage_wav_is_422(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.access("P-1", ("view", "edit"))
    garbage = b"RIFF" + struct.pack("<I", 1000) + b"WAVE" + os.urandom(200)
    status, body = await _upload(alice, pid, garbage, category="voice_note", title="note.wav")
    assert status == 422 and "WAV" in body["error"]
    assert count_rows(site.database, VoiceNote) == 0


async def test_10_login_throttle_answers_alike_for_known_and_unknown_users(site: Site) -> None:
    answers: list[tuple[int, str]] = []
    async with ClientSession() as http:
        for _ in range(10):  # 20 wrong passwords, alternating a real and an unknown name
            for name in ("alice", "nobody-here"):
                resp = await http.post(
                    str(site.server.make_url("/api/login")),
                    json={"username": name, "password": "wrong"},
                )
                error = (await resp.json())["error"]
                answers.append((resp.status, error.split(";")[0]))
        # The name makes no difference: five failures per (name, address), real or not,
        # are "wrong", then each is throttled alike.
        assert answers[:10] == [(401, "wrong user name or password")] * 10
        assert answers[10:] == [(429, "too many failed logins")] * 10
        # Throttled: even the right password is refused now, and nothing was created.
        resp = await http.post(
            str(site.server.make_url("/api/login")),
            json={"username": "alice", "password": "correct horse battery"},
        )
        assert resp.status == 429
    actions = audit_actions(site.database)
    assert "login" not in actions and actions.count("login.failed") == 10


async def test_11_cross_site_post_without_csrf_is_refused(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.access("P-1", ("view", "edit"))
    resp = await alice.http.post(
        alice.url(f"/api/patients/{pid}/emr"),
        json={"fields": {"note": "forged"}},
        headers={"Origin": "https://evil.example"},
    )
    assert resp.status == 403 and "CSRF" in (await resp.json())["error"]
    assert count_rows(site.database, EmrEntry) == 0


async def test_13_break_glass_needs_a_reason_and_is_flagged(site: Site) -> None:
    carol, root = await site.user("carol"), await site.user("root")
    pid = site.patient_ids()["P-2"]
    resp = await carol.request("POST", "/api/break-glass", json={"patient": "P-2", "reason": ""})
    assert resp.status == 400 and "reason" in (await resp.json())["error"]
    assert (await carol.request("GET", f"/api/patients/{pid}/records")).status == 404
    resp = await carol.request(
        "POST",
        "/api/break-glass",
        json={"patient": "P-2", "reason": "unconscious patient, allergy history needed"},
    )
    assert resp.status == 201
    grant = await resp.json()
    assert grant["break_glass"] is True and grant["basis"] == "break-glass"
    assert (await carol.request("GET", f"/api/patients/{pid}/records")).status == 200
    desk = await (await root.request("GET", "/api/admin/grants")).json()
    assert [g["grant_id"] for g in desk["break_glass_unreviewed"]] == [grant["grant_id"]]
    actions = audit_actions(site.database, "carol")
    assert "access.break_glass_refused" in actions and "access.break_glass" in actions
    from datetime import datetime

    lifetime = datetime.fromisoformat(grant["expires_at"]) - datetime.fromisoformat(
        grant["created_at"]
    )
    assert lifetime.total_seconds() == 60 * 60


async def test_admin_approves_a_pending_request(site: Site) -> None:
    carol, root = await site.user("carol"), await site.user("root")
    pid = site.patient_ids()["P-1"]
    pending = await carol.access("P-1")
    desk = await (await root.request("GET", "/api/admin/grants")).json()
    assert [r["request_id"] for r in desk["requests"]] == [pending["request_id"]]
    resp = await root.request(
        "POST", f"/api/admin/requests/{pending['request_id']}", json={"approve": True}
    )
    assert resp.status == 200 and (await resp.json())["status"] == "granted"
    again = await carol.access("P-2")
    assert again["http_status"] == 202
    assert (await carol.access("P-2"))["request_id"] == again["request_id"]  # no duplicates
    resp = await root.request(
        "POST", f"/api/admin/requests/{again['request_id']}", json={"approve": False}
    )
    assert resp.status == 200
    mine = await (await carol.request("GET", "/api/patients")).json()
    decisions = {p["identifier"]: p["request"] for p in mine["patients"]}
    assert decisions["P-2"]["status"] == "denied" and decisions["P-2"]["decided_by"] == "root"
    assert "access.request_denied" in audit_actions(site.database, "root")
    collected = await carol.access("P-1")  # asking again collects the approved grant
    assert collected["http_status"] == 201 and collected["basis"] == "approved by root"
    assert (await carol.request("GET", f"/api/patients/{pid}/records")).status == 200


async def test_uploads_are_filed_by_content_and_readable(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.access("P-1", ("view", "edit"))
    dataset = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
    dataset.PatientID = "P-1"  # the file names the patient it is filed for
    saved = io.BytesIO()
    dataset.save_as(saved, enforce_file_format=True)
    ct = saved.getvalue()
    status, body = await _upload(alice, pid, ct)
    assert status == 201 and body["category"] == "ct_image" and body["modality"] == "CT"
    render = await alice.request(
        "GET", f"/api/patients/{pid}/records/ct_image/{body['id']}/render?center=40&width=400"
    )
    assert render.status == 200 and (await render.read()).startswith(b"\x89PNG")
    status, _ = await _upload(alice, pid, ct)
    assert status == 409  # the same DICOM instance once
    status, photo = await _upload(alice, pid, png_bytes(320, 240))
    assert status == 201 and photo["category"] == "clinical_photo" and photo["width"] == 320
    thumb = await alice.request(
        "GET", f"/api/patients/{pid}/records/clinical_photo/{photo['id']}/thumbnail"
    )
    assert thumb.status == 200 and thumb.content_type == "image/jpeg"
    resp = await alice.request(
        "POST", f"/api/patients/{pid}/emr", json={"fields": {"bp": "120/80", "pulse": 72}}
    )
    assert resp.status == 201
    listing = await (await alice.request("GET", f"/api/patients/{pid}/records")).json()
    counts = {k: len(v) for k, v in listing["records"].items()}
    assert counts == {
        "clinical_photo": 1,
        "record_scan": 0,
        "ct_image": 1,
        "voice_note": 0,
        "report": 0,
        "emr_entry": 1,
    }
    assert (
        pydicom.dcmread(io.BytesIO(ct)).SOPInstanceUID
        == listing["records"]["ct_image"][0]["instance_uid"]
    )
    actions = audit_actions(site.database, "alice")
    assert actions.count("record.create") == 3 and "record.read" in actions
