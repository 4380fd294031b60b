// What the room and the clinic station do alike with WebRTC (ES module): ask for the H.264
// the server sends, wait for ICE gathering, back off between reconnections, and keep the
// playout delay low (a conversation, not a broadcast).

/** The longest wait between two reconnection attempts (ms). */
export const MAX_RETRY_MS = 15000;

/**
 * The wait before the next attempt after one of `ms` failed.
 * @param {number} ms
 */
export function nextRetryMs(ms) {
  return Math.min(ms * 2, MAX_RETRY_MS);
}

/**
 * The H.264 codecs of `codecs` the server can decode and send: packetization mode 1, and
 * with `baseline` only constrained baseline level 3.1 (the composite the server encodes once).
 * @template {{mimeType: string, sdpFmtpLine?: string}} C
 * @param {C[]} codecs
 * @param {boolean} [baseline]
 * @returns {C[]}
 */
export function h264Codecs(codecs, baseline = false) {
  return codecs.filter((c) => c.mimeType === "video/H264" && /packetization-mode=1/.test(c.sdpFmtpLine || "") &&
    (!baseline || /profile-level-id=42(e0|00)1f/.test(c.sdpFmtpLine || "")));
}

/**
 * Ask `transceiver` for H.264 first (when the browser can say so).
 * @param {RTCRtpTransceiver} transceiver @param {boolean} [baseline]
 */
export function preferH264(transceiver, baseline = false) {
  const capabilities = RTCRtpReceiver.getCapabilities("video");
  const h264 = h264Codecs(capabilities ? capabilities.codecs : [], baseline);
  if (h264.length && transceiver.setCodecPreferences) transceiver.setCodecPreferences(h264);
}

/**
 * Until `peer` has gathered its ICE candidates, or `timeoutMs` has passed.
 * @param {RTCPeerConnection} peer @param {number} timeoutMs
 * @returns {Promise<void>}
 */
export async function waitForIce(peer, timeoutMs) {
  if (peer.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") resolve(undefined);
    });
    setTimeout(resolve, timeoutMs);
  });
}

/**
 * Ask the browser not to hold a received track's frames back for smoothness.
 * @param {RTCRtpReceiver} receiver
 */
export function lowLatency(receiver) {
  /** @type {any} */
  const r = receiver;
  if ("jitterBufferTarget" in r) r.jitterBufferTarget = 0;
  else if ("playoutDelayHint" in r) r.playoutDelayHint = 0;
}

/** A phone held upright, as CSS says it (room_phone.css lays the room out for it). */
export const PORTRAIT_QUERY = "(max-width: 600px) and (orientation: portrait)"; // i18n: not for people (a CSS media query)

/**
 * The shape of a screen `width` × `height` CSS px, told to the server with the offer: a
 * phone held upright gets a portrait composite (what PORTRAIT_QUERY matches).
 * @param {number} width @param {number} height
 * @returns {"portrait" | "landscape"}
 */
export function screenShape(width, height) {
  return width <= 600 && height >= width ? "portrait" : "landscape";
}

/** The RTP header extension that carries when the patient's picture was captured. */
export const ABS_CAPTURE_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"; // i18n: not for people (an RTP extension URI)

/**
 * Ask to receive the capture time of each frame (abs-capture-time), which Chromium keeps
 * out of its offers unless asked. False when the browser cannot be asked.
 * @param {RTCRtpTransceiver} transceiver
 */
export function askCaptureTime(transceiver) {
  /** @type {any} */
  const tr = transceiver;
  if (!tr.getHeaderExtensionsToNegotiate || !tr.setHeaderExtensionsToNegotiate) return false;
  /** @type {{uri: string, direction: string}[]} */
  const offered = tr.getHeaderExtensionsToNegotiate();
  if (!offered.some((e) => e.uri === ABS_CAPTURE_TIME)) return false;
  tr.setHeaderExtensionsToNegotiate(offered.map((e) =>
    (e.uri === ABS_CAPTURE_TIME && e.direction === "stopped" ? { ...e, direction: "recvonly" } : e)));
  return true;
}
