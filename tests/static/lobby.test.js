// node --test: the lobby's pure parts (server/static/lobby_agenda.js, lobby_forms.js,
// station_texts.js's next consultation).
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { mailText, stateText, whenText } from "../../server/static/lobby_agenda.js";
import { isoFromLocal, slot } from "../../server/static/lobby_forms.js";
import { nextText } from "../../server/static/station_texts.js";

test("a schedule slot is the local start as UTC plus its length", () => {
  process.env.TZ = "UTC";
  const s = slot("2026-12-08T09:30", 45);
  assert.ok(s);
  assert.equal(new Date(s.end).getTime() - new Date(s.start).getTime(), 45 * 60000);
  assert.equal(new Date(s.start).getTime(), new Date(2026, 11, 8, 9, 30).getTime());
  assert.equal(slot("", 30), null);
  assert.equal(isoFromLocal("not a time"), null);
});

test("standing consultations have no times; timed ones show both ends", () => {
  assert.equal(whenText({ standing: true, start: null, end: null }), "Any time");
  const text = whenText({ standing: false, start: "2026-12-08T09:30:00+00:00", end: "2026-12-08T10:30:00+00:00" });
  assert.match(text, / to /);
  assert.equal(stateText("no_show"), "No-show");
  assert.equal(stateText("ended"), "Ended");
});

test("the chair sees only the invitations whose e-mail did not go out", () => {
  assert.equal(mailText({ mail: { alice: "sent" } }), "");
  assert.equal(
    mailText({ mail: { alice: "sent", bob: "no_address", carol: "failed: 550 no such user" } }),
    "bob has no e-mail address e-mail to carol not sent (550 no such user)",
  );
});

test("the station says what comes next, or what is under way", () => {
  assert.equal(nextText(null), "");
  assert.match(nextText({ title: "Skin", start: "2026-12-08T09:30:00Z", state: "scheduled" }), /^Next consultation: Skin, /);
  assert.match(nextText({ title: "Skin", start: "2026-12-08T09:30:00Z", state: "live" }), /^Consultation under way: Skin/);
});

test("the chair's report page of a consultation", async () => {
  const { reportHref } = await import("../../server/static/lobby_agenda.js");
  assert.equal(reportHref({ id: "c 1/x" }), "/report/c%201%2Fx");
});
