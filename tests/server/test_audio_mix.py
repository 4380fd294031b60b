"""Each expert hears everyone but themselves."""

from __future__ import annotations

import av
import numpy as np

from server.media.audio import CHUNK, RATE, AudioMixer, mono_48k


def _tone(freq: float, n: int = CHUNK * 5) -> np.ndarray:
    t = np.arange(n) / RATE
    return (8000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _dominant(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[int(np.argmax(spectrum[1:])) + 1])


async def test_listeners_hear_the_others_not_themselves() -> None:
    mixer = AudioMixer()
    tones = {"ann": 440.0, "bob": 1000.0, "cy": 2500.0}
    for name, freq in tones.items():
        mixer.source(name).push(_tone(freq))
    tracks = {name: mixer.listen(name) for name in tones}
    mixer.mix_once()
    for name, track in tracks.items():
        frame = track.queue.get_nowait()
        assert frame.sample_rate == RATE and frame.samples == CHUNK
        samples = frame.to_ndarray().reshape(-1).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(samples))
        freqs = np.fft.rfftfreq(len(samples), 1 / RATE)

        def power(f: float, s: np.ndarray = spectrum, fr: np.ndarray = freqs) -> float:
            return float(s[np.argmin(np.abs(fr - f))])

        own = power(tones[name])
        others = [power(f) for n, f in tones.items() if n != name]
        assert min(others) > 20 * max(own, 1.0), (name, own, others)
    await mixer.close()


async def test_a_silent_source_adds_silence_and_buffers_stay_bounded() -> None:
    mixer = AudioMixer()
    mixer.source("ann").push(_tone(440.0, RATE))  # a whole second arrives at once …
    assert mixer.source("ann").take(RATE) is None  # … but only 200 ms are kept
    listener = mixer.listen("bob")
    mixer.source("bob")  # bob says nothing
    mixer.mix_once()
    heard = listener.queue.get_nowait().to_ndarray().reshape(-1)
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
