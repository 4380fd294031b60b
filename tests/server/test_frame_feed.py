"""Latest wins: a burst of queued frames never becomes permanent delay."""

from __future__ import annotations

import asyncio

import av
import numpy as np
from aiortc.rtcrtpreceiver import RemoteStreamTrack

from server.media.live import FrameFeed


def _frame(value: int) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(np.full((48, 64, 3), value, np.uint8), format="rgb24")


async def test_a_burst_of_frames_is_skipped_to_the_newest() -> None:
    track = RemoteStreamTrack(kind="video")  # what aiortc hands us for a remote video
    frames = [_frame(v) for v in (10, 20, 30, 40)]
    for frame in frames:
        track._queue.put_nowait(frame)
    feed = FrameFeed("test")
    feed.attach(track)
    for _ in range(50):
        if feed.frame is not None:
            break
        await asyncio.sleep(0.01)
    assert feed.frame is frames[-1]  # straight to the newest, not 10 → 20 → 30 → 40
    assert feed.frames_received == 1
    track._queue.put_nowait(None)
    await asyncio.sleep(0.05)
    feed.detach()
