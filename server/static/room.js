// The consultation room: webcam up and composite down over WebRTC, room events over a
// WebSocket (floor control, main window), camera control for whoever holds the floor.
// Both connections reconnect by themselves and say what is happening while they do.
"use strict";
const cid = decodeURIComponent(location.pathname.split("/").pop());
const base = `/api/consultations/${encodeURIComponent(cid)}`;
const video = document.getElementById("live");
const banner = document.getElementById("connection");
const cameraStatus = document.getElementById("camera-status");
let info = null;
let room = null;       // latest room state from the server
let pc = null;
let ws = null;
let localStream = null;
let mediaRetry = 1000, wsRetry = 1000;
let mediaTimer = null, wsTimer = null;

function say(text) { banner.textContent = text; }
function nameOf(user) {
  return (room && room.labels[`expert:${user}`]) || user;
}

// ---- media -------------------------------------------------------------------------
async function waitForIce(peer, timeoutMs) {
  if (peer.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    peer.addEventListener("icegatheringstatechange", () => {
      if (peer.iceGatheringState === "complete") resolve();
    });
    setTimeout(resolve, timeoutMs);
  });
}

function retryMedia(reason) {
  if (mediaTimer) return;
  say(`${reason} — reconnecting video in ${Math.round(mediaRetry / 1000)} s…`);
  mediaTimer = setTimeout(() => { mediaTimer = null; connectMedia(); }, mediaRetry);
  mediaRetry = Math.min(mediaRetry * 2, 15000);
}

async function connectMedia() {
  if (pc) { pc.close(); pc = null; }
  say("Connecting video…");
  if (!localStream) {
    try {
      const cam = info.webcam;
      localStream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: cam.width }, height: { ideal: cam.height }, frameRate: { ideal: cam.fps } },
        audio: { echoCancellation: true, noiseSuppression: true },
      });
    } catch (e) {
      cameraStatus.textContent = "No webcam/microphone available: others will not see you.";
    }
  }
  const peer = new RTCPeerConnection({ iceServers: [] });
  pc = peer;
  if (localStream) {
    for (const track of localStream.getTracks()) peer.addTrack(track, localStream);
  } else {
    peer.addTransceiver("video", { direction: "recvonly" });
  }
  // The server encodes each composite once in H.264 and sends the same packets to every
  // expert who chose that view, so ask for H.264 (constrained baseline) first.
  const h264 = RTCRtpReceiver.getCapabilities("video").codecs.filter((c) =>
    c.mimeType === "video/H264" && /packetization-mode=1/.test(c.sdpFmtpLine || "") &&
    /profile-level-id=42(e0|00)1f/.test(c.sdpFmtpLine || ""));
  for (const t of peer.getTransceivers()) {
    if (t.receiver.track.kind === "video" && h264.length && t.setCodecPreferences) t.setCodecPreferences(h264);
  }
  peer.ontrack = (ev) => {
    if (peer !== pc) return; // a connection already replaced must not take the speaker
    // Interactive: ask the browser not to hold frames back for smoothness.
    if ("jitterBufferTarget" in ev.receiver) ev.receiver.jitterBufferTarget = 0;
    else if ("playoutDelayHint" in ev.receiver) ev.receiver.playoutDelayHint = 0;
    if (ev.track.kind === "video") video.srcObject = new MediaStream([ev.track]);
    else document.getElementById("voices").srcObject = new MediaStream([ev.track]);
  };
  peer.onconnectionstatechange = () => {
    if (peer !== pc) return;
    const st = peer.connectionState;
    if (st === "connected") { say(""); mediaRetry = 1000; WebcamBudget.apply(peer, room && room.webcam_budget); }
    else if (st === "failed" || st === "disconnected") retryMedia("Video connection lost");
  };
  try {
    await peer.setLocalDescription(await peer.createOffer());
    await waitForIce(peer, 3000);
    const answer = await Api.call("POST", `${base}/webrtc`, { sdp: peer.localDescription.sdp, type: "offer" });
    if (peer !== pc) return;
    await peer.setRemoteDescription(answer);
  } catch (e) {
    if (peer === pc) retryMedia(e.status ? `Server said: ${e.message}` : "Server unreachable");
  }
}

