"""Voices leave on the clock: encoded by the mixing thread, never sent late in a burst."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import av
import numpy as np
from aiortc.rtp import RtpPacket

from server.media.audio import CHUNK, RATE
from server.media.audio_mix import BACKLOG_MAX, AudioMixer, MixTrack
from server.media.lowlatency import RESYNC_AFTER, ArrivalAudioBuffer


def _tone(freq: float, n: int) -> np.ndarray:
    t = np.arange(n) / RATE
    return (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def decode_opus(packets: list[av.Packet[Any]]) -> np.ndarray:
    """The first channel of what ``packets`` decode to."""
    decoder = av.CodecContext.create("libopus", "r")
    out = []
    for packet in packets:
        for frame in decoder.decode(av.Packet(bytes(packet))):  # type: ignore[attr-defined]
            samples = frame.to_ndarray()
            out.append(
                samples[0]
                if frame.format.is_planar
                else samples.reshape(-1)[:: frame.layout.nb_channels]
            )
    return np.concatenate(out)


async def _collect(track: MixTrack, count: int) -> list[av.Packet[Any]]:
    return [await asyncio.wait_for(track.recv(), 2.0) for _ in range(count)]


async def test_the_mixing_thread_sends_opus_on_the_clock() -> None:
    mixer = AudioMixer()
    mixer.source("ann").push(_tone(1000.0, RATE // 5))
    bob = mixer.listen("bob")
    mixer.source("bob").push(_tone(440.0, RATE // 5))
    packets = await _collect(bob, 8)
    await mixer.close()
    steps = {b.pts - a.pts for a, b in itertools.pairwise(packets)}  # type: ignore[operator]
    assert steps == {CHUNK}, steps  # one 20 ms packet per tick, timestamps without gaps
    heard = decode_opus(packets[1:])
    spectrum = np.abs(np.fft.rfft(heard.astype(np.float64)))
    peak = float(np.fft.rfftfreq(len(heard), 1 / RATE)[int(np.argmax(spectrum[1:])) + 1])
    assert abs(peak - 1000) < 60, "bob hears ann, not himself"


async def test_a_stalled_tick_is_skipped_not_sent_late() -> None:
    mixer = AudioMixer()
    track = mixer.listen("bob")
    await _collect(track, 3)
    with mixer._lock:  # the thread cannot mix for 200 ms: ten ticks go by
        time.sleep(0.2)
    packets = await _collect(track, 3)
    await mixer.close()
    gaps = [b.pts - a.pts for a, b in itertools.pairwise(packets)]  # type: ignore[operator]
    assert mixer.skipped >= 5
    assert any(g >= 5 * CHUNK for g in gaps) or packets[0].pts >= 10 * CHUNK, gaps  # type: ignore[operator]


async def test_a_stalled_sender_sends_the_newest_packets_not_the_backlog() -> None:
    track = MixTrack("bob")
    for pts in range(0, 8 * CHUNK, CHUNK):  # a loop stall: eight packets waiting
        packet = av.Packet(b"\x00")
        packet.pts = pts
        track.deliver(packet)
    sent = [(await track.recv()).pts for _ in range(BACKLOG_MAX)]
    assert sent == [p * CHUNK for p in range(8 - BACKLOG_MAX, 8)]
    assert track.stale == 8 - BACKLOG_MAX
    for pts in range(8 * CHUNK, 11 * CHUNK, CHUNK):  # late but keeping pace: all of them
        packet = av.Packet(b"\x00")
        packet.pts = pts
        track.deliver(packet)
        assert (await track.recv()).pts == pts
    assert track.stale == 8 - BACKLOG_MAX


def _rtp(seq: int) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * CHUNK)
    packet._data = bytes([seq % 256])  # type: ignore[attr-defined]
    return packet


def test_voices_are_decoded_on_arrival_and_late_ones_dropped() -> None:
    buffer = ArrivalAudioBuffer(16)
    released = [buffer.add(_rtp(seq))[1] for seq in (65534, 65535, 0, 2)]
    assert [f.timestamp if f else None for f in released] == [
        s * CHUNK for s in (65534, 65535, 0, 2)
    ], "each packet at once, across the wrap, and past a gap"
    assert buffer.add(_rtp(1))[1] is None, "arrived after a newer one: too late to play"
    assert buffer.add(_rtp(2))[1] is None, "a duplicate"
    assert buffer.late == 2
    restarted = [buffer.add(_rtp(40000 + i))[1] for i in range(RESYNC_AFTER + 2)]
    assert restarted[0] is None and restarted[-1] is not None, "a renumbered sender resyncs"
