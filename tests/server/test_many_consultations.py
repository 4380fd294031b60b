"""Two consultations at once on one server (issue 19): each its own composite, floor
and camera, and an expert invited to one is refused by the other.

Everything is real: mosquitto, the server on a loopback port, two simulated
appliances (each its own generated scene) streaming H.264 to it and obeying its
MQTT commands, and four experts as lightweight aiortc clients (tests/expert_client.py)
that sign in, open the room socket and take the composite down.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from clinicam_app.broker import MosquittoBroker
from server.auth import hash_secret
from server.config import ServerConfig
from server.device_tokens import ensure_key, token_hash
from server.media.layout import expert_window
from tests.expert_client import ExpertClient, SyntheticWebcam, live_tile
from tests.firmware.conftest import Rig, appliance_config
from tests.records.api_helpers import PASSWORD, Site, running_site

SOURCE = (640, 360)  # what each appliance sends
ROOMS = {  # consultation: (appliance, patient, chair, other expert)
    "c1": ("cam-a", "P-1", "alice", "bob"),
    "c2": ("cam-b", "P-2", "carol", "dan"),
}


def _config(state_dir: Path, broker_port: int, tokens: dict[str, str]) -> ServerConfig:
    digest = hash_secret(PASSWORD)
    key = ensure_key(state_dir)
    experts = [(chair, "chair") for _, _, chair, _ in ROOMS.values()] + [
        (other, "expert") for _, _, _, other in ROOMS.values()
    ]
    return ServerConfig.model_validate(
        {
            "state_dir": str(state_dir),
            "database_url": f"sqlite:///{state_dir / 'db.sqlite'}",
            "http": {"cookie_secure": False},
            "mqtt": {"port": broker_port, "username": "server", "password": "server-pw"},
            "ice": {"loopback_only": True},
            "live": {"width": 640, "height": 360, "fps": 10},
            "experts": [
                {"username": u, "display_name": u.title(), "password_hash": digest, "role": r}
                for u, r in experts
            ],
            "devices": [
                {"device_id": d, "clinic": f"Clinic {d}", "token_hash": token_hash(key, t)}
                for d, t in tokens.items()
            ],
            "patients": [{"id": p, "name": f"Patient {p}"} for _, p, _, _ in ROOMS.values()],
            "consultations": [
                {"id": cid, "patient_id": p, "appliance": d, "chair": c, "experts": [c, o]}
                for cid, (d, p, c, o) in ROOMS.items()
            ],
        }
    )


async def _streaming_rig(tmp_path: Path, device: str, seed: int, port: int, url: str) -> Rig:
    from gpiozero.pins.mock import MockFactory

    from firmware.app import build_appliance
    from firmware.hardware.sim import build_sim_rig

    config = appliance_config(
        tmp_path / device,
        port,
        device_id=device,
        mqtt={"username": device, "password": f"{device}-pw"},
        server={"url": url, "token": f"{device}.secret-of-{device}"},
        ice={"loopback_only": True},
        camera={"width": SOURCE[0], "height": SOURCE[1], "fps": 10},
        sim={"scene_seed": seed},
        recorder={"enabled": False},
    )
    sim = build_sim_rig(config)
    pins = MockFactory()
    loop = asyncio.get_running_loop()
    appliance = build_appliance(
        config, loop=loop, hardware=(sim.pantilt, sim.camera), pin_factory=pins
    )
    appliance.start(stream=True)
    return Rig(appliance, sim, pins)


@dataclass
class TwoRooms:
    site: Site
    rigs: dict[str, Rig]  # by device id
    experts: dict[str, ExpertClient]  # by username, each joined to their consultation

    def target(self, device: str) -> tuple[float, float]:
        target: tuple[float, float] = self.rigs[device].appliance.motion.target
        return target

    async def holder(self, expert: str, cid: str) -> str:
        resp = await self.experts[expert].request("GET", f"/api/consultations/{cid}")
        assert resp.status == 200
        holder: str = (await resp.json())["control_holder"]
        return holder


async def _until(predicate: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.fixture
async def rooms(broker: MosquittoBroker, tmp_path: Path) -> AsyncIterator[TwoRooms]:
    tokens = {"cam-a": "cam-a.secret-of-cam-a", "cam-b": "cam-b.secret-of-cam-b"}
    config = _config(tmp_path / "server", broker.port, tokens)
    rigs: dict[str, Rig] = {}
    experts: dict[str, ExpertClient] = {}
    async with running_site(config) as site:
        url = str(site.server.make_url("")).rstrip("/")
        try:
            for seed, device in enumerate(tokens, start=1):
                rigs[device] = await _streaming_rig(tmp_path, device, seed, broker.port, url)
            media = site.state.media
            await _until(
                lambda: all(media.appliance_streaming(d) for d in tokens), "both streams", 60
            )
            for cid, (_, _, chair, other) in ROOMS.items():
                for user in (chair, other):
                    expert = ExpertClient(url, user, PASSWORD)
                    experts[user] = expert
                    await expert.login()
                    await expert.join(cid, SyntheticWebcam(320, 240, 5))
            for expert in experts.values():
                await expert.until_frames(3, timeout_s=60)
            yield TwoRooms(site, rigs, experts)
        finally:
            for expert in experts.values():
                await expert.close()
            for rig in rigs.values():
                await rig.appliance.stop()
                rig.sim.close()


def _detail(luma: np.ndarray) -> np.ndarray:
    """The picture's detail at 64×36 (its broad shading taken away), unit norm: two
    generated scenes share their lighting, not their detail."""
    small = av.VideoFrame.from_ndarray(np.ascontiguousarray(luma), format="gray").reformat(64, 36)
    coarse = small.reformat(8, 5).reformat(64, 36)
    detail = small.to_ndarray().astype(np.float64) - coarse.to_ndarray().astype(np.float64)
    detail -= detail.mean()
    return detail / (np.linalg.norm(detail) + 1e-9)


def _live_picture(expert: ExpertClient) -> np.ndarray:
    """The patient's picture in the newest composite this expert decoded (luma)."""
    frame = expert.last_frame
    assert frame is not None and expert.state, f"{expert.username} has no composite"
    place = live_tile(expert.state, SOURCE)
    assert place is not None, expert.state.get("tiles")
    x, y, w, h = place
    luma: np.ndarray = frame.to_ndarray(format="gray")
    return luma[y : y + h, x : x + w]