// ---- room events ------------------------------------------------------------------
function connectEvents() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${proto}://${location.host}${base}/ws`);
  ws = socket;
  socket.onopen = () => { wsRetry = 1000; };
  socket.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "room") { room = msg; render(); WebcamBudget.apply(pc, room.webcam_budget); }
    else if (msg.type === "error") cameraStatus.textContent = msg.message;
    else if (msg.type === "links") RoomLinks.render(msg, nameOf);
    else if (msg.type === "attention") {
      const el = document.getElementById("attention");
      el.textContent = "The clinic asks for your attention.";
      el.hidden = false;
      setTimeout(() => { el.hidden = true; }, 15000);
    }
  };
  socket.onclose = () => {
    if (ws !== socket) return;
    say("Connection to the server lost — reconnecting…");
    if (!wsTimer) wsTimer = setTimeout(() => { wsTimer = null; connectEvents(); connectMedia(); }, wsRetry);
    wsRetry = Math.min(wsRetry * 2, 15000);
  };
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function render() {
  const f = room.floor;
  const mine = f.holder === room.you;
  const chair = f.chair === room.you;
  document.getElementById("control-holder").textContent = mine
    ? "You hold camera control." : `Camera control: ${nameOf(f.holder)}`;
  document.getElementById("camera-controls").disabled = !mine;
  document.getElementById("online").textContent = `Online: ${room.online.map(nameOf).join(", ")}`;
  RoomPresentation.render(room.presentation, nameOf);
  RoomLinks.renderMode(room.video);
  RoomRelevance.render(room.relevance);
  document.getElementById("station-status").textContent = StationStatus.text(room.station);
  const actions = document.getElementById("floor-actions");
  actions.replaceChildren();
  const button = (label, msg, id) => {
    const b = document.createElement("button");
    b.textContent = label; if (id) b.id = id;
    b.onclick = () => send(msg);
    actions.append(b);
  };
  if (!mine && !f.pending.includes(room.you)) button("Request control", { type: "floor", action: "request" }, "floor-request");
  if (!mine && f.pending.includes(room.you)) actions.append("Waiting for the chair…");
  if (mine && !chair) button("Release control", { type: "floor", action: "release" }, "floor-release");
  if (chair && !mine) button("Take control back", { type: "floor", action: "revoke" }, "floor-revoke");
  const pending = document.getElementById("floor-pending");
  pending.replaceChildren();
  if (chair) {
    for (const user of f.pending) {
      const li = document.createElement("li");
      li.append(`${nameOf(user)} asks for control `);
      for (const [label, action] of [["Grant", "grant"], ["Refuse", "deny"]]) {
        const b = document.createElement("button");
        b.textContent = label; b.dataset.user = user; b.className = `floor-${action}`;
        b.onclick = () => send({ type: "floor", action, user });
        li.append(b);
      }
      pending.append(li);
    }
  }
}

