// The clinic station (R16): waits for its appliance's consultation, joins it by itself,
// plays the experts, sends the bedside microphone, and leaves when the call ends.
// On the appliance's kiosk the device token comes in the URL fragment (never sent to the
// server as part of a URL), is kept in memory only, and goes with every request as a
// bearer token. On a clinic's tablet there is no token: the page runs on the signed-in
// clinic staff's session (cookie + CSRF token).
"use strict";
const device = decodeURIComponent(location.pathname.split("/").pop());
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
history.replaceState(null, "", location.pathname);  // the token leaves the address bar
const base = `/api/appliances/${encodeURIComponent(device)}/station`;
const statusEl = document.getElementById("status");
const video = document.getElementById("experts");
const voices = document.getElementById("voices");
let pc = null, mic = null, joined = null, left = false, muted = false, privacy = false;
let csrf = null;  // the clinic staff's session (no token)
document.getElementById("signin").href = `/login?next=${encodeURIComponent(location.pathname)}`;

function say(text) { statusEl.textContent = text; }

async function call(method, url, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = `Bearer ${token}`;
  else if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const resp = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (!resp.ok) {
    const err = new Error((data && data.error) || `HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function hangUp() {
  if (pc) { pc.close(); pc = null; }
  joined = null;
  video.srcObject = null;
}

async function join(consultation) {
  joined = consultation.id;
  say("Joining the consultation…");
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
  const video_ = peer.addTransceiver("video", { direction: "recvonly" });
  const h264 = RTCRtpReceiver.getCapabilities("video").codecs.filter((c) =>
    c.mimeType === "video/H264" && /packetization-mode=1/.test(c.sdpFmtpLine || ""));
  if (h264.length && video_.setCodecPreferences) video_.setCodecPreferences(h264);
  peer.ontrack = (ev) => {
    if (peer !== pc) return; // a connection already replaced must not take the speaker
    // A conversation, not a broadcast: the smallest jitter buffer the link allows.
    if ("jitterBufferTarget" in ev.receiver) ev.receiver.jitterBufferTarget = 0;
    if (ev.track.kind === "video") video.srcObject = new MediaStream([ev.track]);
    else voices.srcObject = new MediaStream([ev.track]);
  };
  peer.onconnectionstatechange = () => {
    if (peer !== pc) return;
    if (peer.connectionState === "connected") say(mic ? "" : "No microphone: the experts cannot hear you.");
    if (["failed", "disconnected"].includes(peer.connectionState)) { say("Connection lost — reconnecting…"); hangUp(); }
  };
  await peer.setLocalDescription(await peer.createOffer());
  await new Promise((resolve) => {
    if (peer.iceGatheringState === "complete") return resolve();
    peer.addEventListener("icegatheringstatechange", () => { if (peer.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 3000);
  });
  const answer = await call("POST", `${base}/webrtc`, { sdp: peer.localDescription.sdp, type: "offer" });
  if (peer === pc) await peer.setRemoteDescription(answer);
}

async function poll() {
  try {
    if (!token && !csrf) csrf = (await call("GET", "/api/session")).csrf;
    const s = await call("GET", base);
    privacy = s.privacy;
    const button = document.getElementById("privacy");
    button.setAttribute("aria-pressed", String(privacy));
    button.textContent = privacy ? "Privacy on — tap to end" : "Privacy";
    if (mic) for (const t of mic.getAudioTracks()) t.enabled = !muted && !privacy;
    document.getElementById("mark-privacy").hidden = !privacy;
    document.getElementById("mark-recording").hidden = !(s.recording && !privacy && s.state === "live");
    const shown = document.getElementById("shown");
    shown.hidden = !s.shown;
    shown.textContent = s.shown ? `The experts are showing you: ${s.shown}` : "";
    if (s.state === "live" && !left) {
      if (joined !== s.consultation.id) { hangUp(); await join(s.consultation); }
    } else {
      if (joined) hangUp();
      say(left ? "You left the consultation. Press Leave again to rejoin." : "Waiting for the consultation…");
    }
  } catch (e) {
    hangUp();
    const signIn = document.getElementById("signin");
    signIn.hidden = !(e.status === 401 && !token);
    if (e.status === 401 && !token) say("Sign in as the clinic's staff to use this station.");
    else if (e.status === 401) say("This station is not allowed to connect (unknown appliance or wrong token).");
    else if (e.status === 403) say(e.message);
    else say("Server unreachable — trying again…");
    if (!token && e.status !== 401) csrf = null;  // a restarted server: fetch the session again
  }
  setTimeout(poll, 2000);
}

document.getElementById("mute").onclick = async (ev) => {
  muted = !muted;
  ev.currentTarget.setAttribute("aria-pressed", String(muted));
  ev.currentTarget.textContent = muted ? "Unmute microphone" : "Mute microphone";
  if (mic) for (const t of mic.getAudioTracks()) t.enabled = !muted;
  try { await call("POST", `${base}/controls`, { muted }); } catch (e) { /* shown by the next poll */ }
};
document.getElementById("volume").oninput = (ev) => { voices.volume = Number(ev.target.value); };
document.getElementById("privacy").onclick = async () => {
  try { await call("POST", `${base}/controls`, { privacy: !privacy }); }
  catch (e) { say(`Privacy could not be changed: ${e.message}`); }
};
document.getElementById("attention").onclick = async () => {
  try { await call("POST", `${base}/controls`, { attention: true }); say("The experts have been called."); }
  catch (e) { say(`Could not call the experts: ${e.message}`); }
  setTimeout(() => { if (statusEl.textContent === "The experts have been called.") say(""); }, 4000);
};
document.getElementById("leave").onclick = () => { left = !left; if (left) hangUp(); };
poll();
