"""The records and admin pages in a real browser against the real demo.

One demo (server, broker, simulated appliance) serves the whole module; Chromium
drives the pages like an expert and a records admin would: ask for access, upload
files of every kind, look at them, wait for an admin's approval, break the glass.
"""

from __future__ import annotations

import shutil
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from PIL import Image

from tests.helpers import running_demo

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
TIMEOUT = 15_000  # ms, for anything the server has to do
GARBAGE = b"this is not a recording, just some text pretending to be one\n" * 20
XSS = "<img src=x id=pwned>"

MEAN_GREY_JS = """(id) => {
  const img = document.getElementById(id);
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) sum += d[i];
  return sum / (d.length / 4);
}"""

IMAGE_LOADED_JS = """(sel) => { const i = document.querySelector(sel);
  return !!i && i.complete && i.naturalWidth > 0; }"""


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, demo_database: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("records-demo") / "state"
    with running_demo(state, PASSWORD, "--experts", "2", *demo_database) as info:
        yield info


def _login(browser: Any, demo: dict[str, Any], user: str) -> Any:
    """A fresh browser context (own cookies) signed in as ``user``; returns its page."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    page.goto(demo["url"] + "/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_url(demo["url"] + "/")
    return page


def _files(folder: Path) -> list[Path]:
    from pydicom.data import get_testdata_file

    photo = folder / "wound photo.png"
    Image.radial_gradient("L").convert("RGB").resize((320, 240)).save(photo)
    ct = folder / "CT_small.dcm"
    shutil.copyfile(str(get_testdata_file("CT_small.dcm")), ct)
    note = folder / "note.wav"
    with wave.open(str(note), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10" * 8000)  # 1 s
    bad = folder / "bad.wav"
    bad.write_bytes(GARBAGE)
    return [photo, ct, note, bad]


def _upload_state(page: Any, name: str) -> tuple[str, str]:
    item = page.locator(f'#upload-list li[data-name="{name}"]')
    return item.get_attribute("data-state"), item.locator(".upload-state").inner_text()


def test_chair_gets_access_uploads_and_views_records(
    demo: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    page = _login(browser, demo, demo["username"])
    try:
        page.goto(demo["url"] + "/records?patient=P-0001&consultation=demo-consultation")
        page.wait_for_selector("#no-access", state="visible")
        page.fill("#access-reason", "follow-up of the wound")
        page.click("#request-edit")
        page.wait_for_selector("#records", state="visible")
        assert "P-0001" in page.inner_text("#patient-title")
        assert "view and edit" in page.inner_text("#access-info")
        assert page.is_hidden("#break-glass-banner")

        # four files through the file input: three good ones and a garbage "WAV"; the CT
        # scan names another patient ID (pydicom's sample): the page asks, the user confirms
        asked: list[str] = []

        def confirm(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept()

        page.on("dialog", confirm)
        page.set_input_files("#file-input", [str(p) for p in _files(tmp_path)])
        page.wait_for_function(
            "() => { const items = [...document.querySelectorAll('#upload-list li')];"
            " return items.length === 4"
            " && items.every(li => ['ok', 'error'].includes(li.dataset.state)); }"
        )
        for name in ("wound photo.png", "CT_small.dcm", "note.wav"):
            state, text = _upload_state(page, name)
            assert state == "ok" and text.startswith("✓"), (name, text)
        assert len(asked) == 1 and "1CT1" in asked[0] and "P-0001" in asked[0], asked
        # the garbage file shows exactly what the server says about it
        server_error = page.evaluate(
            """async (body) => {
                const listing = await (await fetch('/api/patients')).json();
                const pid = listing.patients.find((p) => p.identifier === 'P-0001').id;
                const r = await fetch(`/api/patients/${pid}/records?title=bad.wav`, {method: 'POST',
                    body, headers: {'X-CSRF-Token': Api.csrf}});
                return [r.status, (await r.json()).error];
            }""",
            GARBAGE.decode(),
        )
        assert server_error[0] >= 400
        state, text = _upload_state(page, "bad.wav")
        assert state == "error" and text == f"✗ {server_error[1]}", text
        assert "Finished: 4 of 4 files done, 1 not filed" in page.inner_text("#upload-overall")

        # the listing refreshed: a loaded thumbnail, a rendered CT slice, a playable note
        page.wait_for_function(IMAGE_LOADED_JS, arg="#photos img")
        assert page.get_attribute("#photos img", "alt") == "wound photo.png"
        page.wait_for_function(IMAGE_LOADED_JS, arg="#ct-image")
        assert page.locator("#ct-slices li").count() == 1
        audio = page.locator("#voice audio")
        assert audio.count() == 1 and "/voice_note/" in audio.get_attribute("src")
        page.wait_for_function(
            "() => { const a = document.querySelector('#voice audio');"
            " return a.readyState >= 1 && Math.abs(a.duration - 1) < 0.1; }"
        )
        assert page.locator("button.share").count() >= 2  # opened from the consultation
        page.wait_for_selector("#archive-section", state="visible")  # the index answered

        # the photo opens large in an overlay, Escape closes it
        page.click("#photos .thumb-open")
        page.wait_for_function(IMAGE_LOADED_JS, arg="#overlay-image")
        assert page.evaluate("() => document.getElementById('overlay-image').naturalWidth") == 320
        page.keyboard.press("Escape")
        page.wait_for_selector("#overlay", state="hidden")

        # moving the window-centre slider re-renders the slice with that window
        src_before = page.get_attribute("#ct-image", "src")
        grey_before = page.evaluate(MEAN_GREY_JS, "ct-image")
        page.focus("#ct-center")
        page.keyboard.press("End")  # centre 3000: almost everything below it, dark
        page.wait_for_function(
            "() => { const i = document.getElementById('ct-image');"
            " return i.src.includes('center=3000') && i.complete && i.naturalWidth > 0; }"
        )
        assert page.get_attribute("#ct-image", "src") != src_before
        grey_after = page.evaluate(MEAN_GREY_JS, "ct-image")
        assert grey_after < grey_before - 10, (grey_before, grey_after)
        page.click("text=Bone 400/1800")
        page.wait_for_function(
            "() => document.getElementById('ct-image').src.includes('center=400&width=1800')"
        )

        # a record entry with two fields (one of them markup, which must stay text)
        page.fill("#emr-fields .emr-key", "blood pressure")
        page.fill("#emr-fields .emr-value", "120/80")
        page.click("#emr-add-field")
        page.locator("#emr-fields .emr-key").nth(1).fill("note")
        page.locator("#emr-fields .emr-value").nth(1).fill(XSS)
        page.click("#emr-save")
        page.wait_for_selector("#emr-rows tr")
        row = page.inner_text("#emr-rows tr")
        assert "blood pressure:" in row and "120/80" in row and XSS in row
        assert page.locator("#pwned").count() == 0

        # the whole record as one FHIR bundle; the de-identified one waits for consent
        assert page.is_disabled("#fhir-export-deid")
        with page.expect_download() as download:
            page.click("#fhir-export")
        assert download.value.suggested_filename == "P-0001.fhir.json"
        bundle = Bundle.model_validate_json(Path(download.value.path()).read_bytes())
        kinds = [e.resource.get_resource_type() for e in bundle.entry or [] if e.resource]
        assert kinds[:2] == ["Composition", "Patient"] and kinds.count("Observation") == 1
        assert kinds.count("Media") == 3 and kinds.count("ImagingStudy") == 1
        page.wait_for_function(
            "() => document.getElementById('fhir-status').textContent.includes('downloaded')"
        )
    finally:
        page.context.close()


def test_request_waits_for_admin_then_access_ends_on_revoke(
    demo: dict[str, Any], browser: Any
) -> None:
    page = _login(browser, demo, demo["username"])
    admin = _login(browser, demo, "admin")
    try:
        page.goto(demo["url"] + "/records?patient=P-0002")
        page.wait_for_selector("#no-access", state="visible")
        page.fill("#access-reason", "second opinion on the referral")
        page.click("#request-view")
        page.wait_for_selector("#pending", state="visible")
        assert "waiting for an admin" in page.inner_text("#pending-text")
        assert page.is_hidden("#records")

        admin.goto(demo["url"] + "/admin")
        request = admin.locator('#requests tr[data-patient="P-0002"]')
        request.wait_for()
        assert "second opinion on the referral" in request.inner_text()
        request.locator("button.approve").click()
        admin.wait_for_selector("#requests-empty", state="visible")

        page.click("#pending-check")  # (the page also checks by itself every few seconds)
        page.wait_for_selector("#records", state="visible")
        assert "P-0002" in page.inner_text("#patient-title")
        assert page.is_visible("#photos-empty") and page.is_visible("#emr-empty")
        assert page.is_visible("#upload-readonly")  # a view grant: no drop zone
        assert page.is_hidden("#drop-zone") and page.is_hidden("#emr-form")

        # the admin revokes it; the expert's next request finds the access ended
        grant = admin.locator('#grants tr.active[data-patient="P-0002"]')
        admin.click("#refresh")
        grant.locator("button.revoke").click()
        admin.wait_for_selector('#grants tr.active[data-patient="P-0002"]', state="detached")
        page.click("#refresh")
        page.wait_for_selector("#no-access", state="visible")
        assert "access to these records has ended" in page.inner_text("#no-access-why")
        assert page.is_enabled("#request-view") and page.is_hidden("#records")
    finally:
        page.context.close()
        admin.context.close()


def test_break_glass_needs_a_reason_and_is_reported(demo: dict[str, Any], browser: Any) -> None:
    page = _login(browser, demo, "expert2")
    admin = _login(browser, demo, "admin")
    try:
        page.goto(demo["url"] + "/records?patient=P-0002")
        page.wait_for_selector("#no-access", state="visible")
        page.click("#break-glass-box summary")
        assert page.is_disabled("#break-glass")
        page.fill("#break-glass-reason", "   urgent   ")  # under 10 characters once trimmed
        assert page.is_disabled("#break-glass")
        reason = "Unconscious on arrival, need the referral letter now"
        page.fill("#break-glass-reason", reason)
        page.click("#break-glass")
        page.wait_for_selector("#records", state="visible")
        banner = page.inner_text("#break-glass-banner")
        assert "break-glass" in banner and "reported to the admins" in banner

        admin.goto(demo["url"] + "/admin")
        item = admin.locator('#break-glass li[data-patient="P-0002"]')
        item.wait_for()
        assert "expert2" in item.inner_text() and reason in item.inner_text()
        item.locator("button.review").click()
        admin.wait_for_selector('#break-glass li[data-patient="P-0002"]', state="detached")
    finally:
        page.context.close()
        admin.context.close()
