"""The pages' side of ``bench/mouth_to_ear.py``: the scripts each Chromium runs.

A WebAudio "microphone" that sends pulses, the onset detector (an AudioWorklet) on what
a page sends (its mouth) and what it plays (its ear), the pulse schedule, the WebRTC
statistics each receiver reports, and the direct-call baseline. See that bench's
docstring for the method.
"""

# The onset detector, one AudioWorklet processor per use. For each band: the signal
# times e^{-iωt} (a rotating phasor), averaged over 10 ms (a window that nulls tones
# 100·k Hz away; a pulse 300 Hz away leaks about 7 %), gives the envelope; crossing
# ``threshold`` arms it; 45 ms later the onset is the first sample of the last 80 ms
# whose envelope reached half the peak (minus half the window, its delay), reported in
# AudioContext seconds with its band. Then the band is deaf for 200 ms (tails).
WORKLET_JS = r"""
class Onsets extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.win = Math.round(sampleRate * 0.01);
    this.hist = Math.round(sampleRate * 0.08);
    this.after = Math.round(sampleRate * 0.045);
    this.deaf = Math.round(sampleRate * 0.2);
    this.threshold = o.threshold;
    this.bands = o.freqs.map((f) => ({
      cw: Math.cos((2 * Math.PI * f) / sampleRate), sw: Math.sin((2 * Math.PI * f) / sampleRate),
      c: 1, s: 0, re: new Float64Array(this.win), im: new Float64Array(this.win), sr: 0, si: 0,
      env: new Float32Array(this.hist), armed: false, until: 0, quiet: 0,
    }));
    this.pos = 0;
    this.n = 0;
  }
  process(inputs) {
    const input = inputs[0];
    if (!input || !input.length) return true;
    const len = input[0].length;
    for (let i = 0; i < len; i++) {
      let x = 0;
      for (const channel of input) x += channel[i];
      x /= input.length;
      const frame = currentFrame + i;
      for (let j = 0; j < this.bands.length; j++) {
        const b = this.bands[j];
        const re = x * b.c, im = -x * b.s;
        [b.c, b.s] = [b.c * b.cw - b.s * b.sw, b.s * b.cw + b.c * b.sw];
        b.sr += re - b.re[this.pos];
        b.si += im - b.im[this.pos];
        b.re[this.pos] = re;
        b.im[this.pos] = im;
        const env = (2 * Math.hypot(b.sr, b.si)) / this.win;
        b.env[this.n % this.hist] = env;
        if (!b.armed) {
          if (env > this.threshold && frame >= b.quiet) {
            b.armed = true;
            b.until = frame + this.after;
          }
        } else if (frame >= b.until) {
          let peak = 0;
          for (let k = 0; k < this.hist; k++) peak = Math.max(peak, b.env[k]);
          let back = this.hist - 1;
          while (back > 0 && b.env[(this.n - back + this.hist) % this.hist] < peak / 2) back--;
          const time = (frame - back - this.win / 2) / sampleRate;
          this.port.postMessage({ band: j, time, peak });
          b.armed = false;
          b.quiet = frame + this.deaf;
        }
      }
      this.pos = (this.pos + 1) % this.win;
      this.n++;
    }
    for (const b of this.bands) {  // keep the phasors on the unit circle
      const m = Math.hypot(b.c, b.s);
      b.c /= m;
      b.s /= m;
    }
    return true;
  }
}
registerProcessor("onsets", Onsets);
"""

# Before the page's own script: a generated "microphone", its own onset detector (the
# mouth) and a log of the render clock against the wall clock.
MOUTH_JS = """((cfg, worklet) => {
  const lab = { cfg, mouth: [], ear: [], clock: [], started: null };
  window.mouthToEar = lab;
  const detector = (ctx, freqs) => {
    const node = new AudioWorkletNode(ctx, "onsets", {
      processorOptions: { freqs, threshold: cfg.threshold },
    });
    const mute = new GainNode(ctx, { gain: 0 });
    node.connect(mute).connect(ctx.destination);
    return node;
  };
  const wall = () => performance.timeOrigin + performance.now();
  const tick = () => lab.clock.push([wall(), lab.ctx.currentTime]);
  lab.start = () => lab.started || (lab.started = (async () => {
    const ctx = new AudioContext({ sampleRate: 48000, latencyHint: "interactive" });
    await ctx.resume();
    const url = URL.createObjectURL(new Blob([worklet], { type: "text/javascript" }));
    await ctx.audioWorklet.addModule(url);
    const osc = new OscillatorNode(ctx, { frequency: cfg.hops[0] });
    const gain = new GainNode(ctx, { gain: 0 });
    const dest = new MediaStreamAudioDestinationNode(ctx, { channelCount: 1 });
    osc.connect(gain).connect(dest);
    const mouth = detector(ctx, cfg.hops);
    gain.connect(mouth);
    mouth.port.onmessage = (ev) => lab.mouth.push([ev.data.band, ev.data.time]);
    osc.start();
    Object.assign(lab, { ctx, osc, gain, dest, detector });
    setInterval(tick, 5);
    return lab;
  })());
  const devices = navigator.mediaDevices;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = async (constraints = {}) => {
    let video = null;
    if (constraints.video && cfg.webcam !== false) {
      video = await original({ video: constraints.video });
    } else if (constraints.video) {  // a still 64×36 picture at 1 fps: a camera that costs nothing
      const canvas = Object.assign(document.createElement("canvas"), { width: 64, height: 36 });
      canvas.getContext("2d").fillRect(0, 0, 64, 36);
      video = canvas.captureStream(1);
    }
    const stream = video || new MediaStream();
    if (constraints.audio) stream.addTrack((await lab.start()).dest.stream.getAudioTracks()[0]);
    return stream;
  };
})"""

