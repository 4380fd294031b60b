"""A lightweight expert: aiortc and aiohttp where a test or bench needs no browser.

It does what the room page does over the wire: signs in, opens the room's socket
(the room state: floor, tiles), offers a synthetic webcam up and takes the composite
down, and decodes every composite frame it receives. It counts them with their arrival
times and, when the appliance burns its capture time into its frames
(``sim.stamp_time``), reads that barcode from the live tile: glass-to-glass latency
on one machine's clock, as bench/glass_to_glass.py reads it in Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from clinicam.ice import keep_loopback_candidates
from firmware.hardware.timestamp import BITS, read_bits

__all__ = ["ExpertClient", "SyntheticWebcam", "ToneMicrophone", "live_tile"]

_CLOCK = 90_000


def h264_only() -> list[Any]:
    """H.264 only, as the server's browsers send it."""
    return [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]


class SyntheticWebcam(MediaStreamTrack):
    """A webcam that shows a moving pattern (so its encoder works as for a face)."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 480, fps: int = 15) -> None:
        super().__init__()
        self._fps = fps
        ramp = np.add.outer(np.arange(height), np.arange(width)).astype(np.uint8)
        self._frames = [
            av.VideoFrame.from_ndarray(
                np.ascontiguousarray(np.stack([np.roll(ramp, 8 * i, axis=1)] * 3, axis=-1)),
                format="rgb24",
            ).reformat(format="yuv420p")
            for i in range(fps)
        ]
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._count / self._fps
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = self._frames[self._count % len(self._frames)]
        frame.pts = self._count * _CLOCK // self._fps
        frame.time_base = fractions.Fraction(1, _CLOCK)
        self._count += 1
        return frame


class ToneMicrophone(MediaStreamTrack):
    """A microphone that hums one steady sine tone (48 kHz mono, 20 ms frames)."""

    kind = "audio"

    def __init__(self, freq_hz: float, level: float = 0.3) -> None:
        super().__init__()
        self._freq = freq_hz
        self._level = level
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        n, rate = 960, 48_000
        await asyncio.sleep(max(0.0, self._start + self._sent / rate - time.monotonic()))
        t = (self._sent + np.arange(n)) / rate
        pcm = (np.sin(2 * np.pi * self._freq * t) * self._level * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, rate)
        self._sent += n
        return frame


def live_tile(state: dict[str, Any], source: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Where the patient's picture (``source`` = its width, height) sits in the composite:
    (x, y, w, h) in composite pixels, fitted into the live tile with its aspect kept."""
    tile = next((t for t in state.get("tiles", []) if t[0] == "live"), None)
    if tile is None:
        return None
    _, tx, ty, tw, th = tile
    k = min(tw / source[0], th / source[1])
    cw, ch = source[0] * k, source[1] * k
    return round(tx + (tw - cw) / 2), round(ty + (th - ch) / 2), round(cw), round(ch)


