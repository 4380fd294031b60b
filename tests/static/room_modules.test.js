// node --test: the room page's pure parts (server/static/room_*.js, webcam_budget.js,
// station_status.js, camera_pad.js).
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { arrowCommand, ackText, holdCommand, stepCommand } from "../../server/static/camera_pad.js";
import { readMessage } from "../../server/static/room_events.js";
import { floorActions, holderText, windowAt } from "../../server/static/room_floor.js";
import { NTP_UNIX_MS, RoomLatency, SLOW_MS } from "../../server/static/room_latency.js";
import { RoomLinks } from "../../server/static/room_links.js";
import { RoomPresentation } from "../../server/static/room_presentation.js";
import { replaySpan } from "../../server/static/room_replay.js";
import { StationStatus, callRecordingText } from "../../server/static/station_status.js";
import { WebcamBudget } from "../../server/static/webcam_budget.js";

test("frame rate always, resolution only when the camera delivers more lines", () => {
  assert.deepEqual(WebcamBudget.encoding({ fps: 15, max_height: null }, 1080),
    { maxFramerate: 15, scaleResolutionDownBy: 1 });
  assert.deepEqual(WebcamBudget.encoding({ fps: 5, max_height: 360 }, 1080),
    { maxFramerate: 5, scaleResolutionDownBy: 3 });
  assert.deepEqual(WebcamBudget.encoding({ fps: 5, max_height: 360 }, 240),
    { maxFramerate: 5, scaleResolutionDownBy: 1 });
});

test("apply sets the first encoding of every video sender, and only when it changes", async () => {
  const calls = [];
  const sender = (kind, height, encoding) => ({
    track: { kind, getSettings: () => ({ height }) },
    getParameters: () => ({ encodings: encoding ? [{ ...encoding }] : [] }),
    setParameters: async (p) => { calls.push([kind, p.encodings[0]]); },
  });
  const peer = { getSenders: () => [
    sender("video", 720, { maxFramerate: 30 }),
    sender("audio", 0, {}),
    sender("video", 720, null),  // not negotiated yet
    sender("video", 720, { maxFramerate: 5, scaleResolutionDownBy: 2 }),
  ] };
  await WebcamBudget.apply(peer, { fps: 5, max_height: 360 });
  assert.deepEqual(calls, [["video", { maxFramerate: 5, scaleResolutionDownBy: 2 }]]);
  await WebcamBudget.apply(null, { fps: 5 });  // no connection yet: nothing to do
});

test("the experts see whether the clinic station is there, muted or speaking", () => {
  assert.match(StationStatus.text(null), /not connected/);
  assert.match(StationStatus.text({ connected: false }), /not connected/);
  assert.equal(StationStatus.text({ connected: true, muted: true, level_dbfs: -20 }),
    "Clinic station: connected · microphone muted");
  assert.equal(StationStatus.text({ connected: true, muted: false, level_dbfs: -20 }),
    "Clinic station: connected · speaking");
  assert.equal(StationStatus.text({ connected: true, muted: false, level_dbfs: -90 }),
    "Clinic station: connected");
});

test("the presentation line says who shared what and whether the clinic sees it", () => {
  const nameOf = (u) => ({ ada: "Dr. Ada" })[u] || u;
  assert.equal(RoomPresentation.text(null, nameOf), "");
  const p = { by: "ada", caption: "Wound photo — shared by ada", category: "clinical_photo", clinic: false };
  assert.equal(RoomPresentation.text(p, nameOf), "Presentation: Wound photo — shared by Dr. Ada · experts only");
  assert.equal(RoomPresentation.buttonText(p), "Show it at the clinic");
  const shown = { ...p, clinic: true };
  assert.match(RoomPresentation.text(shown, nameOf), /· shown at the clinic$/);
  assert.equal(RoomPresentation.buttonText(shown), "Stop showing it at the clinic");
  assert.equal(RoomPresentation.text({ by: "bo", caption: null, category: "ct_image", clinic: false }, nameOf),
    "Presentation: ct_image — shared by bo · experts only");
});

test("link health: figures per party, and the clinic link lost", () => {
  assert.deepEqual(RoomLinks.cells({ connected: false }), ["not connected", "–", "–", "–", "–"]);
  const clinic = { connected: true, streaming: true, up_kbps: 540, down_kbps: 0, up_loss_pct: 2.1,
    rtt_ms: 152, target_kbps: 470, rung: "3/4" };
  assert.deepEqual(RoomLinks.cells(clinic),
    ["540 / 0 kbit/s", "2.1 % / –", "152 ms", "470 kbit/s (rung 3/4)", "–"]);
  const expert = { connected: true, rtt_ms: 20 };
  assert.equal(RoomLinks.cells({ ...expert, g2g_ms: 130 })[4], "130 ms");  // the server's estimate
  assert.equal(RoomLinks.cells({ ...expert, g2g_ms: 118, g2g_measured: true })[4], "118 ms (measured)");
  assert.equal(RoomLinks.clinicLost({ parties: { clinic } }), false);
  assert.equal(RoomLinks.clinicLost({ parties: { clinic: { connected: false, streaming: false } } }), true);
  assert.equal(RoomLinks.clinicLost({ parties: {} }), false);
});

