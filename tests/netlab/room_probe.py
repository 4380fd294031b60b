"""An expert in the room, as a measuring instrument, run inside the server's namespace.

``python -m tests.netlab.room_probe --port P --password PW --seconds S --out FILE``
signs in as the chair, joins the room (WebSocket for events, WebRTC receiving the
composite, so the server composes and stamps every frame it sends), and for ``S``
seconds records:

* every 100 ms, how many live frames the server has decoded from the appliance
  (``/api/consultations/<id>/latency``): freezes and frame rate are counted from these;
* every second, the round trip of a camera command (HTTP → MQTT → appliance → ack);
* every ``links`` event: the clinic's uplink as the room shows it (encoder target, rung);
* at the end (and at ``--snapshot-at``, e.g. just before an outage), the server's
  glass-to-glass figures (capture → composite sent, its last 300 composites).

Times are ``time.monotonic()``, one clock for every namespace of the machine, so the
caller can relate them to when it started an outage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

CONSULTATION = "demo-consultation"


async def _drain(track: Any) -> None:
    while True:
        await track.recv()


async def probe(
    port: int, password: str, seconds: float, snapshot_at: float | None = None
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    room = f"{base}/api/consultations/{CONSULTATION}"
    out: dict[str, Any] = {"frames": [], "control": [], "links": [], "errors": []}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(
            f"{base}/api/login", json={"username": "demo", "password": password}
        ) as r:
            r.raise_for_status()
            csrf = (await r.json())["csrf"]
        headers = {"X-CSRF-Token": csrf}
        ws = await http.ws_connect(f"{room}/ws")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        tracks: list[Any] = []
        pc.on("track", tracks.append)
        video = pc.addTransceiver("video", direction="recvonly")
        video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        )
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
        async with http.post(f"{room}/webrtc", json=offer, headers=headers) as r:
            r.raise_for_status()
            answer = await r.json()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        drains = [asyncio.create_task(_drain(t)) for t in tracks]  # keep receiving (RTCP)

        async def events() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    event = json.loads(msg.data)
                    if event.get("type") == "links":
                        out["links"].append([time.monotonic(), event["parties"]["clinic"]])

        async def frames() -> None:
            while True:
                try:
                    async with http.get(f"{room}/latency") as r:
                        figures = await r.json()
                    out["frames"].append([time.monotonic(), figures["live"]["frames"]])
                except (aiohttp.ClientError, KeyError, ValueError) as exc:
                    out["errors"].append(f"latency: {exc}")
                await asyncio.sleep(0.1)

        async def control() -> None:
            sign = 1
            while True:
                await asyncio.sleep(1.0)
                command = {"op": "ptz.relative", "pan": sign, "tilt": 0}
                sign = -sign
                sent = time.monotonic()
                try:
                    async with http.post(f"{room}/camera", json=command, headers=headers) as r:
                        status = r.status
                        await r.read()
                except aiohttp.ClientError as exc:
                    status = 0
                    out["errors"].append(f"camera: {exc}")
                out["control"].append([sent, (time.monotonic() - sent) * 1000, status])

        async def snapshot() -> None:
            if snapshot_at is None:
                return
            await asyncio.sleep(snapshot_at)
            async with http.get(f"{room}/latency") as r:
                out["latency_before"] = (await r.json())["latency"]

        tasks = [asyncio.create_task(c) for c in (events(), frames(), control(), snapshot())]
        try:
            await asyncio.sleep(seconds)
        finally:
            async with http.get(f"{room}/latency") as r:
                out["latency"] = (await r.json())["latency"]
            for task in [*tasks, *drains]:
                task.cancel()
            await ws.close()
            await pc.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--snapshot-at", type=float, help="also read the latency then")
    args = parser.parse_args()
    result = asyncio.run(probe(args.port, args.password, args.seconds, args.snapshot_at))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
