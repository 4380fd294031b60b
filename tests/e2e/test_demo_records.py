"""The running demo archives live video, files snapshots, computes relevance (R6, R7, R13).

Real processes throughout: mosquitto, the server and the simulated appliance from
``clinicam demo``; the archive is the server's remux of the H.264 the appliance sends,
and the snapshot travels as a camera command over MQTT and back as an HTTPS upload.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import av
import pytest

from tests.helpers import demo_info, launch_demo, stop_demo

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("archive") / "state"
    proc = launch_demo(
        state,
        PASSWORD,
        env={"CLINICAM_SERVER__ARCHIVE__SEGMENT_SECONDS": "3"},
        log=state.parent / "demo.log",
    )
    try:
        yield demo_info(proc, state)
    finally:
        if proc.poll() is None:
            stop_demo(proc, whole_group=True)


class Expert:
    """A program using the API: session cookie and access token sent by hand (the demo's
    cookies are Secure, which browsers honour on localhost and aiohttp does not)."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http
        self.csrf = ""
        self.session = ""
        self.token = ""

    async def login(self, user: str) -> None:
        async with self.http.post(
            self.base + "/api/login", json={"username": user, "password": PASSWORD}
        ) as resp:
            assert resp.status == 200
            self.csrf = (await resp.json())["csrf"]
            self.session = resp.cookies["clinicam_session"].value

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, bytes]:
        headers = {
            "X-CSRF-Token": self.csrf,
            "Cookie": f"clinicam_session={self.session}",
            "X-Clinicam-Access": self.token,
        }
        async with self.http.request(method, self.base + path, headers=headers, **kw) as resp:
            body = await resp.read()
            data = None
            if resp.content_type == "application/json":
                data = await resp.json()
                if isinstance(data, dict) and "token" in data:
                    self.token = data["token"]
            return resp.status, data, body


async def _session(info: dict[str, Any], user: str) -> tuple[aiohttp.ClientSession, Expert]:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    expert = Expert(info["url"], http)
    await expert.login(user)
    return http, expert


def test_live_video_is_archived_and_a_range_plays(demo: dict[str, Any]) -> None:
    async def run() -> None:
        http, chair = await _session(demo, "demo")
        try:
            status, grant, _ = await chair.call(
                "POST", "/api/access", json={"patient": "P-0001", "operations": ["view"]}
            )
            assert status == 201
            pid = grant["patient_id"]

            async def ranges() -> list[dict[str, str]]:
                status, index, _ = await chair.call("GET", f"/api/patients/{pid}/archive")
                assert status == 200
                return list(index["ranges"])

            deadline = time.monotonic() + 60
            while True:
                found = await ranges()
                if found:
                    first = datetime.fromisoformat(found[0]["start"])
                    last = datetime.fromisoformat(found[-1]["end"])
                    if last - first >= timedelta(seconds=7):
                        break
                assert time.monotonic() < deadline, f"archive too short: {found}"
                await asyncio.sleep(1)
            start, end = first + timedelta(seconds=2), first + timedelta(seconds=6)
            status, _, body = await chair.call(
                "GET",
                f"/api/patients/{pid}/archive/video",
                params={"start": start.isoformat(), "end": end.isoformat()},
            )
            assert status == 200
            with av.open(io.BytesIO(body)) as container:
                frames = [f for f in container.decode(video=0)]
            assert len(frames) >= 20  # ~4 s at the demo's frame rate, from a keyframe
            assert frames[0].key_frame
            # Another expert without a grant for P-0002 learns nothing about its archive.
            status, _, _ = await chair.call("GET", f"/api/patients/{pid + 1}/archive")
            assert status == 404
        finally:
            await http.close()

    asyncio.run(run())


def test_snapshot_to_record_files_a_clinical_photo(demo: dict[str, Any]) -> None:
    async def run() -> None:
        http, chair = await _session(demo, "demo")
        try:
            status, grant, _ = await chair.call(
                "POST", "/api/access", json={"patient": "P-0001", "operations": ["view", "edit"]}
            )
            assert status == 201
            pid = grant["patient_id"]
            status, ack, _ = await chair.call(
                "POST", "/api/consultations/demo-consultation/camera", json={"op": "snapshot"}
            )
            assert status == 200 and ack["ok"], ack
            deadline = time.monotonic() + 30
            while True:
                status, listing, _ = await chair.call("GET", f"/api/patients/{pid}/records")
                photos = [
                    p
                    for p in listing["records"]["clinical_photo"]
                    if p["source"] == "appliance snapshot"
                ]
                if photos:
                    break
                assert time.monotonic() < deadline, "snapshot never reached the record"
                await asyncio.sleep(0.5)
            photo = photos[0]
            assert photo["requested_by"] == "demo" and photo["consultation"] == "demo-consultation"
            assert photo["width"] > 0 and photo["height"] > 0
            status, shared, _ = await chair.call(
                "POST",
                f"/api/patients/{pid}/records/clinical_photo/{photo['id']}/present",
                json={"consultation": "demo-consultation"},
            )
            assert status == 200 and shared["by"] == "demo"
        finally:
            await http.close()

    asyncio.run(run())


