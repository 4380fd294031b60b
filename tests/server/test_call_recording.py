"""The whole call recorded (issue 20, O4), through the real media hub.

A server on loopback, two experts as aiortc clients (tests/expert_client.py), each
sending a webcam and a microphone that hums its own tone. With the patient's recording
consent the call is stored as segments that play back with pictures and both voices
(an FFT of the replay finds both tones); without it nothing is stored and the room says
so. A viewer without a grant gets 404, every replay and export is audited.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from server.archive.calls import CallSegment
from server.config import ServerConfig
from server.records.deid import scan_for_identifiers
from tests.expert_client import ExpertClient, SyntheticWebcam, ToneMicrophone
from tests.records.api_helpers import (
    PASSWORD,
    Site,
    audit_actions,
    count_rows,
    records_config,
    running_site,
)

TONES = {"alice": 440.0, "bob": 1250.0}


def _config(tmp_path: Path) -> ServerConfig:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    return ServerConfig.model_validate(
        {
            **config.model_dump(),
            "ice": {"loopback_only": True},
            "live": {"width": 640, "height": 360, "fps": 10},
            "recording": {"segment_seconds": 2.0, "fps": 10},
        }
    )


async def _until(predicate: Callable[[], Any], what: str, timeout_s: float = 60.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with running_site(_config(tmp_path)) as running:
        yield running


async def _consult(site: Site) -> list[ExpertClient]:
    url = str(site.server.make_url("")).rstrip("/")
    experts = []
    for user, tone in TONES.items():
        expert = ExpertClient(url, user, PASSWORD)
        experts.append(expert)
        await expert.login()
        await expert.join("c1", SyntheticWebcam(320, 240, 10), ToneMicrophone(tone))
    for expert in experts:
        await expert.until_frames(5)
    return experts


def _peak_power(samples: np.ndarray, rate: int, freq: float) -> float:
    """Share of the signal's power within ±20 Hz of ``freq``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    band = (freqs > freq - 20) & (freqs < freq + 20)
    return float(spectrum[band].sum() / spectrum.sum())


def _decode(data: bytes) -> tuple[list[av.VideoFrame], np.ndarray, int]:
    with av.open(io.BytesIO(data)) as container:
        frames: list[av.VideoFrame] = []
        pcm: list[np.ndarray] = []
        rate = 48_000
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                frames.append(frame)
            else:
                rate = frame.sample_rate
                pcm.append(frame.to_ndarray().reshape(-1))
    return frames, np.concatenate(pcm) if pcm else np.zeros(0), rate


async def test_consented_call_is_recorded_and_replays_with_every_voice(site: Site) -> None:
    alice = await site.user("alice")
    granted = await alice.access("P-1", ("view", "edit"))
    base = f"/api/patients/{granted['patient_id']}"
    resp = await alice.request(
        "POST", base + "/consent", json={"purpose": "recording", "granted": True}
    )
    assert resp.status == 201
    experts = await _consult(site)
    try:
        await _until(lambda: experts[0].state.get("call_recording") == "recording", "indicator")
        await _until(lambda: count_rows(site.database, CallSegment) >= 3, "three segments")
        # The clinic station's composite and page say so too (no appliance streams here:
        # it is the call's recording, not the archive's).
        (room,) = site.state.rooms.rooms_for_patient("P-1")
        assert room.recording() and not site.state.archive.recording("cam-1")
        assert [b.text for b in room.badges_for("station:expert:alice")] == ["● Recording"]
    finally:
        for expert in experts:
            await expert.close()
    recorder = site.state.recorder
    assert recorder is not None
    await recorder.end("c1")

    resp = await alice.request("GET", base + "/recordings")
    assert resp.status == 200
    (recording,) = (await resp.json())["recordings"]
    assert recording["consultation"] == "c1" and recording["segments"] >= 3
    resp = await alice.request("GET", f"{base}/recordings/{recording['id']}/video")
    assert resp.status == 200 and resp.content_type == "video/mp4"
    frames, pcm, rate = _decode(await resp.read())
    assert len(frames) >= 40 and (frames[0].width, frames[0].height) == (640, 360)
    middle = pcm[len(pcm) // 4 : 3 * len(pcm) // 4].astype(np.float64)
    for user, tone in TONES.items():
        assert _peak_power(middle, rate, tone) > 0.1, f"{user}'s voice is not in the recording"
    assert "recording.replay" in audit_actions(site.database, "alice")

    # A de-identified export needs export consent, then carries no identifier.
    export = f"{base}/recordings/{recording['id']}/export"
    assert (await alice.request("GET", export)).status == 409
    await alice.request("POST", base + "/consent", json={"purpose": "export", "granted": True})
    resp = await alice.request("GET", export)
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    assert "P-1" not in resp.headers["Content-Disposition"]
    data = await resp.read()
    with av.open(io.BytesIO(data)) as exported:
        tags = [exported.metadata, *(s.metadata for s in exported.streams)]
    assert scan_for_identifiers(repr(tags).encode(), ["P-1", "Jane Hill"]) == []
    assert len(_decode(data)[0]) == len(frames)
    assert audit_actions(site.database, "alice")[-1] == "recording.export"

    # Without a grant the recording does not exist for the viewer.
    carol = await site.user("carol")
    for path in ("/recordings", f"/recordings/{recording['id']}/video"):
        assert (await carol.request("GET", base + path)).status == 404


async def test_without_consent_nothing_is_recorded(site: Site) -> None:
    experts = await _consult(site)
    try:
        await _until(lambda: experts[0].state.get("call_recording") == "no_consent", "the note")
        await experts[0].until_frames(40)  # four seconds of call: two segments, had it recorded
    finally:
        for expert in experts:
            await expert.close()
    assert count_rows(site.database, CallSegment) == 0
    (room,) = site.state.rooms.rooms_for_patient("P-1")
    assert not room.recording() and room.badges_for("station:expert:alice") == []
    folder = site.state_dir / "recordings" / "c1"
    assert not folder.exists() or not any(folder.iterdir())
    assert "recording.not_consented" in audit_actions(site.database, "server")