test("the expert sees whether they get video, stills by choice, or stills for a slow link", () => {
  assert.equal(RoomLinks.modeText({ audio_only: false, stills: false, size: [960, 540] }), "Video 960×540");
  assert.match(RoomLinks.modeText({ audio_only: true, stills: true, size: [640, 360] }), /you chose it/);
  assert.match(RoomLinks.modeText({ audio_only: false, stills: true, size: [640, 360] }), /too slow/);
  assert.equal(RoomLinks.modeText(null), "");
});

test("floor: each expert gets the buttons their place allows", () => {
  const floor = (holder, pending = []) => ({ holder, chair: "chair", pending });
  const ids = (actions) => actions.map((a) => (typeof a === "string" ? a : a.id));
  assert.deepEqual(ids(floorActions(floor("chair"), "chair")), []);
  assert.deepEqual(ids(floorActions(floor("chair"), "bo")), ["floor-request"]);
  assert.deepEqual(ids(floorActions(floor("chair", ["bo"]), "bo")), ["Waiting for the chair…"]);
  assert.deepEqual(ids(floorActions(floor("bo"), "bo")), ["floor-release"]);
  assert.deepEqual(ids(floorActions(floor("bo"), "chair")), ["floor-request", "floor-revoke"]);
  const [request] = floorActions(floor("chair"), "bo");
  assert.deepEqual(request, { label: "Request control", message: { type: "floor", action: "request" }, id: "floor-request" });
  const nameOf = (u) => u.toUpperCase();
  assert.equal(holderText(floor("bo"), "bo", nameOf), "You hold camera control.");
  assert.equal(holderText(floor("bo"), "chair", nameOf), "Camera control: BO");
});

test("a click on the letterboxed video finds the window under it", () => {
  // a 1280×720 composite shown at 640×360 in a 640×480 element (60 px bars above and below)
  const room = { size: [1280, 720], tiles: [["live", 0, 0, 960, 720], ["ada", 960, 0, 320, 180]] };
  const shown = { width: 640, height: 360 };
  const rect = { left: 10, top: 20, width: 640, height: 480 };
  assert.equal(windowAt(room, shown, rect, 10 + 100, 20 + 60 + 100), "live");
  assert.equal(windowAt(room, shown, rect, 10 + 600, 20 + 60 + 10), "ada");
  assert.equal(windowAt(room, shown, rect, 10 + 600, 20 + 60 + 150), null);  // below the small tile
  assert.equal(windowAt(room, shown, rect, 10 + 100, 20 + 30), null);  // in the bar
  assert.equal(windowAt(room, { width: 0, height: 0 }, rect, 100, 100), null);  // no picture yet
  assert.equal(windowAt(null, shown, rect, 100, 100), null);
});

test("server messages: JSON objects with a type, anything else dropped", () => {
  assert.deepEqual(readMessage('{"type": "attention"}'), { type: "attention" });
  assert.equal(readMessage("not json"), null);
  assert.equal(readMessage("[1, 2]"), null);
  assert.equal(readMessage('{"kind": "room"}'), null);
  assert.equal(readMessage("null"), null);
});

test("replay span: a start time and at least one minute", () => {
  const span = replaySpan("2026-01-02T03:04:05", "5");
  assert.equal(new Date(span.end).getTime() - new Date(span.start).getTime(), 5 * 60000);
  assert.equal(new Date(span.start).getTime(), new Date("2026-01-02T03:04:05").getTime());
  const one = replaySpan("2026-01-02T03:04:05", "");
  assert.equal(new Date(one.end).getTime() - new Date(one.start).getTime(), 60000);
  assert.equal(replaySpan("", "5"), null);
  assert.equal(replaySpan("yesterday", "5"), null);
});

test("camera pad: steps, held moves, arrow keys and the status line", () => {
  assert.deepEqual(stepCommand(-1, 0, 5), { op: "ptz.relative", pan: -5, tilt: 0 });
  assert.deepEqual(holdCommand(0, 1), { op: "ptz.continuous", pan_speed: 0, tilt_speed: 30, timeout_s: 0.6 });
  assert.deepEqual(arrowCommand("ArrowUp", 2), { op: "ptz.relative", pan: 0, tilt: 2 });
  assert.deepEqual(arrowCommand("ArrowLeft", 10), { op: "ptz.relative", pan: -10, tilt: 0 });
  assert.equal(arrowCommand("Enter", 5), null);
  assert.equal(ackText({ state: { ptz: { pan: 5, tilt: -2.25 } } }), "Pan 5.0°, tilt -2.3°");
  assert.equal(ackText({ ok: true }), "Done");
});