function setupReplay() {
  const status = document.getElementById("replay-status");
  const from = document.getElementById("replay-from");
  const start = new Date(Date.now() - 10 * 60000);
  from.value = new Date(start.getTime() - start.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  document.getElementById("replay-go").addEventListener("click", async () => {
    const begin = new Date(from.value);
    const minutes = Number(document.getElementById("replay-minutes").value) || 1;
    if (Number.isNaN(begin.getTime())) { status.textContent = "Choose a start time."; return; }
    try {
      const grant = await Api.call("POST", "/api/access", {
        patient: info.patient, operations: ["view"], reason: "archive replay in the room",
      });
      if (grant.status !== "granted") { status.textContent = grant.message; return; }
      const r = await Api.call("POST", `/api/patients/${grant.patient_id}/archive/replay`, {
        consultation: cid,
        start: begin.toISOString(),
        end: new Date(begin.getTime() + minutes * 60000).toISOString(),
      });
      status.textContent = `Showing ${r.note}. Live video returns when the appliance reconnects.`;
    } catch (e) { status.textContent = e.message; }
  });
}

// Which window is under a click on the (letterboxed) video element?
function windowAt(ev) {
  if (!room || !video.videoWidth) return null;
  const rect = video.getBoundingClientRect();
  const scale = Math.min(rect.width / video.videoWidth, rect.height / video.videoHeight);
  const offX = (rect.width - video.videoWidth * scale) / 2, offY = (rect.height - video.videoHeight * scale) / 2;
  const x = ((ev.clientX - rect.left - offX) / scale) * room.size[0] / video.videoWidth;
  const y = ((ev.clientY - rect.top - offY) / scale) * room.size[1] / video.videoHeight;
  for (const [w, tx, ty, tw, th] of room.tiles) {
    if (x >= tx && x < tx + tw && y >= ty && y < ty + th) return w;
  }
  return null;
}
video.addEventListener("click", (ev) => {
  const w = windowAt(ev);
  if (w) send({ type: "main", window: w });
});

// ---- camera -----------------------------------------------------------------------
async function camera(command, quiet) {
  try {
    const ack = await Api.call("POST", `${base}/camera`, command);
    const ptz = ack.state && ack.state.ptz;
    if (!quiet) cameraStatus.textContent = ptz ? `Pan ${ptz.pan.toFixed(1)}°, tilt ${ptz.tilt.toFixed(1)}°` : "Done";
    return ack;
  } catch (e) {
    cameraStatus.textContent = e.message;
    return null;
  }
}

function setupPad() {
  const step = document.getElementById("step");
  for (const btn of document.querySelectorAll(".pad button")) {
    if (btn.hasAttribute("data-home")) { btn.onclick = () => camera({ op: "ptz.home" }); continue; }
    const dx = Number(btn.dataset.pan), dy = Number(btn.dataset.tilt);
    let holdTimer = null, refresh = null, holding = false;
    const start = () => {
      holding = false;
      holdTimer = setTimeout(() => {       // held: continuous move with a dead-man refresh
        holding = true;
        const go = () => camera({ op: "ptz.continuous", pan_speed: dx * 30, tilt_speed: dy * 30, timeout_s: 0.6 }, true);
        go(); refresh = setInterval(go, 300);
      }, 350);
    };
    const end = () => {
      clearTimeout(holdTimer); holdTimer = null;
      if (refresh) { clearInterval(refresh); refresh = null; camera({ op: "ptz.stop" }); return; }
      if (!holding) camera({ op: "ptz.relative", pan: dx * Number(step.value), tilt: dy * Number(step.value) });
    };
    btn.addEventListener("pointerdown", start);
    btn.addEventListener("pointerup", end);
    btn.addEventListener("pointerleave", () => { if (holdTimer || refresh) end(); });
    btn.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); camera({ op: "ptz.relative", pan: dx * Number(step.value), tilt: dy * Number(step.value) }); } });
  }
  document.addEventListener("keydown", (ev) => {
    if (document.getElementById("camera-controls").disabled) return;
    if (["INPUT", "SELECT", "BUTTON"].includes(ev.target.tagName)) return;
    const keys = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    if (keys[ev.key]) {
      ev.preventDefault();
      const s = Number(step.value);
      camera({ op: "ptz.relative", pan: keys[ev.key][0] * s, tilt: keys[ev.key][1] * s });
    }
  });
  const zoom = document.getElementById("zoom");
  zoom.onchange = () => { document.getElementById("zoom-value").textContent = `${zoom.value}×`; camera({ op: "zoom", level: Number(zoom.value) }); };
  document.getElementById("focus-auto").onclick = () => camera({ op: "focus", mode: "auto" });
  document.getElementById("focus").onchange = (ev) => camera({ op: "focus", mode: "manual", lens_position: Number(ev.target.value) });
  document.getElementById("awb").onchange = (ev) => camera({ op: "colour", awb: ev.target.value });
  for (const id of ["brightness", "contrast", "saturation"]) {
    document.getElementById(id).onchange = (ev) => camera({ op: "colour", [id]: Number(ev.target.value) });
  }
  const preset = document.getElementById("preset");
  for (let i = 1; i <= 16; i++) preset.append(new Option(`Preset ${i}`, String(i)));
  document.getElementById("preset-go").onclick = () => camera({ op: "preset.goto", slot: Number(preset.value) });
  document.getElementById("preset-save").onclick = () => camera({ op: "preset.save", slot: Number(preset.value) });
  document.getElementById("snapshot").onclick = async () => {
    const ack = await camera({ op: "snapshot" }, true);
    if (ack && ack.result) cameraStatus.textContent = `Snapshot taken (${ack.result.width}×${ack.result.height})`;
  };
}

(async () => {
  document.getElementById("logout").onclick = () => Api.logout();
  const s = await Api.session();
  document.getElementById("who").textContent = s.display_name;
  try {
    info = await Api.call("GET", base);
  } catch (e) { say(e.message); return; }
  document.title = `Clinicam — ${info.title}`;
  document.getElementById("title").textContent = `${info.title} — patient ${info.patient}`;
  document.getElementById("records-link").href =
    `/records?patient=${encodeURIComponent(info.patient)}&consultation=${encodeURIComponent(cid)}`;
  setupPad();
  RoomRelevance.setup({ base, cid, patient: info.patient });
  RoomLinks.setupMode(send);
  RoomPresentation.setup({ base, current: () => room && room.presentation, say: (t) => { cameraStatus.textContent = t; } });
  setupReplay();
  connectEvents();
  connectMedia();
})();
