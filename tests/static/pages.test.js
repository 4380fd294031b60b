// node --test: the pure parts of the records, admin and clinic-station pages.
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { adminTime, grantState, opsText as grantOps, patientText } from "../../server/static/admin_access.js";
import { updateStateText } from "../../server/static/admin_fleet.js";
import { importResultText } from "../../server/static/admin_import.js";
import { bySlice } from "../../server/static/records_ct.js";
import { fieldText } from "../../server/static/records_emr.js";
import { RecordsPage, opsText } from "../../server/static/records_page.js";
import { filedAs, overallText } from "../../server/static/records_uploads.js";
import {
  muteButtonText, pollProblemText, privacyButtonText, recordingShown, shownText, waitingText,
} from "../../server/static/station_texts.js";
import { h264Codecs, lowLatency, nextRetryMs, waitForIce } from "../../server/static/webrtc.js";

test("records page: record URLs, the pending request's key, sharing only for the consultation's patient", () => {
  const page = new RecordsPage(null);
  page.session = { user: "ada" };
  page.current = { identifier: "P-1", pid: 4, data: null, canEdit: false };
  assert.equal(page.recordUrl({ category: "ct_image", id: 9 }, "render"), "/api/patients/4/records/ct_image/9/render");
  assert.equal(page.pendingKey("P-1"), "clinicam.pending.ada.P-1");
  assert.equal(page.sharingHere(), false);
  page.consultation = { id: "c1", patient: "P-2" };
  assert.equal(page.sharingHere(), false);
  page.consultation.patient = "P-1";
  assert.equal(page.sharingHere(), true);
  assert.equal(opsText(["view"]), "view");
  assert.equal(opsText(["view", "edit"]), "view and edit");
});

test("a patient call that meets a 404 asks whether the grant is still there", async () => {
  let checked = 0;
  const api = { call: async () => { throw Object.assign(new Error("gone"), { status: 404 }); } };
  const page = new RecordsPage(api);
  page.current = { identifier: "P-1", pid: 4, data: {}, canEdit: true };
  page.access = { checkStillValid: async () => { checked += 1; return false; } };
  await assert.rejects(page.patientCall("GET", "/records"), { status: 404 });
  assert.equal(checked, 1);
});

test("uploads: what each file was filed as, and the line about all of them", () => {
  assert.equal(filedAs("ct_image"), "filed as CT image");
  assert.equal(filedAs(undefined), "filed as record");
  assert.equal(overallText({ total: 0, done: 0, failed: 0, skipped: 0 }, false), "");
  assert.equal(overallText({ total: 3, done: 1, failed: 0, skipped: 0 }, true), "Uploading: 1 of 3 files done.");
  assert.equal(overallText({ total: 1, done: 1, failed: 1, skipped: 2 }, false),
    "Finished: 1 of 1 file done, 1 not filed, 2 hidden system files skipped.");
});

test("CT slices in position order (those without one last), record fields as the form shows them", () => {
  const slices = [{ id: 3, slice_position: null }, { id: 2, slice_position: 10 }, { id: 1, slice_position: -5 },
    { id: 4, slice_position: 10 }, { id: 0 }];
  assert.deepEqual(slices.sort(bySlice).map((s) => s.id), [1, 2, 4, 0, 3]);
  assert.equal(fieldText("120/80"), "120/80");
  assert.equal(fieldText(37.5), "37.5");
  assert.equal(fieldText({ a: 1 }), '{"a":1}');
});

test("admin: grants in words, update states, the import's outcome", () => {
  assert.equal(grantOps(["view", "edit"]), "view + edit");
  assert.equal(patientText({ patient: { identifier: "P-1" }, patient_id: 1 }), "P-1");
  assert.equal(patientText({ patient: null, patient_id: 7 }), "patient #7");
  assert.equal(grantState({ active: true }), "active");
  assert.equal(grantState({ active: false }), "expired");
  assert.match(grantState({ revoked_at: "2026-01-01T00:00:00Z", revoked_by: "root" }), /^revoked .* by root$/);
  assert.equal(updateStateText("waiting"), "waiting to install");
  assert.equal(updateStateText("something new"), "something new");
  assert.equal(importResultText({ state: "done", filed: 1, skipped: ["x"] }, "b.json"),
    "Imported b.json: 1 item filed, 1 not imported.");
  assert.equal(importResultText({ state: "failed", filed: 2, skipped: [], error: "bad JSON" }, "b.json"),
    "The import of b.json failed: bad JSON. The 2 items filed before the failure are kept.");
  assert.equal(importResultText({ state: "failed", filed: 0, skipped: [] }, "b.json"),
    "The import of b.json failed: unknown error.");
});

