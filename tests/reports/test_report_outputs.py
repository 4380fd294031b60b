"""A signed report as PDF (its text extractable, Chinese too) and as FHIR R4 resources."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from server.reports.envelope import verify_envelope
from server.reports.fhir import report_bundle, report_resources
from server.reports.pdf import render_pdf
from server.reports.service import DraftInput
from tests.reports.world import PASSWORD, World, build, png_bytes


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build(tmp_path)


async def _signed(world: World, findings: str) -> bytes:
    given = DraftInput(findings, "复诊 in 4 weeks", [world.photo_id])
    await world.reports.save_draft("chair", world.cid, given)
    signed = await world.reports.sign("chair", world.cid, PASSWORD)
    return (await world.reports.read("chair", world.patient, str(signed["id"]), "pdf")).envelope


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


async def test_pdf_holds_the_findings_and_the_footer(world: World) -> None:
    data = await _signed(world, "Eczema of the left forearm, no infection")
    verified = verify_envelope(data)
    pdf = render_pdf(verified, "en", lambda sha: png_bytes())
    text = _text(pdf)
    assert "Eczema of the left forearm, no infection" in text
    assert "decision support — not a diagnosis" in text
    assert verified.key_id is not None and verified.key_id in text
    assert verified.digest in text
    assert "signature valid" in text


async def test_pdf_renders_chinese_findings_in_either_language(world: World) -> None:
    data = await _signed(world, "左前臂湿疹，无感染")
    verified = verify_envelope(data)
    for locale, heading in (("zh-CN", "会诊报告"), ("en", "Consultation report")):
        text = _text(render_pdf(verified, locale))
        assert "左前臂湿疹，无感染" in text
        assert heading in text
    assert "辅助决策，非诊断" in _text(render_pdf(verified, "zh-CN"))


async def test_a_tampered_envelope_prints_as_invalid(world: World) -> None:
    data = await _signed(world, "Eczema")
    tampered = data.replace(b"Eczema", b"Psoriasis")
    text = _text(render_pdf(verify_envelope(tampered), "en"))
    assert "SIGNATURE INVALID" in text


async def test_fhir_resources_validate_and_link(world: World) -> None:
    data = await _signed(world, "Eczema")
    verified = verify_envelope(data)
    assert verified.envelope is not None
    resources = report_resources(verified.envelope, verified.digest, patient_reference="Patient/7")
    kinds = [r.get_resource_type() for r in resources]
    assert kinds == ["Encounter", "Media", "DiagnosticReport", "Composition"]
    encounter, media, report, composition = resources
    assert report.conclusion == "Eczema"  # type: ignore[attr-defined]
    assert report.media[0].link.reference == f"Media/{media.id}"  # type: ignore[attr-defined]
    assert composition.subject.reference == "Patient/7"  # type: ignore[attr-defined]
    assert composition.encounter.reference == f"Encounter/{encounter.id}"  # type: ignore[attr-defined]
    titles = [s.title for s in composition.section]  # type: ignore[attr-defined]
    assert "Findings" in titles and "Relevance (decision support)" in titles
    bundle = report_bundle(verified.envelope, verified.digest)
    from fhir.resources.R4B.bundle import Bundle

    again = Bundle.model_validate(bundle)  # the downloaded JSON validates as it is
    assert len(again.entry or []) == 4


async def test_a_patients_reports_as_resources_latest_version_only(world: World) -> None:
    from server.reports.fhir import patient_report_resources

    await _signed(world, "Eczema")
    await world.reports.save_draft("chair", world.cid, DraftInput("Psoriasis", "", []))
    await world.reports.sign("chair", world.cid, PASSWORD)
    with world.database.session() as session:
        resources = patient_report_resources(
            session, world.store.blobs, world.patient.id, "Patient/1"
        )
    reports = [r for r in resources if r.get_resource_type() == "DiagnosticReport"]
    assert [r.conclusion for r in reports] == ["Psoriasis"]  # type: ignore[attr-defined]
    assert reports[0].status == "amended"  # type: ignore[attr-defined]
