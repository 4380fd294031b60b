// node --test: the webcam budget's encoding parameters (server/static/webcam_budget.js).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { WebcamBudget } = require("../../server/static/webcam_budget.js");

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

const { StationStatus } = require("../../server/static/station_status.js");

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

const { RoomPresentation } = require("../../server/static/room_presentation.js");

test("the presentation line says who shared what and whether the clinic sees it", () => {
  const nameOf = (u) => ({ ada: "Dr. Ada" })[u] || u;
  assert.equal(RoomPresentation.text(null, nameOf), "");
  const p = { by: "ada", caption: "Wound photo — shared by ada", category: "clinical_photo", clinic: false };
  assert.equal(RoomPresentation.text(p, nameOf), "Presentation: Wound photo — shared by Dr. Ada · experts only");
  assert.equal(RoomPresentation.buttonText(p), "Show it at the clinic");
  const shown = { ...p, clinic: true };
  assert.match(RoomPresentation.text(shown, nameOf), /· shown at the clinic$/);
  assert.equal(RoomPresentation.buttonText(shown), "Stop showing it at the clinic");
});

const { RoomLinks } = require("../../server/static/room_links.js");

test("link health: figures per party, and the clinic link lost", () => {
  assert.deepEqual(RoomLinks.cells({ connected: false }), ["not connected", "–", "–", "–", "–"]);
  const clinic = { connected: true, streaming: true, up_kbps: 540, down_kbps: 0, up_loss_pct: 2.1,
    rtt_ms: 152, target_kbps: 470, rung: "3/4" };
  assert.deepEqual(RoomLinks.cells(clinic),
    ["540 / 0 kbit/s", "2.1 % / –", "152 ms", "470 kbit/s (rung 3/4)", "–"]);
  assert.equal(RoomLinks.clinicLost({ parties: { clinic } }), false);
  assert.equal(RoomLinks.clinicLost({ parties: { clinic: { connected: false, streaming: false } } }), true);
});

test("the expert sees whether they get video, stills by choice, or stills for a slow link", () => {
  assert.equal(RoomLinks.modeText({ audio_only: false, stills: false, size: [960, 540] }), "Video 960×540");
  assert.match(RoomLinks.modeText({ audio_only: true, stills: true, size: [640, 360] }), /you chose it/);
  assert.match(RoomLinks.modeText({ audio_only: false, stills: true, size: [640, 360] }), /too slow/);
});
