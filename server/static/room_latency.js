// The live view's latency, as this expert sees it (issue 22): from the clinic camera
// capturing a picture to this screen showing it ("glass to glass"), measured, not estimated.
//
// Each RTP packet of the composite carries the capture time of the patient frame it shows
// (abs-capture-time, server/media/capture_time.py; room_media.js asks for it). For every
// frame the <video> presents, requestVideoFrameCallback says when it goes on screen and
// its RTP timestamp; the receiver's synchronisation source says the capture time of the
// frame last rendered, with its RTP timestamp: when both name the same frame, latency =
// shown − captured. The capture time is in the clinic's clock (NTP ms since 1900), which
// the server takes to agree with its own; this page's clock is another one, so its offset
// to the server's is measured over the room's WebSocket like NTP (the exchange with the
// shortest round trip wins; half of it bounds the error). Once a second the readout beside
// the link health shows the median of the last second and the server is told.
import { $ } from "./dom.js";
import { t } from "./i18n.js";

/** 1900-01-01 → 1970-01-01 in ms: NTP timestamps to the page's epoch. */
export const NTP_UNIX_MS = 2208988800000;
/** Readings over this (ms) show as slow: past what ITU-T G.114 calls acceptable one way. */
export const SLOW_MS = 400;
/** The readout's span: the median of the frames shown in the last second. */
export const WINDOW_MS = 1000;
const CLOCK_SAMPLES = 8;
const FRAMES_KEPT = 300;
/** A reading further than this from plausible is a clock problem, not a latency (ms). */
const IMPLAUSIBLE_MS = 60000;

/** @typedef {{sent: number, received: number, server: number}} ClockSample */
/** @typedef {{rtp: number, ms: number, shown: number}} FrameReading */

export const RoomLatency = {
  /**
   * The server's clock minus this page's (ms), from the exchange with the shortest round
   * trip, and half that round trip (the most it can be off by); null before any.
   * @param {ClockSample[]} samples
   * @returns {{offsetMs: number, errorMs: number} | null}
   */
  clockOffset(samples) {
    let best = null;
    for (const s of samples) {
      if (!(s.received >= s.sent)) continue;
      if (!best || s.received - s.sent < best.received - best.sent) best = s;
    }
    if (!best) return null;
    return { offsetMs: best.server - (best.sent + best.received) / 2, errorMs: (best.received - best.sent) / 2 };
  },

  /**
   * One frame's latency (ms): shown at `shownMs` (this page's clock, ms since 1970),
   * captured at `captureNtpMs` (the clinic's clock, ms since 1900), with the server's clock
   * `offsetMs` ahead of this page's.
   * @param {number} shownMs @param {number} captureNtpMs @param {number} offsetMs
   */
  frameLatency(shownMs, captureNtpMs, offsetMs) {
    return shownMs - (captureNtpMs - NTP_UNIX_MS - offsetMs);
  },

  /** @param {number[]} values @returns {number | null} */
  median(values) {
    if (!values.length) return null;
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  },

  /**
   * The readout's state: "good", "slow", or "none" without a reading.
   * @param {number | null} ms
   */
  state(ms) {
    if (ms === null) return "none";
    return ms > SLOW_MS ? "slow" : "good";
  },

  /** @param {number | null} ms */
  text(ms) {
    return ms === null ? t("room.latency.none") : t("room.latency.value", { ms: Math.round(ms) });
  },

  /**
   * What the readout measures, for its tooltip.
   * @param {number | null} ms @param {{offsetMs: number, errorMs: number} | null} clock
   */
  title(ms, clock) {
    if (ms === null) return t("room.latency.title_none");
    return t("room.latency.title", { error: clock ? Math.max(1, Math.round(clock.errorMs)) : "?" });
  },

  /**
   * The latency of the frame `metadata` describes, if the receiver's source names it.
   * @param {{rtpTimestamp?: number, expectedDisplayTime: number}} metadata
   * @param {{rtpTimestamp?: number, captureTimestamp?: number} | undefined} source
   * @param {number} timeOrigin performance.timeOrigin
   * @param {number} offsetMs the server's clock minus this page's
   * @returns {FrameReading | null}
   */
  reading(metadata, source, timeOrigin, offsetMs) {
    if (!source || typeof source.captureTimestamp !== "number") return null;
    const rtp = metadata.rtpTimestamp;
    if (rtp === undefined || source.rtpTimestamp !== rtp) return null;  // another frame's
    const shown = timeOrigin + metadata.expectedDisplayTime;
    const ms = RoomLatency.frameLatency(shown, source.captureTimestamp, offsetMs);
    return Math.abs(ms) < IMPLAUSIBLE_MS ? { rtp, ms, shown } : null;
  },
};

/** This page's clock, ms since 1970 (sub-ms, monotonic within the page). */
function nowMs() { return performance.timeOrigin + performance.now(); }

/**
 * Start the readout.
 * @param {{video: HTMLVideoElement, pc: () => RTCPeerConnection | null,
 *   send: (message: object) => void}} room
 */
export function setupLatency({ video, pc, send }) {
  /** @type {ClockSample[]} */
  const clock = [];
  /** @type {FrameReading[]} */
  const frames = [];
  const readout = $("latency");
  let pings = 0;

  function ping() {
    send({ type: "clock", sent: nowMs() });
    pings += 1;
    setTimeout(ping, pings < 5 ? 1000 : 10000);  // quickly at first, then to follow drift
  }

  /** @param {any} now @param {any} metadata */
  function onFrame(now, metadata) {
    video.requestVideoFrameCallback(onFrame);
    const offset = RoomLatency.clockOffset(clock);
    const peer = pc();
    if (!offset || !peer) return;
    const receiver = peer.getReceivers().find((r) => r.track && r.track.kind === "video");
    const source = receiver ? receiver.getSynchronizationSources()[0] : undefined;
    const reading = RoomLatency.reading(metadata, /** @type {any} */ (source), performance.timeOrigin, offset.offsetMs);
    if (!reading) return;
    frames.push(reading);
    if (frames.length > FRAMES_KEPT) frames.shift();
  }

  function tick() {
    const since = nowMs() - WINDOW_MS;
    const ms = RoomLatency.median(frames.filter((f) => f.shown >= since).map((f) => f.ms));
    const state = RoomLatency.state(ms);
    readout.textContent = RoomLatency.text(ms);
    readout.title = RoomLatency.title(ms, RoomLatency.clockOffset(clock));
    readout.classList.toggle("good", state === "good");
    readout.classList.toggle("bad", state === "slow");
    readout.dataset.state = state;
    send({ type: "latency", ms: ms === null ? null : Math.round(ms) });
  }

  if ("requestVideoFrameCallback" in video) video.requestVideoFrameCallback(onFrame);
  tick();
  ping();
  setInterval(tick, 1000);

  return {
    /** @param {{sent: number, server: number}} msg the server's answer to a ping */
    clock(msg) {
      clock.push({ sent: msg.sent, received: nowMs(), server: msg.server });
      if (clock.length > CLOCK_SAMPLES) clock.shift();
    },
    /** The frames read lately (for the browser tests). */
    frames: () => frames.slice(),
    /** The clock offset now (for the browser tests). */
    offset: () => RoomLatency.clockOffset(clock),
  };
}
