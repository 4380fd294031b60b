// The consultation room: webcam up and composite down over WebRTC (room_media.js), room
// events over a WebSocket (room_events.js: floor control, main window, link health), camera
// control for whoever holds the floor (camera_pad.js). Both connections reconnect by
// themselves and say what is happening while they do. This module starts the page.
import { createApi } from "./api.js";
import { cameraPad } from "./camera_pad.js";
import { $, inspectable } from "./dom.js";
import { formatDateTime, mountSwitch, t } from "./i18n.js";
import { setupAim } from "./room_aim.js";
import { RoomColour } from "./room_colour.js";
import { roomEvents } from "./room_events.js";
import { renderFloor, windowAt } from "./room_floor.js";
import { setupLatency } from "./room_latency.js";
import { RoomLinks } from "./room_links.js";
import { MainChooser } from "./room_main.js";
import { roomMedia } from "./room_media.js";
import { setupNotes } from "./room_notes.js";
import { RoomPresentation } from "./room_presentation.js";
import { RoomRelevance } from "./room_relevance.js";
import { setupReplay } from "./room_replay.js";
import { StationStatus, callRecordingText } from "./station_status.js";
import { WebcamBudget } from "./webcam_budget.js";

const ATTENTION_MS = 15000;

const api = createApi();
const cid = decodeURIComponent(location.pathname.split("/").pop() || "");
const base = `/api/consultations/${encodeURIComponent(cid)}`;
const video = /** @type {HTMLVideoElement} */ ($("live"));
const cameraStatus = $("camera-status");
/** The consultation (GET base) and the latest room state the server sent. */
/** @type {{info: any, room: any}} */
const state = { info: null, room: null };
const notes = setupNotes({ api, base });
/** @type {{render: () => void} | null} */
let aim = null;

/** @param {string} text */
function say(text) { $("connection").textContent = text; }
/** @param {string} text */
function cameraSay(text) { cameraStatus.textContent = text; }
/** @param {string} user */
function nameOf(user) {
  return (state.room && state.room.labels[`expert:${user}`]) || user;
}

const media = roomMedia({
  api, base, say, cameraSay,
  webcam: () => state.info.webcam,
  budget: () => state.room && state.room.webcam_budget,
});
const events = roomEvents({
  base, say, onMessage, reconnected: () => { media.connect(); notes.refresh(); },
});
const latency = setupLatency({ video, pc: () => media.pc, send: (m) => events.send(m) });

/** @param {import("./room_events.js").RoomMessage} msg */
function onMessage(msg) {
  if (msg.type === "room") { state.room = msg; render(); WebcamBudget.apply(media.pc, msg.webcam_budget); }
  else if (msg.type === "error") cameraSay(msg.message);
  else if (msg.type === "ended") ended();
  else if (msg.type === "notes") notes.receive(msg);
  else if (msg.type === "links") RoomLinks.render(/** @type {any} */ (msg), nameOf);
  else if (msg.type === "clock") latency.clock(/** @type {any} */ (msg));
  else if (msg.type === "attention") {
    const note = $("attention");
    note.textContent = t("room.attention");
    note.hidden = false;
    setTimeout(() => { note.hidden = true; }, ATTENTION_MS);
  }
}

/** The chair ended the consultation: hang up, stop reconnecting, say so. */
function ended() {
  events.stop();
  media.stop();
  notes.ended();
  say(t("room.ended"));
}

function render() {
  const room = state.room;
  renderFloor(room, nameOf, events.send);
  if (aim) aim.render();
  MainChooser.render(room);
  $("online").textContent = t("room.online", { names: room.online.map(nameOf).join(t("room.list_separator")) });
  RoomPresentation.render(room.presentation, nameOf);
  RoomLinks.renderMode(room.video);
  RoomRelevance.render(room.relevance);
  RoomColour.render(room.colour);
  $("station-status").textContent = StationStatus.text(room.station);
  const recording = $("call-recording");
  recording.textContent = callRecordingText(room.call_recording);
  recording.classList.toggle("recording-on", room.call_recording === "recording");
}

// A click on a window of the composite makes it this expert's main window.
video.addEventListener("click", (ev) => {
  const shown = { width: video.videoWidth, height: video.videoHeight };
  const w = windowAt(state.room, shown, video.getBoundingClientRect(), ev.clientX, ev.clientY);
  if (w) events.send({ type: "main", window: w });
});

// The browser tests read the room state and the connection, and send room messages.
inspectable({
  room: () => state.room, pc: () => media.pc, send: () => events.send, Api: () => api, latency: () => latency,
});

(async () => {
  $("logout").onclick = () => api.logout();
  mountSwitch($("language-slot"), api);
  const s = await api.session();
  $("who").textContent = s.display_name;
  try {
    state.info = await api.call("GET", base);
  } catch (e) { say(e.message); return; }
  const info = state.info;
  if (info.chair === s.user && s.role === "chair") {  // the chair ends the call and writes the report
    /** @type {HTMLAnchorElement} */ ($("report-link")).href = `/report/${encodeURIComponent(cid)}`;
    $("report-link").hidden = false;
  }
  if (info.state === "ended") { say(t("room.ended")); return; }
  document.title = t("room.document_title", { title: info.title });
  $("title").textContent = t("room.title", { title: info.title, patient: info.patient });
  /** @type {HTMLAnchorElement} */ ($("records-link")).href =
    `/records?patient=${encodeURIComponent(info.patient)}&consultation=${encodeURIComponent(cid)}`;
  const { camera } = cameraPad({ api, base, status: cameraStatus });
  RoomColour.setup({ api, base, say: cameraSay });
  aim = setupAim({ video, stage: /** @type {HTMLElement} */ (video.parentElement), hint: $("aim-hint"), room: () => state.room, camera });
  if (state.room) aim.render();
  RoomRelevance.setup({ api, base, cid, patient: info.patient });
  RoomLinks.setupMode(events.send);
  MainChooser.setup(events.send);
  RoomPresentation.setup({ api, base, current: () => state.room && state.room.presentation, say: cameraSay });
  setupReplay({ api, cid, patient: info.patient });
  const wait = info.opens ? Date.parse(info.opens) - Date.now() : 0;
  if (wait > 0) say(t("room.opens_at", { time: formatDateTime(info.opens) }));
  setTimeout(() => { events.connect(); media.connect(); }, Math.min(Math.max(0, wait), 2 ** 31 - 1));
})();
