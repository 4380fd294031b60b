"""Mouth to ear: one-way audio latency, browser → server audio mix → browser.

The demo runs with three experts in demo-consultation (each a headless Chromium) and
the clinic station of appliance-1 (Chromium with the kiosk's autoplay flag). In every
page ``getUserMedia`` is replaced before the page's own script runs: the webcam is still
Chromium's fake one, but the microphone is a WebAudio graph (oscillator → gain →
``MediaStreamAudioDestinationNode``), so room.js and station.js send its track as they
would a microphone's. Every 750 ms each sender emits a 30 ms pulse (5 ms ramps), the
senders staggered within the period; a sender's pulses cycle through four frequencies
of its own (sixteen bands 300 Hz apart from 600 Hz to 5.1 kHz), so a pulse is
attributed to its sender by frequency and to its emission unambiguously up to 3 s late
(later ones would alias: the bench counts those near that limit).

An AudioWorklet finds pulse onsets sample by sample (per band: complex demodulation,
10 ms moving average, onset = the first sample whose envelope reaches half the pulse's
peak). The same detector runs twice in every page: on the page's own generated signal
(the *mouth*: the moment its samples enter the track WebRTC sends) and on the stream
the page plays from its ``voices`` element (the *ear*). Onsets in AudioContext time
become wall-clock time (``performance.timeOrigin + performance.now()``) through the
page's render clock (the earliest main-thread reading of ``currentTime`` against
``performance.now()`` near it; ± one 10.7 ms render step, the same rule on both
sides); each page's clock is checked against Python's ``time.time()`` (all run on this
machine). Latency = ear onset − the sender's mouth onset of the same pulse.

Included: Chromium's send path (10 ms audio chunks, Opus 20 ms frames, pacing),
loopback UDP, the server (SRTP, aiortc's audio jitter buffer, Opus decode, the mixer's
per-source buffer and 20 ms tick, Opus encode in the default executor, the queue to the
sender), the receiver's NetEq jitter buffer and decode, the audio element's playout
pull and the hand-over into WebAudio. Not included: a real microphone's capture buffer
and audio processing (echo cancellation etc. apply to captured microphones, not to a
generated track; typically 10–20 ms), and the sound card's buffer after the render
graph (``outputLatency``; headless Chromium has none, its nominal figure is printed
but not added; typically 10–40 ms on real hardware).

Same-run baseline: during the conference, one more Chromium sends the same pulses to
itself over a direct WebRTC call (two peer connections on loopback, no server) and
measures them the same way: what the browsers alone cost on this machine, under the
same load. It also feeds its generated track straight back into WebAudio: the
hand-over alone (one or two render steps), which the ear's figures include and which
stands in for the sound card's buffer they leave out. Each receiver's own share (NetEq
buffer and target, concealed samples) is printed from its WebRTC statistics, the
server's event-loop lag from the room's latency endpoint, and where the machine's CPU
went while the pulses ran (server, appliance, all Chromium processes, the whole machine,
in per cent of one core: on two cores, 200 % means nothing was left).

    python bench/mouth_to_ear.py [--quick] [--seconds N] [--experts N] [--browser-nice N]
                                 [--audio-only] [--no-webcams]

``--browser-nice N`` lowers the browsers' sessions (their kernel autogroup, not only
their nice value: Playwright starts each browser in a session of its own, and the
scheduler shares the CPU between sessions first). ``--audio-only`` has every expert
switch their room to audio only, so the experts' browsers decode no composite;
``--no-webcams`` gives them a still 64×36 picture at 1 fps as their webcam: with both,
the experts' browsers neither encode nor decode video (the station's page keeps its
composite), which shows what the audio path costs when the browsers are not short of CPU.

Last line: JSON with expert_to_clinic_p50_ms, expert_to_clinic_p95_ms,
clinic_to_expert_p50_ms, clinic_to_expert_p95_ms, experts; then expert_to_expert,
direct (the baseline), first/second-half medians, missed pulses, the receivers'
jitter buffers, the worst concealment, the server's loop lag, the CPU shares, the
clock skew, seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import cpu_share  # noqa: E402
from bench.pulse_pages import (  # noqa: E402
    CLOCK_JS,
    COLLECT_JS,
    DIRECT_JS,
    EAR_JS,
    LATENCY_JS,
    MOUTH_JS,
    PULSES_JS,
    STATS_JS,
    WORKLET_JS,
)
from tests.helpers import (  # noqa: E402 - the same harness as the e2e tests
    CHROMIUM,
    CHROMIUM_ARGS,
    PC_CONNECTED,
    demo_info,
    launch_demo,
    percentile,
    stop_demo,
)

ALL_EXPERTS = ["demo", "expert2", "expert3"]
STATION = "station"
PASSWORD = "mouth-to-ear"
KIOSK_FLAGS = ["--autoplay-policy=no-user-gesture-required"]
SENDERS = [STATION, *ALL_EXPERTS]
HOPS = 4  # each sender's pulses cycle through four frequencies
# Sender i's k-th frequency: 600 + 300·(i + 4k) Hz (station 600, 1800, 3000, 4200 Hz;
# demo 900, 2100, 3300, 4500 Hz; ...): sixteen bands 300 Hz apart, none shared.
BANDS = {name: [600.0 + 300.0 * (i + 4 * k) for k in range(HOPS)] for i, name in enumerate(SENDERS)}
PERIOD_S = 0.75  # between one sender's pulses
WINDOW_MS = HOPS * PERIOD_S * 1000  # a pulse heard later than this would alias
PULSE_S = 0.03
AMPLITUDE = 0.3
LEAD_S = 1.0  # the first pulse, after the pulses are scheduled


class Party:
    """One browser page that sends pulses on ``hops`` and listens on ``bands``."""

    executable = CHROMIUM  # or a wrapper that starts it at a lower priority
    webcams = True  # False: the experts' webcam is a still 64×36 picture at 1 fps

    def __init__(self, pw: Any, name: str, bands: list[tuple[str, int]], label: str = "") -> None:
        self.name = name  # whose pulses it sends
        self.label = label or name
        self.bands = bands  # ear band → (sender, hop)
        self.browser = pw.chromium.launch(
            executable_path=Party.executable, args=[*CHROMIUM_ARGS, *KIOSK_FLAGS]
        )
        context = self.browser.new_context(bypass_csp=True)  # the detector is a blob: worklet
        cfg = {
            "hops": BANDS[name],
            "bands": [BANDS[s][k] for s, k in bands],
            "threshold": AMPLITUDE / 4,
            "webcam": Party.webcams,
        }
        context.add_init_script(f"({MOUTH_JS})({json.dumps(cfg)}, {json.dumps(WORKLET_JS)});")
        self.page = context.new_page()
        self.audio: dict[str, Any] = {}
        self.before: dict[str, float] = {}
        self.after: dict[str, float] = {}
        self.collected: dict[str, Any] = {}
        self.skew = (0.0, 0.0)

    def join(self, url: str) -> None:
        self.page.goto(url + "/login?next=/room/demo-consultation")
        self.page.fill("#username", self.name)
        self.page.fill("#password", PASSWORD)
        self.page.click("#login-button")
        self.page.wait_for_url(lambda u: urlparse(u).path == "/room/demo-consultation")

    def clock_skew_ms(self) -> tuple[float, float]:
        """The page's wall clock minus Python's, and the uncertainty (half the round trip),
        from the quickest of five round trips."""
        tries = []
        for _ in range(5):
            before = time.time()
            page_ms = float(self.page.evaluate(CLOCK_JS))
            after = time.time()
            tries.append((page_ms - (before + after) * 500, (after - before) * 500))
        return min(tries, key=lambda t: t[1])


def pulse_all(parties: list[Party], count: int) -> None:
    """Every party listens, then sends ``count`` pulses; collect what each heard."""
    for party in parties:
        party.skew = party.clock_skew_ms()
        party.audio = party.page.evaluate(EAR_JS)
    time.sleep(2.0)  # the ears listen before the first pulse
    for party in parties:
        party.before = party.page.evaluate(STATS_JS)
    for party in parties:
        offset = SENDERS.index(party.name) * PERIOD_S / len(SENDERS)
        party.page.evaluate(PULSES_JS, [PERIOD_S, offset, count, LEAD_S, PULSE_S, AMPLITUDE])
    time.sleep(LEAD_S + count * PERIOD_S)
    for party in parties:
        party.after = party.page.evaluate(STATS_JS)
    time.sleep(HOPS * PERIOD_S)  # the last pulses' way through
    for party in parties:
        party.collected = party.page.evaluate(COLLECT_JS)


class RenderClock:
    """A page's AudioContext time as wall-clock ms.

    The page logs (wall ms, ``currentTime``) every 5 ms from its main thread; a reading
    can only be late, never early, so the smallest difference within 5 s of an instant
    is the render callback's own time. The same rule in every page: what it leaves out
    (up to one render step) is the same for sender and receiver.
    """

    def __init__(self, log: list[list[float]]) -> None:
        self.log = np.array(log, dtype=np.float64)

    def wall_ms(self, ctx_s: float) -> float:
        near = self.log[np.abs(self.log[:, 1] - ctx_s) < 5.0]
        if not len(near):
            near = self.log
        return ctx_s * 1000 + float(np.min(near[:, 0] - near[:, 1] * 1000))

    def step_ms(self) -> float:
        """How far ``currentTime`` jumps at once: one render callback."""
        steps = np.diff(np.unique(self.log[:, 1])) * 1000
        return float(np.median(steps)) if len(steps) else float("nan")


Pairs = dict[tuple[str, str], list[tuple[float, float]]]  # (from, to) → [(sent, latency ms)]


def match(parties: list[Party]) -> tuple[Pairs, int, int]:
    """Each onset heard, paired with its sender's latest pulse of that frequency; and how
    many onsets had no such pulse, or repeated one already heard (concealment can
    replay the last few milliseconds it received)."""
    clocks = {p.name: RenderClock(p.collected["clock"]) for p in parties}
    sent: dict[tuple[str, int], list[float]] = {}  # (sender, hop) → mouth onsets, wall ms
    for party in parties:
        for hop, ctx_s in party.collected["mouth"]:
            sent.setdefault((party.name, hop), []).append(clocks[party.name].wall_ms(ctx_s))
    pairs: Pairs = {}
    heard_once: set[tuple[str, str, float]] = set()
    strays = repeats = 0
    for party in parties:
        for band, ctx_s in sorted(party.collected["ear"], key=lambda e: e[1]):
            sender, hop = party.bands[band]
            heard = clocks[party.name].wall_ms(ctx_s)
            earlier = [t for t in sent.get((sender, hop), []) if t <= heard]
            if not earlier or heard - earlier[-1] >= WINDOW_MS:
                strays += 1
            elif (sender, party.name, earlier[-1]) in heard_once:
                repeats += 1
            else:
                heard_once.add((sender, party.name, earlier[-1]))
                pairs.setdefault((sender, party.name), []).append(
                    (earlier[-1], heard - earlier[-1])
                )
    return pairs, strays, repeats


def receiver_share(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """The receiver's jitter buffer, playout and concealment over the pulses."""

    def per(total: str, count: str, scale: float = 1000.0) -> float | None:
        n = after.get(count, 0) - before.get(count, 0)
        return round(scale * (after.get(total, 0) - before.get(total, 0)) / n, 1) if n else None

    stretched = sum(after.get(k, 0) - before.get(k, 0) for k in ("accelerated", "decelerated"))
    samples = after.get("samples", 0) - before.get("samples", 0)
    return {
        "jitter_buffer_ms": per("jitter", "emitted"),
        "jitter_target_ms": per("target", "emitted"),
        "playout_ms": per("playout", "played"),
        "concealed_pct": per("concealed", "samples", 100.0),
        "stretched_pct": round(100.0 * stretched / samples, 1) if samples else None,
    }


