"""The chair signs a consultation's report once; a change is a new version; any changed
byte fails the check; only the chair, with the right password, signs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.audit.log import AuditLog
from server.domain_errors import Conflict, Forbidden, NotFound
from server.records.models import ConsultationReport
from server.reports.envelope import public_key_of, report_key, verify_envelope
from server.reports.service import AlreadySigned, DraftInput, WrongPassword
from tests.reports.world import PASSWORD, World, build


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> World:
    return build(tmp_path, database_url)  # SQLite and PostgreSQL


def _draft(world: World, findings: str = "eczema of the left forearm") -> DraftInput:
    return DraftInput(findings, "emollient twice a day; review in 4 weeks", [world.photo_id])


async def test_sign_once_then_refused_until_changed(world: World) -> None:
    await world.reports.save_draft("chair", world.cid, _draft(world))
    first = await world.reports.sign("chair", world.cid, PASSWORD)
    assert first["version"] == 1 and first["supersedes"] is None
    with pytest.raises(AlreadySigned):
        await world.reports.sign("chair", world.cid, PASSWORD)
    assert world.actions().count("report.sign") == 1
    assert "report.create" in world.actions()


async def test_a_change_after_signing_is_a_new_version_that_supersedes(world: World) -> None:
    await world.reports.save_draft("chair", world.cid, _draft(world))
    first = await world.reports.sign("chair", world.cid, PASSWORD)
    await world.reports.save_draft("chair", world.cid, _draft(world, "psoriasis, not eczema"))
    second = await world.reports.sign("chair", world.cid, PASSWORD)
    assert second["version"] == 2
    assert second["supersedes"] == first["digest"]
    history = await world.reports.history(world.patient, world.cid)
    assert [h["version"] for h in history] == [1, 2]  # the old version stays
    old = await world.reports.read("chair", world.patient, str(first["id"]), "view")
    new = await world.reports.read("chair", world.patient, str(second["id"]), "view")
    assert old.verified.valid and new.verified.valid
    assert old.verified.envelope is not None and new.verified.envelope is not None
    assert old.verified.envelope["content"]["findings"] == "eczema of the left forearm"
    assert new.verified.envelope["supersedes"] == old.verified.digest
    assert world.actions().count("report.new_version") == 1
    assert "report.update" in world.actions()


async def test_the_envelope_holds_what_the_report_must_say(world: World) -> None:
    await world.reports.save_draft("chair", world.cid, _draft(world))
    signed = await world.reports.sign("chair", world.cid, PASSWORD)
    report = await world.reports.read("alice", world.patient, str(signed["id"]), "view")
    envelope = report.verified.envelope
    assert envelope is not None
    c = envelope["content"]
    assert envelope["signer"] == {"username": "chair", "display_name": "Chair 医生"}
    assert c["patient"]["identifier"] == "P-1"
    assert c["participants"]["chair"]["username"] == "chair"
    assert {e["username"] for e in c["participants"]["experts"]} == {"alice", "bob"}
    assert c["participants"]["clinic"] == "Hill Clinic"
    assert c["times"]["started_at"].startswith("2026-11-30T09:00")
    assert c["reason"] == "itching rash on the forearm"
    assert c["notes"] == "Alice: looks like eczema\n李: 同意"
    assert [d["label"] for d in c["diagnoses"]] == ["benign"]
    assert [s["id"] for s in c["snapshots"]] == [world.photo_id]
    assert c["relevance"]["notice"]["en"] == "decision support — not a diagnosis"
    assert c["relevance"]["notice"]["zh-CN"] == "辅助决策，非诊断"
    key = report_key(world.reports._key_file)
    assert envelope["key_id"] == report.verified.key_id
    assert verify_envelope(report.envelope, key.public_key()).valid


async def test_audit_excerpt_holds_who_opened_what_during_the_call(world: World) -> None:
    log = AuditLog()
    with world.database.session() as session, session.begin():
        log.clock = lambda: datetime(2026, 11, 30, 9, 10, tzinfo=UTC)
        log.append(session, "alice", "record.read", "patient:P-1", {"what": "content", "id": 1})
        log.clock = lambda: datetime(2026, 11, 30, 11, 0, tzinfo=UTC)  # after the call
        log.append(session, "bob", "record.read", "patient:P-1", {"what": "content", "id": 2})
    await world.reports.save_draft("chair", world.cid, _draft(world))
    signed = await world.reports.sign("chair", world.cid, PASSWORD)
    report = await world.reports.read("chair", world.patient, str(signed["id"]), "view")
    assert report.verified.envelope is not None
    content = report.verified.envelope["content"]
    lines = content["audit"]
    assert [(a["actor"], a["what"].get("id")) for a in lines] == [("alice", 1)]
    joined = {e["username"]: e["joined"] for e in content["participants"]["experts"]}
    assert joined == {"alice": True, "bob": False}


async def test_any_changed_byte_fails_the_check(world: World) -> None:
    await world.reports.save_draft("chair", world.cid, _draft(world))
    signed = await world.reports.sign("chair", world.cid, PASSWORD)
    data = (await world.reports.read("chair", world.patient, str(signed["id"]), "v")).envelope
    assert verify_envelope(data).valid
    for index in range(0, len(data), max(1, len(data) // 97)):
        changed = bytearray(data)
        changed[index] = (changed[index] + 1) % 256
        assert not verify_envelope(bytes(changed)).valid, index
    reworded = json.loads(data)
    reworded["content"]["findings"] = "nothing"
    assert not verify_envelope(json.dumps(reworded).encode()).valid


async def test_another_key_is_refused_when_a_key_is_given(world: World, tmp_path: Path) -> None:
    await world.reports.save_draft("chair", world.cid, _draft(world))
    signed = await world.reports.sign("chair", world.cid, PASSWORD)
    data = (await world.reports.read("chair", world.patient, str(signed["id"]), "v")).envelope
    other = report_key(tmp_path / "other.key", create=True)
    assert not verify_envelope(data, other.public_key()).valid
    pem = (tmp_path / "keys" / "report-signing.pub").read_bytes()
    assert verify_envelope(data, public_key_of(pem)).valid


async def test_only_the_consultations_chair_signs(world: World) -> None:
    await world.reports.save_draft("chair", world.cid, _draft(world))
    for who in ("chair2", "alice", "nurse"):  # another chair, an expert, clinic staff
        with pytest.raises(Forbidden):
            await world.reports.sign(who, world.cid, PASSWORD)
        with pytest.raises(Forbidden):
            await world.reports.save_draft(who, world.cid, _draft(world))
    with world.database.session() as session:
        assert session.scalars(select(ConsultationReport)).all() == []


async def test_a_wrong_password_signs_nothing_and_is_audited(world: World) -> None:
    await world.reports.save_draft("chair", world.cid, _draft(world))
    with pytest.raises(WrongPassword):
        await world.reports.sign("chair", world.cid, "not the password")
    with world.database.session() as session:
        assert session.scalars(select(ConsultationReport)).all() == []
    assert "report.sign_refused" in world.actions()
    assert (await world.reports.sign("chair", world.cid, PASSWORD))["version"] == 1


async def test_a_live_consultation_is_ended_before_signing(world: World) -> None:
    from server.directory.models import LIVE, ConsultationRow

    with world.database.session() as session, session.begin():
        row = session.get(ConsultationRow, world.cid)
        assert row is not None
        row.state = LIVE
    await world.reports.save_draft("chair", world.cid, _draft(world))  # drafting is fine
    with pytest.raises(Conflict):
        await world.reports.sign("chair", world.cid, PASSWORD)


async def test_another_patients_report_is_not_found(world: World) -> None:
    from server.records.models import Patient

    await world.reports.save_draft("chair", world.cid, _draft(world))
    signed = await world.reports.sign("chair", world.cid, PASSWORD)
    with world.database.session() as session, session.begin():
        other = Patient(external_id="P-2", display_name="Other")
        session.add(other)
        session.flush()
        session.expunge(other)
    with pytest.raises(NotFound):
        await world.reports.read("alice", other, str(signed["id"]), "view")
    with pytest.raises(NotFound):
        await world.reports.read("alice", world.patient, "x1", "view")
    assert "access.denied" in world.actions()


async def test_erasing_the_patient_removes_reports_and_drafts(world: World) -> None:
    from server.erasure import erase_patient
    from server.records.models import Patient, ReportDraft

    await world.reports.save_draft("chair", world.cid, _draft(world))
    signed = await world.reports.sign("chair", world.cid, PASSWORD)
    with world.database.session() as session, session.begin():
        patient = session.get(Patient, world.patient.id)
        assert patient is not None
        shas, _segments = erase_patient(session, patient)
    assert signed["digest"] in shas  # the envelope's blob is collected with the rest
    with world.database.session() as session:
        assert session.scalars(select(ConsultationReport)).all() == []
        assert session.scalars(select(ReportDraft)).all() == []


async def test_a_failing_audit_write_files_no_report(world: World) -> None:
    from server.audit.trail import AuditTrail

    class FailingTrail(AuditTrail):
        def write(
            self, session: Any, actor: str, action: str, target: str, detail: Any = None
        ) -> None:
            if action.startswith("report.sign"):
                raise RuntimeError("audit log unavailable")
            super().write(session, actor, action, target, detail)

    await world.reports.save_draft("chair", world.cid, _draft(world))
    world.reports._audit = FailingTrail(world.database)
    with pytest.raises(RuntimeError):
        await world.reports.sign("chair", world.cid, PASSWORD)
    with world.database.session() as session:
        assert session.scalars(select(ConsultationReport)).all() == []
    world.reports._audit = world.audit
    assert (await world.reports.sign("chair", world.cid, PASSWORD))["version"] == 1


async def test_the_relevance_view_carries_its_model_card_summary(world: World) -> None:
    from server.relevance.models import ModelVersion, RelevanceResult

    card = {
        "intended_use": "decision support for skin lesions",
        "training_data": {"emr_entry": {"source": "Wisconsin diagnostic breast cancer (UCI)"}},
    }
    with world.database.session() as session, session.begin():
        session.add(ModelVersion(version="v-card", path="/nowhere", card=card, status="retired"))
        session.add(
            RelevanceResult(
                patient_id=world.patient.id,
                consultation_id=world.cid,
                model_version="v-card",
                produced_by="server",
                labels=["benign", "malignant"],
                values=[0.8, 0.2],
                inputs=[],
                requested_by="chair",
            )
        )
    await world.reports.save_draft("chair", world.cid, _draft(world))
    signed = await world.reports.sign("chair", world.cid, PASSWORD)
    report = await world.reports.read("chair", world.patient, str(signed["id"]), "view")
    assert report.verified.envelope is not None
    relevance = report.verified.envelope["content"]["relevance"]
    result = relevance["result"]
    assert result["values"] == {"benign": 0.8, "malignant": 0.2}
    assert result["model_version"] == "v-card" and result["card_known"]
    assert "Wisconsin diagnostic breast cancer" in result["training_data"]["en"]
    assert "decision support — not a diagnosis" in result["caption"]["en"]
    assert "辅助决策，非诊断" in result["caption"]["zh-CN"]
