// The consultation room: live video over WebRTC (reconnecting by itself) and camera control.
"use strict";
const cid = decodeURIComponent(location.pathname.split("/").pop());
const video = document.getElementById("live");
const banner = document.getElementById("connection");
const cameraStatus = document.getElementById("camera-status");
let pc = null;
let retryDelay = 1000;
let retryTimer = null;
let canControl = false;

function say(text) { banner.textContent = text; }

async function waitForIce(peer, timeoutMs) {
  if (peer.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const done = () => { if (peer.iceGatheringState === "complete") resolve(); };
    peer.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

function scheduleReconnect(reason) {
  if (retryTimer) return;
  say(`${reason} — reconnecting in ${Math.round(retryDelay / 1000)} s…`);
  retryTimer = setTimeout(() => { retryTimer = null; connect(); }, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 15000);
}

async function connect() {
  if (pc) { pc.close(); pc = null; }
  say("Connecting…");
  const peer = new RTCPeerConnection({ iceServers: [] });
  pc = peer;
  peer.addTransceiver("video", { direction: "recvonly" });
  peer.ontrack = (ev) => { video.srcObject = ev.streams[0] || new MediaStream([ev.track]); };
  peer.onconnectionstatechange = () => {
    if (peer !== pc) return;
    const st = peer.connectionState;
    if (st === "connected") { say(""); retryDelay = 1000; }
    else if (st === "failed" || st === "disconnected") scheduleReconnect("Connection lost");
  };
  try {
    await peer.setLocalDescription(await peer.createOffer());
    await waitForIce(peer, 3000);
    const answer = await Api.call("POST", `/api/consultations/${encodeURIComponent(cid)}/webrtc`,
      { sdp: peer.localDescription.sdp, type: "offer" });
    if (peer !== pc) return;
    await peer.setRemoteDescription(answer);
  } catch (e) {
    if (peer === pc) scheduleReconnect(e.status ? `Server said: ${e.message}` : "Server unreachable");
  }
}

async function sendCamera(command) {
  cameraStatus.textContent = "Moving…";
  try {
    const ack = await Api.call("POST", `/api/consultations/${encodeURIComponent(cid)}/camera`, command);
    const ptz = ack.state && ack.state.ptz;
    cameraStatus.textContent = ptz ? `Pan ${ptz.pan.toFixed(1)}°, tilt ${ptz.tilt.toFixed(1)}°` : "Done";
  } catch (e) {
    cameraStatus.textContent = e.message;
  }
}

function setupPad() {
  const step = document.getElementById("step");
  for (const btn of document.querySelectorAll(".pad button")) {
    btn.disabled = !canControl;
    btn.addEventListener("click", () => {
      if (btn.hasAttribute("data-home")) return sendCamera({ op: "ptz.home" });
      const s = Number(step.value);
      sendCamera({ op: "ptz.relative", pan: Number(btn.dataset.pan) * s, tilt: Number(btn.dataset.tilt) * s });
    });
  }
  document.addEventListener("keydown", (ev) => {
    if (!canControl || ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    const keys = { ArrowLeft: "pan left", ArrowRight: "pan right", ArrowUp: "tilt up", ArrowDown: "tilt down", Home: "home" };
    const label = keys[ev.key];
    if (label) { ev.preventDefault(); document.querySelector(`.pad button[aria-label="${label}"]`).click(); }
  });
}

(async () => {
  document.getElementById("logout").onclick = () => Api.logout();
  const s = await Api.session();
  document.getElementById("who").textContent = s.display_name;
  let info;
  try {
    info = await Api.call("GET", `/api/consultations/${encodeURIComponent(cid)}`);
  } catch (e) { say(e.message); return; }
  document.title = `Clinicam — ${info.title}`;
  document.getElementById("title").textContent = `${info.title} — patient ${info.patient}`;
  document.getElementById("live-label").textContent = `Patient — ${info.clinic}`;
  canControl = info.control_holder === info.you;
  const holder = info.experts.find((e) => e.username === info.control_holder);
  document.getElementById("control-holder").textContent = canControl
    ? "You hold camera control." : `Camera control: ${holder ? holder.name : info.control_holder}`;
  setupPad();
  connect();
})();