def ms(rows: list[tuple[float, float]]) -> list[float]:
    return [lat for _, lat in rows]


def fig(rows: list[tuple[float, float]], q: float) -> float | None:
    return round(percentile(ms(rows), q), 1) if rows else None


def summary(rows: list[tuple[float, float]]) -> str:
    values = ms(rows)
    if not values:
        return "no pulses"
    return (
        f"p50 {percentile(values, 50):6.1f}  p95 {percentile(values, 95):6.1f}  "
        f"min {min(values):6.1f}  max {max(values):6.1f} ms  ({len(values)} pulses)"
    )


def conference(
    pw: Any, info: dict[str, Any], experts: list[str], count: int, audio_only: bool = False
) -> tuple[list[Party], Party, dict[str, Any]]:
    """The experts in the room and the station, all sending and hearing pulses; beside
    them, at the same time, the baseline: one more Chromium calling itself directly
    (the station's pulses, on a page of the server: WebAudio worklets need a secure
    origin such as 127.0.0.1). And the server's own figures (event loop lag)."""
    names = [STATION, *experts]
    parties = [Party(pw, n, [(s, k) for s in names if s != n for k in range(HOPS)]) for n in names]
    baseline = Party(pw, STATION, [(STATION, k) for k in range(HOPS)], label="direct")
    try:
        station, others = parties[0], parties[1:]
        for party in others:
            party.join(info["url"])
        station.page.goto(info["station"])
        joined = f"() => {PC_CONNECTED} && document.getElementById('voices').srcObject !== null"
        station.page.wait_for_function(joined, timeout=60_000)
        for party in others:  # and they hear the station (not the appliance)
            party.page.wait_for_function(
                f"() => ({joined})() && document.getElementById('station-status')"
                ".textContent.startsWith('Clinic station: connected')",
                timeout=60_000,
            )
        if audio_only:  # each expert's own switch: stills instead of their composite
            for party in others:
                party.page.click("#audio-only")
                party.page.wait_for_selector("#audio-only[aria-pressed='true']")
        baseline.page.goto(info["url"] + "/login")
        baseline.page.evaluate(DIRECT_JS)
        baseline.page.wait_for_function(joined, timeout=20_000)
        pids = {k: v for k, v in info["pids"].items() if k in ("server", "appliance")}
        cpu_before, began = cpu_share.take(pids), time.monotonic()
        pulse_all([*parties, baseline], count)
        server = others[0].page.evaluate(LATENCY_JS)
        server["cpu_pct"] = cpu_share.shares(
            cpu_before, cpu_share.take(pids), time.monotonic() - began
        )
        return parties, baseline, server
    finally:
        for party in [*parties, baseline]:
            party.browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 s of pulses (under a minute)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of pulses")
    parser.add_argument("--experts", type=int, default=3, choices=range(1, 4))
    parser.add_argument(
        "--browser-nice",
        type=int,
        default=0,
        choices=range(20),
        help="run the browsers at this lower priority: on one machine they stand in for "
        "the experts' and the clinic's own computers, and must not starve the server",
    )
    parser.add_argument(
        "--audio-only",
        action="store_true",
        help="the experts switch their room to audio only (stills instead of their "
        "composite), as an expert on a weak link would; the station keeps its video",
    )
    parser.add_argument(
        "--no-webcams",
        action="store_true",
        help="the experts' webcam is a still 64x36 picture at 1 fps (with --audio-only, "
        "their browsers then neither encode nor decode video: what the audio path costs "
        "when the browsers are not short of CPU; the station keeps its composite)",
    )
    args = parser.parse_args()
    Party.webcams = not args.no_webcams
    seconds = 12.0 if args.quick else args.seconds
    experts = ALL_EXPERTS[: args.experts]
    count = int(seconds / PERIOD_S)

    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clinicam-m2e-") as tmp:
        if args.browser_nice:
            wrapper = Path(tmp) / "chromium"
            # Playwright starts each browser in a session of its own, and the kernel's
            # autogroups share the CPU between sessions before nice applies within one:
            # the session's own weight is what lowers the browser against the server.
            wrapper.write_text(
                "#!/bin/sh\n"
                f"echo {args.browser_nice} > /proc/self/autogroup 2>/dev/null\n"
                f'exec nice -n {args.browser_nice} {CHROMIUM} "$@"\n'
            )
            wrapper.chmod(0o755)
            Party.executable = str(wrapper)
        state = Path(tmp) / "state"
        proc = launch_demo(state, PASSWORD, "--experts", "3", "--log-level", "WARNING")
        try:
            info = demo_info(proc, state)
            with sync_playwright() as pw:
                parties, baseline, server = conference(pw, info, experts, count, args.audio_only)
        finally:
            stop_demo(proc, whole_group=True)
    elapsed = time.monotonic() - started

    pairs, strays, repeats = match(parties)
    base_pairs, _, _ = match([baseline])
    baseline.collected["ear"] = baseline.collected["loop"]
    loop_pairs, _, _ = match([baseline])

    def direction(senders: list[str], listeners: list[str]) -> list[tuple[float, float]]:
        rows = [x for (s, r), v in pairs.items() if s in senders and r in listeners for x in v]
        return sorted(rows)  # by the time sent

    def halves(rows: list[tuple[float, float]]) -> list[float | None]:
        middle = len(rows) // 2
        return [fig(rows[:middle], 50), fig(rows[middle:], 50)]

    to_clinic = direction(experts, [STATION])
    to_expert = direction([STATION], experts)
    between = direction(experts, experts)
    base = sorted(x for v in base_pairs.values() for x in v)
    loop = sorted(x for v in loop_pairs.values() for x in v)
    shares = {p.label: receiver_share(p.before, p.after) for p in [*parties, baseline]}
    skews = [p.skew for p in parties]

    print(f"{len(experts)} experts + the clinic station, {count} pulses each, {elapsed:.0f} s")
    if args.browser_nice:
        print(f"browsers at nice {args.browser_nice} (the server and appliance at 0)")
    print(
        "page clocks − time.time(): "
        + ", ".join(f"{p.name} {p.skew[0]:+.1f} ± {p.skew[1]:.1f} ms" for p in parties)
    )
    for party in parties:
        audio = party.audio
        print(
            f"{party.name:>8}: AudioContext {audio['rate']} Hz, render step "
            f"{RenderClock(party.collected['clock']).step_ms():.1f} ms, baseLatency "
            f"{audio['base'] * 1000:.0f} ms, outputLatency {audio['output'] * 1000:.0f} ms "
            f"(not added), pulses sent {len(party.collected['mouth'])}/{count}"
        )
        print(f"          receiving: {shares[party.name]}")
    for (sender, listener), rows in sorted(pairs.items()):
        print(f"  {sender:>8} → {listener:<8} {summary(rows)}")
    print(f"expert → clinic  {summary(to_clinic)}")
    print(f"clinic → expert  {summary(to_expert)}")
    if between:
        print(f"expert → expert  {summary(between)}")
    if strays:
        print(f"{strays} onsets matched no pulse sent in the {WINDOW_MS:.0f} ms before")
    if repeats:
        print(f"{repeats} onsets repeated a pulse already heard (not counted)")
    late = sum(1 for v in pairs.values() for _, lat in v if lat > 0.8 * WINDOW_MS)
    if late:
        print(f"WARNING: {late} pulses took over {0.8 * WINDOW_MS:.0f} ms: some may be aliased")
    print(f"server event loop lag {server['loop_lag']}")
    print(f"CPU over the pulses, % of one core: {server['cpu_pct']}")
    print(f"server audio (late ticks skipped, packets left behind): {server['audio']}")
    print(f"baseline, a Chromium calling itself directly (no server): {summary(base)}")
    print(f"          receiving: {shares['direct']}")
    print(f"the hand-over into WebAudio alone (a track straight back in): {summary(loop)}")

    expected = count * len(experts)
    result = {
        "expert_to_clinic_p50_ms": fig(to_clinic, 50),
        "expert_to_clinic_p95_ms": fig(to_clinic, 95),
        "clinic_to_expert_p50_ms": fig(to_expert, 50),
        "clinic_to_expert_p95_ms": fig(to_expert, 95),
        "experts": len(experts),
        "expert_to_expert_p50_ms": fig(between, 50),
        "expert_to_expert_p95_ms": fig(between, 95),
        "direct_p50_ms": fig(base, 50),
        "direct_p95_ms": fig(base, 95),
        "webaudio_handover_p50_ms": fig(loop, 50),
        "expert_to_clinic_p50_halves_ms": halves(to_clinic),
        "clinic_to_expert_p50_halves_ms": halves(to_expert),
        "pulses_per_sender": count,
        "missed_expert_to_clinic": expected - len(to_clinic),
        "missed_clinic_to_expert": expected - len(to_expert),
        "stray_onsets": strays,
        "repeated_onsets": repeats,
        "near_alias_limit": late,
        "station_jitter_buffer_ms": shares[STATION]["jitter_buffer_ms"],
        "experts_jitter_buffer_ms": [shares[n]["jitter_buffer_ms"] for n in experts],
        "concealed_pct_max": max((s["concealed_pct"] or 0.0) for s in shares.values()),
        "server_loop_lag_p95_ms": server["loop_lag"].get("p95_ms"),
        "cpu_pct": server["cpu_pct"],
        "browser_nice": args.browser_nice,
        "audio_only": args.audio_only,
        "webcams": not args.no_webcams,
        "server_ticks_skipped": server["audio"]["ticks_skipped"],
        "server_stale_packets": sum(server["audio"]["stale_packets"].values()),
        "clock_skew_max_ms": round(max(abs(s) + u for s, u in skews), 1),
        "seconds": round(elapsed, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