class ExpertClient:
    """One expert's session with the server (own cookie jar, socket and call)."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        # Browsers hold 127.0.0.1 a secure origin: its Secure session cookie is sent there.
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[self.base_url])
        self.http = aiohttp.ClientSession(cookie_jar=jar)
        self.csrf = ""
        self.pc: RTCPeerConnection | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.state: dict[str, Any] = {}  # the newest room state the socket sent
        self.events: list[str] = []  # the type of every event the socket sent, in order
        self.arrivals: list[float] = []  # monotonic time of each decoded composite frame
        self.latencies_ms: list[tuple[float, float]] = []  # (arrival, capture → decoded)
        self.last_frame: Any = None  # the newest decoded composite (an av.VideoFrame)
        self.stamp_source: tuple[int, int] | None = None  # appliance frame size, if stamped
        self._tasks: list[asyncio.Task[None]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return await self.http.request(method, self.base_url + path, headers=headers, **kwargs)

    async def login(self) -> None:
        resp = await self.http.post(
            self.base_url + "/api/login",
            json={"username": self.username, "password": self._password},
        )
        body = await resp.json()
        if resp.status != 200:
            raise AssertionError(f"{self.username} could not sign in: {resp.status} {body}")
        self.csrf = body["csrf"]

    async def open_socket(self, cid: str) -> None:
        """The room's socket; its room states are kept in :attr:`state`."""
        self.ws = await self.http.ws_connect(self.base_url + f"/api/consultations/{cid}/ws")
        self._tasks.append(asyncio.create_task(self._read_socket(self.ws)))

    async def _read_socket(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                event = msg.json()
                self.events.append(str(event.get("type")))
                if event.get("type") == "room":
                    self.state = event

    async def send(self, event: dict[str, Any]) -> None:
        assert self.ws is not None, "open the socket first"
        await self.ws.send_json(event)

    async def offer(
        self,
        cid: str,
        webcam: MediaStreamTrack | None = None,
        microphone: MediaStreamTrack | None = None,
    ) -> aiohttp.ClientResponse:
        """Offer webcam (and ``microphone``, if given) up / composite down; returns the
        server's response (read it)."""
        pc = RTCPeerConnection()
        received: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        pc.on("track", received.put_nowait)
        video = pc.addTransceiver(webcam or SyntheticWebcam(), direction="sendrecv")
        video.setCodecPreferences(h264_only())
        if microphone is not None:
            pc.addTransceiver(microphone, direction="sendrecv")
        else:
            pc.addTransceiver("audio", direction="recvonly")  # the room's voices
        await pc.setLocalDescription(await pc.createOffer())
        resp = await self.request(
            "POST",
            f"/api/consultations/{cid}/webrtc",
            json={"sdp": pc.localDescription.sdp, "type": "offer"},
        )
        if resp.status != 200:
            await pc.close()
            return resp
        answer = await resp.json()
        sdp = keep_loopback_candidates(answer["sdp"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.pc = pc
        self._tasks.append(asyncio.create_task(self._take_tracks(received)))
        return resp

    async def join(
        self,
        cid: str,
        webcam: MediaStreamTrack | None = None,
        microphone: MediaStreamTrack | None = None,
    ) -> None:
        """Socket and call, as the room page opens them; fails unless both are accepted."""
        await self.open_socket(cid)
        resp = await self.offer(cid, webcam, microphone)
        if resp.status != 200:
            raise AssertionError(f"{self.username}'s offer: {resp.status} {await resp.text()}")

    async def _take_tracks(self, received: asyncio.Queue[MediaStreamTrack]) -> None:
        while True:
            track = await received.get()
            if track.kind == "video":
                self._tasks.append(asyncio.create_task(self._decode(track)))
            else:
                self._tasks.append(asyncio.create_task(self._drain(track)))

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()

    async def _decode(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()  # aiortc decoded it: every frame received
                now = time.monotonic()
                self.arrivals.append(now)
                self.last_frame = frame
                if self.stamp_source is not None:
                    latency = self._stamp_latency(frame)
                    if latency is not None:
                        self.latencies_ms.append((now, latency))

    def _stamp_latency(self, frame: Any) -> float | None:
        """Now minus the capture time burnt into the live tile (ms), if readable."""
        assert self.stamp_source is not None
        size = self.state.get("size")
        place = live_tile(self.state, self.stamp_source)
        if place is None or not size:
            return None  # no room state yet
        sx, sy = frame.width / size[0], frame.height / size[1]  # a lower rung is scaled
        x, y, w, h = place
        x0, y0 = round(x * sx), round(y * sy)
        luma = frame.to_ndarray(format="gray")[y0 : y0 + round(h * sy), x0 : x0 + round(w * sx)]
        m = 1 << BITS
        latency = ((int(time.time() * 1000) % m) - read_bits(luma) + m) % m
        return float(latency) if latency < 60_000 else None

    def fps(self, since: float, until: float) -> float:
        """Composite frames decoded per second between two monotonic times."""
        count = sum(1 for t in self.arrivals if since <= t < until)
        return count / (until - since)

    async def until_frames(self, count: int, timeout_s: float = 60.0) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.arrivals) < count:
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            await self.ws.close()
        if self.pc is not None:
            await self.pc.close()
        await self.http.close()