test("in Chinese: the pad's status line, the floor, the station and link health", async () => {
  const { readFileSync } = await import("node:fs");
  const { setCatalogue } = await import("../../server/static/i18n.js");
  const { waitingText } = await import("../../server/static/station_texts.js");
  const read = (code) => JSON.parse(readFileSync(new URL(`../../server/static/i18n/${code}.json`, import.meta.url), "utf8"));
  const en = read("en");
  setCatalogue("zh-CN", read("zh-CN"), en);
  try {
    assert.equal(ackText({ state: { ptz: { pan: 5, tilt: -2.25 } } }), "水平 5.0°，俯仰 -2.3°");
    const [request] = floorActions({ holder: "chair", chair: "chair", pending: [] }, "bo");
    assert.equal(request.label, "申请控制权");
    assert.equal(StationStatus.text({ connected: true, muted: true }), "诊所工作站：已连接 · 麦克风已静音");
    assert.equal(waitingText(false), "正在等待会诊…");
    assert.deepEqual(RoomLinks.cells({ connected: false }), ["未连接", "–", "–", "–", "–"]);
  } finally {
    setCatalogue("en", en);
  }
});

test("the main-window chooser lists the layout's windows by their labels", async () => {
  const { mainChoices } = await import("../../server/static/room_main.js");
  const room = { tiles: [["live", 0, 0, 1, 1], ["expert:ada", 1, 0, 1, 1], ["relevance", 2, 0, 1, 1]],
    labels: { live: "Patient — Hill", "expert:ada": "Ada" } };
  assert.deepEqual(mainChoices(room), [
    { value: "live", label: "Patient — Hill" },
    { value: "expert:ada", label: "Ada" },
    { value: "relevance", label: "relevance" },
  ]);
});

test("the room says whether the whole call is recorded, and why not", () => {
  assert.match(callRecordingText("recording"), /recorded/i);
  assert.match(callRecordingText("no_consent"), /no consent/);
  assert.equal(callRecordingText("off"), "");
  assert.equal(callRecordingText(undefined), "");
});

test("latency: the clock exchange with the shortest round trip sets the offset", () => {
  assert.equal(RoomLatency.clockOffset([]), null);
  const offset = RoomLatency.clockOffset([
    { sent: 1000, received: 1200, server: 5000 },  // 200 ms round trip
    { sent: 2000, received: 2010, server: 6105 },  // 10 ms: server 6105 at page 2005
    { sent: 3000, received: 2990, server: 9999 },  // a clock that went back: ignored
  ]);
  assert.deepEqual(offset, { offsetMs: 4100, errorMs: 5 });
});

test("latency: shown minus captured, the capture time moved to this page's clock", () => {
  const captured = NTP_UNIX_MS + 1_000_000;  // 1 000 s after 1970 on the clinic's clock
  assert.equal(RoomLatency.frameLatency(1_000_180, captured, 0), 180);
  // the server's clock runs 50 ms ahead of this page's: the capture was 50 ms earlier here
  assert.equal(RoomLatency.frameLatency(1_000_180, captured, 50), 230);
});

test("latency: a frame is read only when the source names the frame shown", () => {
  const source = { rtpTimestamp: 90, captureTimestamp: NTP_UNIX_MS + 10_000 };
  const metadata = { rtpTimestamp: 90, expectedDisplayTime: 120 };
  assert.deepEqual(RoomLatency.reading(metadata, source, 10_000, 0), { rtp: 90, ms: 120, shown: 10_120 });
  assert.equal(RoomLatency.reading({ ...metadata, rtpTimestamp: 91 }, source, 10_000, 0), null);
  assert.equal(RoomLatency.reading(metadata, { rtpTimestamp: 90 }, 10_000, 0), null);  // not negotiated
  assert.equal(RoomLatency.reading(metadata, undefined, 10_000, 0), null);
  assert.equal(RoomLatency.reading(metadata, source, 10_000 + 3_600_000, 0), null);  // a clock an hour off
});

test("latency: median, states and the readout's words", () => {
  assert.equal(RoomLatency.median([]), null);
  assert.equal(RoomLatency.median([300, 100, 200]), 200);
  assert.equal(RoomLatency.median([100, 200, 300, 1000]), 250);
  assert.equal(RoomLatency.state(null), "none");
  assert.equal(RoomLatency.state(SLOW_MS), "good");
  assert.equal(RoomLatency.state(SLOW_MS + 1), "slow");
  assert.equal(RoomLatency.text(179.6), "latency 180 ms");
  assert.equal(RoomLatency.text(null), "latency –");
  assert.match(RoomLatency.title(180, { offsetMs: 3, errorMs: 0.2 }), /±1 ms/);
  assert.match(RoomLatency.title(null, null), /No latency reading/);
});