EAR_JS = """async () => {
  // The ear: what the page plays from its voices element, into the same detector.
  const lab = await window.mouthToEar.start();
  const source = lab.ctx.createMediaStreamSource(document.getElementById("voices").srcObject);
  const ear = lab.detector(lab.ctx, lab.cfg.bands);
  source.connect(ear);
  ear.port.onmessage = (ev) => lab.ear.push([ev.data.band, ev.data.time]);
  lab.earSource = source;
  return { rate: lab.ctx.sampleRate, base: lab.ctx.baseLatency, output: lab.ctx.outputLatency };
}"""

PULSES_JS = """([period, offset, count, lead, pulse, amp]) => {
  const { ctx, osc, gain, cfg } = window.mouthToEar;
  const ramp = 0.005, first = ctx.currentTime + lead + offset;
  for (let k = 0; k < count; k++) {
    const t = first + k * period;
    osc.frequency.setValueAtTime(cfg.hops[k % cfg.hops.length], t - 0.05);
    gain.gain.setValueAtTime(0, t);
    gain.gain.linearRampToValueAtTime(amp, t + ramp);
    gain.gain.setValueAtTime(amp, t + pulse - ramp);
    gain.gain.linearRampToValueAtTime(0, t + pulse);
  }
}"""

COLLECT_JS = """() => {
  const lab = window.mouthToEar;
  return { mouth: lab.mouth, ear: lab.ear, clock: lab.clock, loop: lab.loop || [] };
}"""

# The receiver's share as its WebRTC statistics count it (running totals; the bench
# takes the difference over the pulses).
STATS_JS = """async () => {
  const out = {};
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      Object.assign(out, {
        jitter: s.jitterBufferDelay, target: s.jitterBufferTargetDelay,
        emitted: s.jitterBufferEmittedCount, concealed: s.concealedSamples,
        samples: s.totalSamplesReceived, lost: s.packetsLost,
        accelerated: s.removedSamplesForAcceleration,
        decelerated: s.insertedSamplesForDeceleration,
      });
    }
    if (s.type === "media-playout") {
      Object.assign(out, { playout: s.totalPlayoutDelay, played: s.totalSamplesCount });
    }
  });
  return out;
}"""

# The same-run baseline: one page sends its generated track to itself over a direct
# WebRTC call (two peer connections on loopback, no server) and plays it like a room.
DIRECT_JS = """async () => {
  const lab = await window.mouthToEar.start();
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = (ev) => ev.candidate && b.addIceCandidate(ev.candidate);
  b.onicecandidate = (ev) => ev.candidate && a.addIceCandidate(ev.candidate);
  const track = lab.dest.stream.getAudioTracks()[0];
  a.addTrack(track, new MediaStream([track]));
  const remote = new Promise((resolve) => { b.ontrack = (ev) => resolve(ev.track); });
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription();
  await a.setRemoteDescription(b.localDescription);
  const voices = document.createElement("audio");
  voices.id = "voices";
  voices.autoplay = true;
  voices.srcObject = new MediaStream([await remote]);
  document.body.append(voices);
  window.pc = b;
  window.sender = a;
  // and the hand-over into WebAudio alone: the generated track straight back in
  const loop = lab.detector(lab.ctx, lab.cfg.bands);
  lab.ctx.createMediaStreamSource(lab.dest.stream).connect(loop);
  lab.loop = [];
  loop.port.onmessage = (ev) => lab.loop.push([ev.data.band, ev.data.time]);
}"""

CLOCK_JS = "() => performance.timeOrigin + performance.now()"
LATENCY_JS = "async () => (await fetch('/api/consultations/demo-consultation/latency')).json()"
