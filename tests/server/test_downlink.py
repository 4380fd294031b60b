"""Downlink adaptation (R17): each viewer's composite follows their own link, viewers on
the same rung share an encode, and audio only sends a lone keyframe every few seconds."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import av
import numpy as np

from clinicam.adaptation import LinkRateController
from server.config import LiveViewConfig
from server.media.composite import CompositeMixer, CompositeTrack
from server.media.compositor import TileSource
from server.media.downlink import STILL_EVERY_S, composite_ladder
from server.media.layout import compute_layout, standard_windows

WINDOWS = standard_windows(["ada", "bob"])
CONFIG = LiveViewConfig(width=1280, height=720, fps=10, bitrate_kbps=2500)


def test_the_ladder_goes_from_the_configured_picture_to_stills() -> None:
    ladder = composite_ladder(CONFIG)
    sizes = [(r.width, r.height, r.fps) for r in ladder.rungs]
    assert sizes == [(1280, 720, 10), (960, 540, 10), (640, 360, 10), (640, 360, 0)]
    assert ladder.rungs[0].ceiling_kbps == 2500 and ladder.still == 3
    assert all(a.min_kbps > b.min_kbps for a, b in itertools.pairwise(ladder.rungs))


def _mixer() -> CompositeMixer:
    def frame() -> av.VideoFrame:
        pixels = np.random.default_rng(1).integers(0, 255, (90, 160), dtype=np.uint8)
        return av.VideoFrame.from_ndarray(pixels, format="gray").reformat(format="yuv420p")

    sources = {w: TileSource(frame(), 0.0, w) for w in WINDOWS}
    return CompositeMixer(
        CONFIG, lambda main: compute_layout(WINDOWS, main, 1280, 720), lambda: sources
    )


async def _decoded(track: CompositeTrack, count: int) -> list[tuple[int, int, bool]]:
    decoder = av.CodecContext.create("h264", "r")
    out: list[tuple[int, int, bool]] = []
    async with asyncio.timeout(30):
        while len(out) < count:
            packet: Any = await track.recv()
            for frame in decoder.decode(av.Packet(bytes(packet))):
                out.append((frame.width, frame.height, bool(packet.is_keyframe)))
    return out


async def test_each_viewer_gets_the_rung_their_link_allows() -> None:
    mixer = _mixer()
    fast, slow = mixer.new_track("live", "ada"), mixer.new_track("live", "bob")
    try:
        assert fast.link is not None and slow.link is not None
        clock = [0.0]
        ladder = mixer.ladder
        slow.link.controller = LinkRateController(ladder.rungs, ladder.top_kbps, lambda: clock[0])
        slow.link.controller.on_remb(2_000_000)
        for _ in range(20):  # then bob's receiver estimates 300 kbit/s for ten seconds
            clock[0] += 0.5
            slow.link.controller.on_remb(300_000)
        assert slow.link.rung == 2
        got_fast, got_slow = await asyncio.gather(_decoded(fast, 5), _decoded(slow, 5))
        assert {(w, h) for w, h, _ in got_fast} == {(1280, 720)}
        assert {(w, h) for w, h, _ in got_slow} == {(640, 360)}
        assert fast.variant != slow.variant
        twin = mixer.new_track("live", "cy")  # a third viewer on a good link shares ada's
        assert twin.variant == fast.variant
        mixer.remove(twin)
    finally:
        await mixer.close()


async def test_audio_only_sends_a_keyframe_still_every_few_seconds() -> None:
    mixer = _mixer()
    track = mixer.new_track("live", "ada")
    try:
        assert track.link is not None
        track.link.audio_only = True
        start = asyncio.get_running_loop().time()
        stills = await _decoded(track, 3)
        took = asyncio.get_running_loop().time() - start
        assert all(key for _, _, key in stills), "each still stands alone"
        assert {(w, h) for w, h, _ in stills} == {(640, 360)}
        assert took >= 1.5 * STILL_EVERY_S, f"3 stills in {took:.1f} s: not every few seconds"
        track.link.audio_only = False
        back = await _decoded(track, 4)
        assert {(w, h) for w, h, _ in back[-2:]} == {(1280, 720)}, "video again at once"
    finally:
        await mixer.close()


async def test_an_expert_chooses_audio_only_in_the_room(tmp_path: Any) -> None:
    from server.media.live import FrameFeed
    from server.room import ConsultationRoom
    from server.room_messages import AudioOnly
    from tests.records.api_helpers import records_config

    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    room = ConsultationRoom(config.consultations[0], config, config, FrameFeed("live"))
    try:
        track, _ = room.attach_media("alice", None, None)
        assert room.state_for("alice")["video"] == {
            "audio_only": False,
            "stills": False,
            "size": [config.live.width, config.live.height],
        }
        await room.handle("alice", AudioOnly(type="audio_only", on=True))
        assert track.link is not None and track.link.rung == room.mixer.ladder.still
        assert room.state_for("alice")["video"]["stills"] is True
        again, _ = room.attach_media("alice", None, None)  # a reconnect keeps the choice
        assert again.link is not None and again.link.audio_only
    finally:
        await room.close()
