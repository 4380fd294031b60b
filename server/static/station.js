// The clinic station (R16): waits for its appliance's consultation, joins it by itself,
// plays the experts, sends the bedside microphone, and leaves when the call ends.
// On the appliance's kiosk the device token comes in the URL fragment (never sent to the
// server as part of a URL), is kept in memory only, and goes with every request as a
// bearer token. On a clinic's tablet there is no token: the page runs on the signed-in
// clinic staff's session (cookie + CSRF token).
import { createApi, signInUrl } from "./api.js";
import { $, inspectable } from "./dom.js";
import { mountSwitch, t } from "./i18n.js";
import {
  muteButtonText, nextText, pollProblemText, privacyButtonText, recordingShown, shownText, waitingText,
} from "./station_texts.js";
import { lowLatency, preferH264, waitForIce } from "./webrtc.js";

const POLL_MS = 2000;
const device = decodeURIComponent(location.pathname.split("/").pop() || "");
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
history.replaceState(null, "", location.pathname);  // the token leaves the address bar
const api = createApi({ token, signIn: false });
const base = `/api/appliances/${encodeURIComponent(device)}/station`;
const statusEl = $("status");
const video = /** @type {HTMLVideoElement} */ ($("experts"));
const voices = /** @type {HTMLAudioElement} */ ($("voices"));
/** @type {RTCPeerConnection | null} */
let pc = null;
/** @type {MediaStream | null} */
let mic = null;
/** @type {string | null} */
let joined = null;
let left = false, muted = false, privacy = false;
/** @type {HTMLAnchorElement} */ ($("signin")).href = signInUrl(location.pathname);

/** @param {string} text */
function say(text) { statusEl.textContent = text; }

function hangUp() {
  if (pc) { pc.close(); pc = null; }
  joined = null;
  video.srcObject = null;
}

/** @param {{id: string}} consultation */
async function join(consultation) {
  joined = consultation.id;
  say(t("station.joining"));
  if (!mic) {
    try {
      mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) { mic = null; }
  }
  const peer = new RTCPeerConnection({ iceServers: [] });
  pc = peer;
  if (mic) for (const t of mic.getAudioTracks()) { t.enabled = !muted; peer.addTrack(t, mic); }
  else peer.addTransceiver("audio", { direction: "recvonly" });
  preferH264(peer.addTransceiver("video", { direction: "recvonly" }));
  peer.ontrack = (ev) => {
    if (peer !== pc) return; // a connection already replaced must not take the speaker
    // A conversation, not a broadcast: the smallest jitter buffer the link allows.
    lowLatency(ev.receiver);
    if (ev.track.kind === "video") video.srcObject = new MediaStream([ev.track]);
    else voices.srcObject = new MediaStream([ev.track]);
  };
  peer.onconnectionstatechange = () => {
    if (peer !== pc) return;
    if (peer.connectionState === "connected") say(mic ? "" : t("station.no_microphone"));
    if (["failed", "disconnected"].includes(peer.connectionState)) { say(t("station.connection_lost")); hangUp(); }
  };
  await peer.setLocalDescription(await peer.createOffer());
  await waitForIce(peer, 3000);
  const answer = await api.call("POST", `${base}/webrtc`, { sdp: peer.localDescription?.sdp, type: "offer" });
  if (peer === pc) await peer.setRemoteDescription(answer);
}

async function poll() {
  try {
    if (!token && !api.csrf) await api.session();
    const s = await api.call("GET", base);
    privacy = s.privacy;
    const button = $("privacy");
    button.setAttribute("aria-pressed", String(privacy));
    button.textContent = privacyButtonText(privacy);
    if (mic) for (const t of mic.getAudioTracks()) t.enabled = !muted && !privacy;
    $("mark-privacy").hidden = !privacy;
    $("mark-recording").hidden = !recordingShown(s, privacy);
    const shown = $("shown");
    shown.hidden = !s.shown;
    shown.textContent = shownText(s.shown);
    const next = $("next");
    next.hidden = !s.next;
    next.textContent = nextText(s.next);
    if (s.state === "live" && !left) {
      if (joined !== s.consultation.id) { hangUp(); await join(s.consultation); }
    } else {
      if (joined) hangUp();
      say(waitingText(left));
    }
  } catch (e) {
    hangUp();
    $("signin").hidden = !(e.status === 401 && !token);
    say(pollProblemText(e, Boolean(token)));
    if (!token && e.status !== 401) api.forgetSession();  // a restarted server: fetch the session again
  }
  setTimeout(poll, POLL_MS);
}

$("mute").onclick = async (/** @type {Event} */ ev) => {
  muted = !muted;
  const button = /** @type {HTMLElement} */ (ev.currentTarget);
  button.setAttribute("aria-pressed", String(muted));
  button.textContent = muteButtonText(muted);
  if (mic) for (const t of mic.getAudioTracks()) t.enabled = !muted;
  try { await api.call("POST", `${base}/controls`, { muted }); } catch (e) { /* shown by the next poll */ }
};
$("volume").oninput = (/** @type {Event} */ ev) => { voices.volume = Number(/** @type {HTMLInputElement} */ (ev.target).value); };
$("privacy").onclick = async () => {
  try { await api.call("POST", `${base}/controls`, { privacy: !privacy }); }
  catch (e) { say(t("station.privacy_failed", { message: e.message })); }
};
$("attention").onclick = async () => {
  const called = t("station.called");
  try { await api.call("POST", `${base}/controls`, { attention: true }); say(called); }
  catch (e) { say(t("station.call_failed", { message: e.message })); }
  setTimeout(() => { if (statusEl.textContent === called) say(""); }, 4000);
};
$("leave").onclick = () => { left = !left; if (left) hangUp(); };

// The language switch: no keyboard on the kiosk, so a big tap target in a corner. Without a
// session the choice is this browser's cookie; the reload keeps the kiosk's device token.
mountSwitch($("station-language"), {
  async call(method, url, body) {
    if (!token && !api.csrf) {
      try { await api.session(); } catch (e) { /* not signed in: the cookie alone */ }
    }
    const answer = await api.call(method, url, body);
    if (token) location.hash = new URLSearchParams({ token }).toString();
    return answer;
  },
});

// The browser tests read the connection.
inspectable({ pc: () => pc });
poll();