def test_relevance_is_computed_on_the_appliance_and_stored(demo: dict[str, Any]) -> None:
    """R7 end to end: MQTT command → appliance fetches the course data with its
    patient-scoped token → LiteRT → result posted back, stored, shown in the room."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    row = next(i for i, target in enumerate(data.target) if target == 0)  # malignant
    fields = {n: float(v) for n, v in zip(data.feature_names, data.data[row], strict=True)}

    async def run() -> None:
        http, chair = await _session(demo, "demo")
        try:
            status, grant, _ = await chair.call(
                "POST", "/api/access", json={"patient": "P-0001", "operations": ["view", "edit"]}
            )
            assert status == 201
            pid = grant["patient_id"]
            status, _, _ = await chair.call(
                "POST", f"/api/patients/{pid}/emr", json={"fields": fields}
            )
            assert status == 201
            status, asked, _ = await chair.call(
                "POST",
                "/api/consultations/demo-consultation/relevance",
                json={"where": "appliance"},
            )
            assert status == 202 and asked["on"] == "appliance:appliance-1", asked
            deadline = time.monotonic() + 30
            while True:
                status, found, _ = await chair.call("GET", f"/api/patients/{pid}/relevance")
                latest = found["latest"]
                if latest and latest["produced_by"] == "appliance:appliance-1":
                    break
                assert time.monotonic() < deadline, "no result from the appliance"
                await asyncio.sleep(0.5)
            assert latest["labels"] == ["benign", "malignant"]
            assert latest["relevance"]["malignant"] > 0.5
            assert "not for clinical use" in latest["caption"]
        finally:
            await http.close()

    asyncio.run(run())


def test_an_admin_updates_the_appliance_from_the_admin_api(demo: dict[str, Any]) -> None:
    """Release upload → appliance.update over MQTT → the appliance downloads and checks
    the wheel and hands it to the root updater (here: the request file it would watch)."""
    from pathlib import Path

    from tests.clinicam.test_update_request import release_wheel

    wheel = release_wheel("9.1")
    state = Path(demo["state_dir"]) / "appliance"

    async def run() -> None:
        http, admin = await _session(demo, "admin")
        chair_http, chair = await _session(demo, "demo")
        try:
            deadline = time.monotonic() + 60
            while True:  # the appliance may still be starting
                status, fleet, _ = await admin.call("GET", "/api/admin/appliances")
                assert status == 200, fleet
                if all(a["online"] for a in fleet["appliances"]):
                    break
                assert time.monotonic() < deadline, f"the appliance never came online: {fleet}"
                await asyncio.sleep(0.5)
            name = "clinicam-9.1-py3-none-any.whl"
            status, added, _ = await admin.call("PUT", f"/api/admin/releases/{name}", data=wheel)
            assert status == 201, added
            status, _, _ = await chair.call(
                "POST", "/api/admin/appliances/appliance-1/update", json={"release": "9.1"}
            )
            assert status == 403  # an expert cannot update devices
            status, answer, _ = await admin.call(
                "POST", "/api/admin/appliances/appliance-1/update", json={"release": "9.1"}
            )
            assert status == 202, answer
            deadline = time.monotonic() + 30
            while True:
                status, fleet, _ = await admin.call("GET", "/api/admin/appliances")
                row = next(a for a in fleet["appliances"] if a["device_id"] == "appliance-1")
                if (row.get("update") or {}).get("state") == "waiting":
                    break
                assert time.monotonic() < deadline, f"the update never got ready: {row}"
                await asyncio.sleep(0.5)
            assert row["version"] and row["update"]["release"] == "9.1"
            assert (state / "updates" / name).read_bytes() == wheel
            request = (state / "update-request.json").read_text()
            assert '"release": "9.1"' in request and '"requested_by": "admin"' in request
            status, again, _ = await admin.call(
                "POST", "/api/admin/appliances/appliance-1/update", json={"release": "9.1"}
            )
            assert status == 409 and "already waiting" in again["error"], again
        finally:
            await http.close()
            await chair_http.close()

    asyncio.run(run())
