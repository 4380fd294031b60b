"""Each expert hears everyone but themselves."""

from __future__ import annotations

import asyncio

import av
import numpy as np
from aiortc import MediaStreamTrack

from server.media.audio import CHUNK, RATE, level_dbfs, mono_48k
from server.media.audio_mix import AudioMixer


def _tone(freq: float, n: int = CHUNK * 5) -> np.ndarray:
    t = np.arange(n) / RATE
    return (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _dominant(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum[1:])) + 1])


async def test_listeners_hear_the_others_not_themselves() -> None:
    mixer = AudioMixer(clocked=False)
    tones = {"ann": 440.0, "bob": 1000.0, "cy": 2500.0}
    for name, freq in tones.items():
        mixer.source(name).push(_tone(freq))
    for name in tones:
        mixer.listen(name)
    mixes = mixer.mix_once()
    assert sorted(mixes) == sorted(tones)
    for name in tones:
        assert len(mixes[name]) == CHUNK
        samples = mixes[name].astype(np.float64)
        spectrum = np.abs(np.fft.rfft(samples))
        freqs = np.fft.rfftfreq(len(samples), 1 / RATE)

        def power(f: float, s: np.ndarray = spectrum, fr: np.ndarray = freqs) -> float:
            return float(s[np.argmin(np.abs(fr - f))])

        own = power(tones[name])
        others = [power(f) for n, f in tones.items() if n != name]
        assert min(others) > 20 * max(own, 1.0), (name, own, others)
    await mixer.close()


async def test_a_silent_source_adds_silence_and_buffers_stay_bounded() -> None:
    mixer = AudioMixer(clocked=False)
    mixer.source("ann").push(_tone(440.0, RATE))  # a whole second arrives at once …
    assert mixer.source("ann").take(RATE) is None  # … but only 200 ms are kept
    mixer.listen("bob")
    mixer.source("bob")  # bob says nothing
    heard = mixer.mix_once()["bob"]
    assert abs(_dominant(heard) - 440) < 60  # ann, heard by bob
    await mixer.close()


def test_opus_output_is_downmixed_without_a_resampler() -> None:
    left = np.arange(960, dtype=np.int16)
    stereo = np.stack([left, -left + 100], axis=1).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
    frame.sample_rate = 48_000
    assert np.array_equal(mono_48k(frame), np.full(960, 50, dtype=np.int16))
    mono = av.AudioFrame.from_ndarray(left.reshape(1, -1), format="s16", layout="mono")
    mono.sample_rate = 48_000
    assert np.array_equal(mono_48k(mono), left)
    slow = av.AudioFrame.from_ndarray(left.reshape(1, -1), format="s16", layout="mono")
    slow.sample_rate = 8_000
    assert mono_48k(slow) is None  # PCMU and friends: the real resampler


class _Quiet(MediaStreamTrack):
    """A remote track that is connected but has nothing to say yet."""

    kind = "audio"

    async def recv(self) -> av.AudioFrame:
        await asyncio.Future()
        raise AssertionError("unreachable")


async def test_the_clinic_station_replaces_the_appliance_microphone_while_it_is_there() -> None:
    mixer = AudioMixer(clocked=False)
    appliance, station = mixer.source("appliance:a1"), mixer.source("station:a1")
    mixer.stand_in("station:a1", replaces="appliance:a1")
    mixer.listen("ann")
    mixer.listen("station:a1", deaf_to=frozenset({"appliance:a1"}))
    mixer.source("ann").push(_tone(440.0))
    appliance.push(_tone(1000.0))
    station.push(_tone(2500.0))
    mixes = mixer.mix_once()  # no station track attached: the appliance's microphone is heard
    assert abs(_dominant(mixes["ann"]) - 1000) < 60
    assert abs(_dominant(mixes["station:a1"]) - 440) < 60, "the station never hears the appliance"

    station.attach(_Quiet())
    await asyncio.sleep(0)
    assert station.attached
    appliance.push(_tone(1000.0))
    station.push(_tone(2500.0))
    mixer.source("ann").push(_tone(440.0))
    mixes = mixer.mix_once()
    heard = mixes["ann"]
    assert abs(_dominant(heard) - 2500) < 60, "the station's voice, once"
    spectrum = np.abs(np.fft.rfft(heard.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(heard), 1 / RATE)
    assert spectrum[np.argmin(np.abs(freqs - 1000))] < 0.05 * spectrum.max(), "no doubled voice"
    assert abs(_dominant(mixes["station:a1"]) - 440) < 60
    assert level_dbfs(_tone(440.0)) > -20 > mixer.source("nobody").level_dbfs
    station.detach()
    assert not station.attached
    await mixer.close()


def test_a_backlog_is_cut_back_near_real_time_but_jitter_is_kept() -> None:
    from server.media.audio import CHUNK, KEEP, MAX_BUFFER, TRIM_EVERY, AudioSource

    late = AudioSource("patient")  # filled while nobody listened: 200 ms behind
    late.push(np.arange(MAX_BUFFER, dtype=np.int16))
    steady = AudioSource("expert")  # arrives in bursts of two chunks every other tick
    for tick in range(3 * TRIM_EVERY):
        late.push(np.full(CHUNK, 7, np.int16))
        if tick % 2 == 0:
            steady.push(np.full(2 * CHUNK, 5, np.int16))
        assert late.take(CHUNK) is not None
        assert steady.take(CHUNK) is not None or tick == 0
    assert late._buffered <= KEEP, "the 200 ms backlog is gone after a second"
    assert late.trimmed >= MAX_BUFFER - KEEP - CHUNK
    assert steady.trimmed == 0, "a source that needs its buffer keeps it"


async def test_the_recording_hears_everyone_and_nothing_is_mixed_for_it_when_off() -> None:
    from server.media.audio_mix import EVERYONE

    mixer = AudioMixer(clocked=False)
    tones = {"ann": 440.0, "bob": 1000.0, "appliance:cam-1": 2500.0, "station:cam-1": 1700.0}
    for name, freq in tones.items():
        mixer.source(name).push(_tone(freq))
    mixer.listen("ann")
    assert EVERYONE not in mixer.mix_once()  # no recording: no full mix is made
    for name, freq in tones.items():
        mixer.source(name).push(_tone(freq))
    heard: list[np.ndarray] = []
    mixer.record_tap = heard.append
    mixer.silence("station:cam-1", True)  # privacy at the station: nobody hears it
    full = mixer.mix_once()[EVERYONE].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(full))
    freqs = np.fft.rfftfreq(len(full), 1 / RATE)
    level = {n: float(spectrum[np.argmin(np.abs(freqs - f))]) for n, f in tones.items()}
    floor = level.pop("station:cam-1")
    assert min(level.values()) > 20 * max(floor, 1.0), level  # each expert and the clinic
    await mixer.close()