test("clinic station: its buttons, marks and why it cannot connect", () => {
  assert.equal(privacyButtonText(true), "Privacy on — tap to end");
  assert.equal(privacyButtonText(false), "Privacy");
  assert.equal(muteButtonText(true), "Unmute microphone");
  assert.equal(recordingShown({ recording: true, state: "live" }, false), true);
  assert.equal(recordingShown({ recording: true, state: "live" }, true), false);
  assert.equal(recordingShown({ recording: true, state: "waiting" }, false), false);
  assert.equal(shownText("Wound photo"), "The experts are showing you: Wound photo");
  assert.equal(shownText(null), "");
  assert.match(waitingText(true), /Press Leave again/);
  assert.equal(waitingText(false), "Waiting for the consultation…");
  assert.match(pollProblemText({ status: 401 }, false), /^Sign in as the clinic's staff/);
  assert.match(pollProblemText({ status: 401 }, true), /not allowed to connect/);
  assert.equal(pollProblemText({ status: 403, message: "not your clinic" }, false), "not your clinic");
  assert.equal(pollProblemText({}, true), "Server unreachable — trying again…");
});

test("WebRTC: H.264 the server takes, back-off, low playout delay, ICE wait", async () => {
  const codecs = [
    { mimeType: "video/VP8" },
    { mimeType: "video/H264", sdpFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f" },
    { mimeType: "video/H264", sdpFmtpLine: "packetization-mode=0;profile-level-id=42e01f" },
    { mimeType: "video/H264", sdpFmtpLine: "packetization-mode=1;profile-level-id=640c1f" },
  ];
  assert.deepEqual(h264Codecs(codecs).map((c) => codecs.indexOf(c)), [1, 3]);
  assert.deepEqual(h264Codecs(codecs, true).map((c) => codecs.indexOf(c)), [1]);
  assert.deepEqual([1000, 8000, 15000].map(nextRetryMs), [2000, 15000, 15000]);
  const modern = { jitterBufferTarget: 100 }, older = { playoutDelayHint: 1 }, neither = {};
  for (const r of [modern, older, neither]) lowLatency(r);
  assert.deepEqual([modern, older, neither], [{ jitterBufferTarget: 0 }, { playoutDelayHint: 0 }, {}]);
  await waitForIce({ iceGatheringState: "complete" }, 60000);  // already done: no wait
  const listeners = [];
  const peer = { iceGatheringState: "gathering", addEventListener: (n, f) => listeners.push(f) };
  const waiting = waitForIce(peer, 60000);
  peer.iceGatheringState = "complete";
  listeners.forEach((f) => f());
  await waiting;
  await waitForIce({ iceGatheringState: "new", addEventListener: () => {} }, 5);  // gives up after the timeout
});

test("a page shows the browser tests its live objects by name, read only, always the current one", async () => {
  const { inspectable } = await import("../../server/static/dom.js");
  globalThis.window = {};
  let pc = null;
  inspectable({ pc: () => pc });
  assert.equal(window.pc, null);
  pc = { id: 2 };
  assert.deepEqual(window.pc, { id: 2 });
  assert.throws(() => { window.pc = "something else"; }, TypeError);  // read only
  assert.deepEqual(window.pc, { id: 2 });
  delete globalThis.window;
});

test("admin times in the page's language, Chinese texts from the Chinese catalogue", async () => {
  const { readFileSync } = await import("node:fs");
  const { setCatalogue } = await import("../../server/static/i18n.js");
  const read = (code) => JSON.parse(readFileSync(new URL(`../../server/static/i18n/${code}.json`, import.meta.url), "utf8"));
  const en = read("en");
  assert.equal(adminTime(null), "—");
  assert.equal(adminTime("not a time"), "not a time");
  assert.match(adminTime("2026-03-04T12:00:00Z"), /Mar/);
  setCatalogue("zh-CN", read("zh-CN"), en);
  try {
    assert.match(adminTime("2026-03-04T12:00:00Z"), /2026年3月4日/);
    assert.equal(grantState({ active: true }), "有效");
    assert.equal(updateStateText("rolled back"), "已回滚");
    assert.equal(importResultText({ state: "done", filed: 2, skipped: [] }, "b.json"), "已导入 b.json：归档 2 项，0 项未导入。");
    assert.equal(waitingText(false), "正在等待会诊…");
    assert.equal(privacyButtonText(true), "隐私模式已开启，点击结束");
  } finally {
    setCatalogue("en", en);
  }
});