async def test_each_composite_shows_its_own_appliance(rooms: TwoRooms) -> None:
    scenes = {
        d: _detail(rig.sim.camera.capture().to_ndarray(format="gray"))
        for d, rig in rooms.rigs.items()
    }

    def likeness(user: str) -> dict[str, float]:
        seen = _detail(_live_picture(rooms.experts[user]))
        return {d: float((seen * scene).sum()) for d, scene in scenes.items()}

    def shows_a_patient(user: str) -> bool:
        return max(likeness(user).values()) > 0.6

    for cid, (device, _, chair, other) in ROOMS.items():
        for user in (chair, other):
            # until the live tile shows a patient at all (not the "waiting" card) …
            await _until(functools.partial(shows_a_patient, user), f"{user}'s live tile")
            likeness_now = likeness(user)  # … then it must be this consultation's patient
            elsewhere = max(v for d, v in likeness_now.items() if d != device)
            windows = {tile[0] for tile in rooms.experts[user].state["tiles"]}
            assert {expert_window(chair), expert_window(other)} <= windows
            strangers = {u for _, _, c, o in ROOMS.values() for u in (c, o)} - {chair, other}
            assert not {expert_window(u) for u in strangers} & windows  # no one else's webcam
            assert likeness_now[device] > elsewhere + 0.25, (user, cid, likeness_now)


async def test_floors_and_cameras_are_independent(rooms: TwoRooms) -> None:
    bob, alice, carol = (rooms.experts[u] for u in ("bob", "alice", "carol"))
    await bob.send({"type": "floor", "action": "request"})
    await _until(lambda: bool(alice.state.get("floor", {}).get("pending")), "bob's request")
    await alice.send({"type": "floor", "action": "grant", "user": "bob"})
    await _until(lambda: bob.state.get("floor", {}).get("holder") == "bob", "bob holding c1")
    assert await rooms.holder("bob", "c1") == "bob"
    assert await rooms.holder("carol", "c2") == "carol"  # the other room's floor is untouched

    resp = await bob.request(
        "POST", "/api/consultations/c1/camera", json={"op": "ptz.relative", "pan": 5}
    )
    assert resp.status == 200, await resp.text()
    assert rooms.target("cam-a") == (5, 0) and rooms.target("cam-b") == (0, 0)
    resp = await alice.request(
        "POST", "/api/consultations/c1/camera", json={"op": "ptz.relative", "pan": 5}
    )
    assert resp.status == 403  # alice gave the floor away in c1 …
    resp = await carol.request(
        "POST", "/api/consultations/c2/camera", json={"op": "ptz.relative", "tilt": -4}
    )
    assert resp.status == 200, await resp.text()  # … which changes nothing in c2
    assert rooms.target("cam-b") == (0, -4) and rooms.target("cam-a") == (5, 0)


async def test_an_expert_of_one_consultation_is_refused_by_the_other(rooms: TwoRooms) -> None:
    before = {d: rooms.target(d) for d in rooms.rigs}
    for user, elsewhere in (("bob", "c2"), ("carol", "c1")):
        expert = rooms.experts[user]
        resp = await expert.request("GET", f"/api/consultations/{elsewhere}")
        assert resp.status == 403
        resp = await expert.offer(elsewhere)
        assert resp.status == 403
        resp = await expert.request(
            "POST", f"/api/consultations/{elsewhere}/camera", json={"op": "ptz.relative", "pan": 9}
        )
        assert resp.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await expert.http.ws_connect(expert.base_url + f"/api/consultations/{elsewhere}/ws")
        assert refused.value.status == 403
        host = rooms.experts[ROOMS[elsewhere][2]]  # that room's chair sees who is online
        assert user not in host.state["online"], host.state["online"]
    assert {d: rooms.target(d) for d in rooms.rigs} == before  # no camera moved
