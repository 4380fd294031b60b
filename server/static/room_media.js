// The room's media (R2, R3): this expert's webcam and microphone up, the composite and the
// room's voices down, over one WebRTC connection that reconnects by itself (with back-off)
// and says what is happening while it does.
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { WebcamBudget } from "./webcam_budget.js";
import {
  askCaptureTime, lowLatency, nextRetryMs, PORTRAIT_QUERY, preferH264, screenShape, waitForIce,
} from "./webrtc.js";

/**
 * @param {{api: import("./api.js").Api, base: string, say: (text: string) => void,
 *   cameraSay: (text: string) => void, webcam: () => {width: number, height: number, fps: number},
 *   budget: () => any}} room
 *   `webcam`: the size and rate to ask the camera for; `budget`: the room's webcam budget now
 */
export function roomMedia({ api, base, say, cameraSay, webcam, budget }) {
  const video = /** @type {HTMLVideoElement} */ ($("live"));
  /** @type {RTCPeerConnection | null} */
  let pc = null;
  /** @type {MediaStream | null} */
  let localStream = null;
  let retryMs = 1000;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  let stopped = false;

  /** @param {string} reason */
  function retry(reason) {
    if (timer || stopped) return;
    say(t("room.media.retry", { reason, seconds: Math.round(retryMs / 1000) }));
    timer = setTimeout(() => { timer = null; connect(); }, retryMs);
    retryMs = nextRetryMs(retryMs);
  }

  async function connect() {
    if (pc) { pc.close(); pc = null; }
    if (stopped) return;
    say(t("room.media.connecting"));
    if (!localStream) {
      try {
        const cam = webcam();
        localStream = await navigator.mediaDevices.getUserMedia({
          video: { width: { ideal: cam.width }, height: { ideal: cam.height }, frameRate: { ideal: cam.fps } },
          audio: { echoCancellation: true, noiseSuppression: true },
        });
      } catch (e) {
        cameraSay(t("room.media.no_webcam"));
      }
    }
    const peer = new RTCPeerConnection({ iceServers: [] });
    pc = peer;
    if (localStream) {
      for (const track of localStream.getTracks()) peer.addTrack(track, localStream);
    } else {  // no webcam or microphone: still receive the composite and the room's voices
      peer.addTransceiver("video", { direction: "recvonly" });
      peer.addTransceiver("audio", { direction: "recvonly" });
    }
    // The server encodes each composite once in H.264 and sends the same packets to every
    // expert who chose that view, so ask for H.264 (constrained baseline) first.
    for (const t of peer.getTransceivers()) {
      if (t.receiver.track.kind !== "video") continue;
      preferH264(t, true);
      askCaptureTime(t); // when the patient was filmed: the latency readout (room_latency.js)
    }
    peer.ontrack = (ev) => {
      if (peer !== pc) return; // a connection already replaced must not take the speaker
      // Interactive: ask the browser not to hold frames back for smoothness.
      lowLatency(ev.receiver);
      if (ev.track.kind === "video") video.srcObject = new MediaStream([ev.track]);
      else /** @type {HTMLAudioElement} */ ($("voices")).srcObject = new MediaStream([ev.track]);
    };
    peer.onconnectionstatechange = () => {
      if (peer !== pc) return;
      const st = peer.connectionState;
      if (st === "connected") { say(""); retryMs = 1000; WebcamBudget.apply(peer, budget()); }
      else if (st === "failed" || st === "disconnected") retry(t("room.media.lost"));
    };
    try {
      await peer.setLocalDescription(await peer.createOffer());
      await waitForIce(peer, 3000);
      const shape = screenShape(innerWidth, innerHeight); // a phone held upright: portrait
      const answer = await api.call("POST", `${base}/webrtc`, { sdp: peer.localDescription?.sdp, type: "offer", shape });
      if (peer !== pc) return;
      await peer.setRemoteDescription(answer);
    } catch (e) {
      if (peer === pc) retry(e.status ? t("room.media.server_said", { message: e.message }) : t("room.media.unreachable"));
    }
  }

  // The phone was turned: ask again, for a composite of the screen's new shape.
  matchMedia(PORTRAIT_QUERY).addEventListener("change", () => { if (pc) connect(); });

  /** The consultation ended: hang up, free the webcam, no more retries. */
  function stop() {
    stopped = true;
    if (timer) { clearTimeout(timer); timer = null; }
    if (pc) { pc.close(); pc = null; }
    if (localStream) for (const track of localStream.getTracks()) track.stop();
    localStream = null;
  }

  return {
    connect,
    stop,
    /** The connection now (null before the first one). */
    get pc() { return pc; },
  };
}
