"""The whole call recorded (issue 20, O4), played back in real Chromium.

The demo runs (server, broker, simulated appliance). The chair records the patient's
consent to recording on the records page; two experts (aiortc clients, each microphone
humming its own tone) hold the consultation for a few seconds; the chair then finds the
recording in the patient's archive section and plays it in the page's <video>. The page
measures what it plays: the picture's size and decoded frames, and, through a WebAudio
analyser on the <video>, both experts' tones standing well above the noise floor.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from clinicam.ice import restrict_ice_to_loopback
from tests.expert_client import ExpertClient, SyntheticWebcam, ToneMicrophone
from tests.helpers import CHROMIUM, CHROMIUM_ARGS, running_demo

pytestmark = pytest.mark.e2e

PASSWORD = "recorded with consent"
TIMEOUT = 20_000
TONES = {"demo": 540.0, "expert2": 1170.0}
CALL_S = 7.0
HEARD_DB = 20.0

# Median level (dB) of each FFT bin over ~3 s of what the <video> plays.
LISTEN_JS = """async () => {
  const video = document.getElementById('archive-video');
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  ctx.createMediaElementSource(video).connect(analyser);
  analyser.connect(ctx.destination);
  await ctx.resume();
  const reads = [];
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if (video.paused || video.ended) continue;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    reads.push(Array.from(bins));
  }
  const median = [];
  for (let b = 0; b < analyser.frequencyBinCount; b++) {
    const v = reads.map((r) => r[b]).sort((x, y) => x - y);
    median.push(v.length ? v[Math.floor(v.length / 2)] : -200);
  }
  return {rate: ctx.sampleRate, size: analyser.fftSize, reads: reads.length, median};
}"""


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, demo_database: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("recording-demo") / "state"
    env = {"CLINICAM_SERVER__RECORDING__SEGMENT_SECONDS": "2"}
    with running_demo(state, PASSWORD, "--experts", "2", *demo_database, env=env) as info:
        yield info


def _hold_consultation(url: str) -> list[str]:
    """Both experts in the call for ``CALL_S`` seconds; what their rooms said about
    recording (in a thread of its own: Playwright's sync API owns this one's loop)."""
    said: list[str] = []

    async def call() -> None:
        restrict_ice_to_loopback()  # the demo listens on loopback only, as its browsers do
        experts = [ExpertClient(url, user, PASSWORD) for user in TONES]
        try:
            for expert, tone in zip(experts, TONES.values(), strict=True):
                await expert.login()
                await expert.join(
                    "demo-consultation", SyntheticWebcam(320, 240, 10), ToneMicrophone(tone)
                )
            await experts[0].until_frames(10)
            await asyncio.sleep(CALL_S)
            said.append(str(experts[0].state.get("call_recording")))
        finally:
            for expert in experts:
                await expert.close()

    thread = threading.Thread(target=lambda: asyncio.run(call()))
    thread.start()
    thread.join(timeout=120)
    return said


def test_a_consented_call_plays_back_with_picture_and_both_voices(demo: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT)
        page.goto(demo["url"] + "/login")
        page.fill("#username", "demo")
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_url(demo["url"] + "/")
        records = demo["url"] + "/records?patient=P-0001"
        page.goto(records)
        page.wait_for_selector("#no-access", state="visible")
        page.fill("#access-reason", "recorded consultation")
        page.click("#request-edit")
        page.wait_for_selector("#records", state="visible")
        page.check("#consent-recording")
        page.wait_for_function("() => !document.getElementById('consent-recording').disabled")
        assert page.is_checked("#consent-recording")

        assert _hold_consultation(demo["url"]) == ["recording"]

        page.goto(records)
        page.wait_for_selector("#recordings-list li button", timeout=30_000)
        assert "demo-consultation" in page.inner_text("#recordings-list li")
        page.locator("#recordings-list li button").first.click()
        page.wait_for_function(
            "() => { const v = document.getElementById('archive-video');"
            " return v.readyState >= 2 && v.videoWidth > 0; }"
        )
        heard = page.evaluate(LISTEN_JS)
        video = page.evaluate(
            "() => { const v = document.getElementById('archive-video');"
            " return [v.videoWidth, v.videoHeight, v.duration,"
            " v.getVideoPlaybackQuality().totalVideoFrames]; }"
        )
        browser.close()
    width, height, duration, frames = video
    assert (width, height) == (640, 360)
    assert duration > CALL_S - 2 and frames >= 20
    assert heard["reads"] >= 15
    median = heard["median"]
    floor = sorted(median)[len(median) // 2]
    hz_per_bin = heard["rate"] / heard["size"]
    for user, tone in TONES.items():
        b = round(tone / hz_per_bin)
        level = max(median[b - 2 : b + 3])
        assert level > floor + HEARD_DB, f"{user}'s tone: {level:.0f} dB, floor {floor:.0f} dB"
