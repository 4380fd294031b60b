"""The report over HTTP: the chair drafts, ends, signs; readers need a grant (else 404)."""

from __future__ import annotations

import base64
import io

from pypdf import PdfReader

from tests.records.api_helpers import PASSWORD, Site, audit_actions


async def test_chair_signs_and_a_granted_reader_gets_every_form(site: Site) -> None:
    alice = await site.user("alice")  # the chair of c1
    pid = site.patient_ids()["P-1"]
    resp = await alice.request("POST", "/api/consultations/c1/end")
    assert resp.status in (200, 204), await resp.text()
    draft = {"findings": "Eczema, 左前臂", "recommendation": "emollient", "snapshots": []}
    resp = await alice.request("PUT", "/api/consultations/c1/report", json=draft)
    assert resp.status == 200, await resp.text()
    resp = await alice.request("POST", "/api/consultations/c1/report/sign", json={"password": "x"})
    assert resp.status == 403
    resp = await alice.request(
        "POST", "/api/consultations/c1/report/sign", json={"password": PASSWORD}
    )
    assert resp.status == 201, await resp.text()
    rid = (await resp.json())["id"]
    resp = await alice.request(
        "POST", "/api/consultations/c1/report/sign", json={"password": PASSWORD}
    )
    assert resp.status == 409  # signed once

    granted = await alice.access("P-1")
    assert granted["http_status"] == 201
    records = await (await alice.request("GET", f"/api/patients/{pid}/records")).json()
    assert [r["id"] for r in records["records"]["report"]] == [rid]
    body = await (await alice.request("GET", f"/api/patients/{pid}/reports/{rid}")).json()
    assert body["valid"] is True and body["content"]["findings"] == "Eczema, 左前臂"
    assert body["signer"]["username"] == "alice" and len(body["history"]) == 1
    resp = await alice.request("GET", f"/api/patients/{pid}/reports/{rid}/pdf")
    assert resp.headers["Content-Type"] == "application/pdf"
    text = PdfReader(io.BytesIO(await resp.read())).pages[0].extract_text()
    assert "Eczema, 左前臂" in text
    fhir = await (await alice.request("GET", f"/api/patients/{pid}/reports/{rid}/fhir")).json()
    assert fhir["resourceType"] == "Bundle"
    resp = await alice.request("GET", f"/api/patients/{pid}/reports/{rid}/envelope")
    envelope = await resp.read()
    assert envelope.startswith(b'{"content":')
    # the patient's whole record in FHIR carries the signed report itself
    whole = await (await alice.request("GET", f"/api/patients/{pid}/fhir")).json()
    reports = [
        e["resource"]
        for e in whole["entry"]
        if e["resource"]["resourceType"] == "DiagnosticReport"
        and e["resource"].get("code", {}).get("text") == "Consult note"
    ]
    assert len(reports) == 1 and "emollient" in reports[0]["conclusion"]
    assert base64.b64decode(reports[0]["presentedForm"][0]["data"]) == envelope
    actions = audit_actions(site.database, "alice")
    assert {"report.create", "report.sign", "report.sign_refused"} <= set(actions)


async def test_no_grant_is_404_for_every_form(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.request("POST", "/api/consultations/c1/end")
    draft = {"findings": "Eczema", "recommendation": "", "snapshots": []}
    await alice.request("PUT", "/api/consultations/c1/report", json=draft)
    resp = await alice.request(
        "POST", "/api/consultations/c1/report/sign", json={"password": PASSWORD}
    )
    rid = (await resp.json())["id"]
    carol = await site.user("carol")  # an expert with no grant for P-1
    for tail in ("", "/envelope", "/pdf", "/fhir"):
        resp = await carol.request("GET", f"/api/patients/{pid}/reports/{rid}{tail}")
        assert resp.status == 404, tail
    resp = await carol.request("GET", "/api/consultations/c1/report")
    assert resp.status == 403  # not the chair
