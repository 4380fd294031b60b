"""What recording the whole call (O4) costs: CPU seconds per minute of call, and bytes.

Two phases in one run, each ``--seconds`` long in real time, on the same synthetic call
(a moving 1280×720 patient view and two 640×480 webcams, new frames at 15 fps; two
voices through a real :class:`~server.media.audio_mix.AudioMixer` with two listeners):

1. ``baseline``: the live work the recording rides on: one expert's composite
   (1280×720, composed and H.264-encoded at 15 fps, as one shared variant) and the
   audio mix with its Opus encodes;
2. ``recording``: the same plus :class:`~server.recording.call.CallRecording` (the
   neutral layout composed from the same decoded frames, H.264 + AAC into 10 s MP4
   segments, filed into a blob store and a SQLite index).

``recording_cpu_s_per_min`` is the difference of the process CPU time between the two
phases, per minute; ``recording_thread_cpu_s_per_min`` the recording's own steps
(compose, encode, mux, file) measured in their thread. The machine may be shared: the
two phases run back to back so that they see the same neighbours.

    python bench/recording.py [--quick]

Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from clinicam.h264 import H264StreamEncoder  # noqa: E402
from server.archive.call_store import CallStore  # noqa: E402
from server.archive.call_writer import SegmentedRecording  # noqa: E402
from server.config import RecordingConfig  # noqa: E402
from server.db import open_database  # noqa: E402
from server.media.audio_mix import AudioMixer  # noqa: E402
from server.media.compositor import Compositor, TileSource  # noqa: E402
from server.media.layout import LIVE, compute_layout, standard_windows  # noqa: E402
from server.recording.call import CallRecording  # noqa: E402
from server.records.blobs import LocalBlobStore  # noqa: E402
from server.records.store import RecordStore  # noqa: E402

FPS = 15
EXPERTS = ["ann", "bo"]


def _moving(width: int, height: int, count: int) -> list[av.VideoFrame]:
    ramp = np.add.outer(np.arange(height), np.arange(width)).astype(np.uint8)
    rng = np.random.default_rng(1)
    frames = []
    for i in range(count):
        luma = np.roll(ramp, 6 * i, axis=1) + rng.integers(0, 8, ramp.shape, dtype=np.uint8)
        rgb = np.ascontiguousarray(np.stack([luma] * 3, axis=-1))
        frames.append(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p"))
    return frames


class Call:
    """The synthetic call: frames, voices and one expert's live composite."""

    def __init__(self) -> None:
        self.live = _moving(1280, 720, FPS)
        self.webcams = {name: _moving(640, 480, FPS) for name in EXPERTS}
        self.tick = 0
        self.audio = AudioMixer()
        self.layout = compute_layout(standard_windows(EXPERTS), LIVE)
        self.compositor = Compositor(1280, 720)
        self.encoder = H264StreamEncoder(1280, 720, FPS, 2500, 2 * FPS)

    def sources(self) -> dict[str, TileSource]:
        i = self.tick % FPS
        out = {f"expert:{n}": TileSource(f[i], 0.0, n) for n, f in self.webcams.items()}
        out[LIVE] = TileSource(self.live[i], 0.0, "Patient")
        return out

    def live_step(self) -> None:
        frame = self.compositor.compose(self.layout, self.sources())
        self.encoder.encode(frame, round(self.tick / FPS / Fraction(1, 90_000)))
        self.tick += 1

    async def run(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        tone = {
            n: (np.sin(2 * np.pi * f * np.arange(48_000) / 48_000) * 6000).astype(np.int16)
            for n, f in zip(EXPERTS, (440.0, 1250.0), strict=True)
        }
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            for name in EXPERTS:  # 1/15 s of voice per tick
                k = (n * 3200) % 44_800
                self.audio.source(name).push(tone[name][k : k + 3200])
            await loop.run_in_executor(None, self.live_step)
            n += 1
            await asyncio.sleep(max(0.0, start + n / FPS - time.monotonic()))


async def _phase(seconds: float, record: bool, folder: Path) -> dict[str, float]:
    call = Call()
    for name in EXPERTS:
        call.audio.listen(name)
    recording = None
    size = 0
    if record:
        database = open_database(f"sqlite:///{folder / 'db.sqlite'}")
        records = RecordStore(database, LocalBlobStore(folder / "blobs"), max_bytes=1 << 30)
        store = CallStore(database, records, 1095)
        config = RecordingConfig()
        filed: list[int] = []

        def file(segment: object) -> None:
            filed.append(segment.path.stat().st_size)  # type: ignore[attr-defined]
            store.file_segment("P-1", "c1", writer.started_utc, segment)  # type: ignore[arg-type]

        writer = SegmentedRecording(folder / "work", file, segment_seconds=config.segment_seconds)
        recording = CallRecording(
            config,
            EXPERTS,
            call.sources,
            call.audio,
            writer,
            in_call=lambda: True,
            alive=lambda: True,
            locale="en",
        )
        recording.start()
    cpu0, wall0 = time.process_time(), time.monotonic()
    await call.run(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    out = {"cpu_s_per_min": cpu / wall * 60}
    if recording is not None:
        await recording.stop()
        size = sum(filed)
        out["thread_cpu_s_per_min"] = recording.cpu_s / wall * 60
        out["frames"] = recording.frames
        out["mb_per_min"] = size / 1e6 / wall * 60
        database.close()
    await call.audio.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 s phases instead of 60 s")
    args = parser.parse_args()
    seconds = 20.0 if args.quick else 60.0
    with tempfile.TemporaryDirectory() as tmp:
        base = await _phase(seconds, False, Path(tmp))
        rec = await _phase(seconds, True, Path(tmp))
    result = {
        "phase_seconds": seconds,
        "baseline_cpu_s_per_min": round(base["cpu_s_per_min"], 2),
        "with_recording_cpu_s_per_min": round(rec["cpu_s_per_min"], 2),
        "recording_cpu_s_per_min": round(rec["cpu_s_per_min"] - base["cpu_s_per_min"], 2),
        "recording_thread_cpu_s_per_min": round(rec["thread_cpu_s_per_min"], 2),
        "recorded_frames_per_s": round(rec["frames"] / seconds, 1),
        "recorded_mb_per_min": round(rec["mb_per_min"], 2),
    }
    print(
        f"baseline (one 1280x720 composite at {FPS} fps + audio mix): "
        f"{result['baseline_cpu_s_per_min']} CPU s/min; with the recording: "
        f"{result['with_recording_cpu_s_per_min']} CPU s/min; the recording's own thread: "
        f"{result['recording_thread_cpu_s_per_min']} CPU s/min; "
        f"{result['recorded_mb_per_min']} MB/min stored"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
