// node --test: times, durations and sizes as the pages show them (server/static/format.js).
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import {
  fmtBytes, fmtClock, fmtLeft, fmtMinutes, fmtSeconds, fmtSecondsClock, fmtSize, fmtTime, toLocalInput,
} from "../../server/static/format.js";

test("a time shown in the browser's locale, a missing one as a dash, a bad one as it came", () => {
  assert.equal(fmtTime(null), "—");
  assert.equal(fmtTime(""), "—");
  assert.equal(fmtTime("not a time"), "not a time");
  assert.match(fmtTime("2026-03-04T05:06:07Z"), /2026/);
  assert.match(fmtClock("2026-03-04T05:06:07Z"), /\d\d/);
  assert.match(fmtSecondsClock("2026-03-04T05:06:07Z"), /07/);
});

test("time left on an access, in minutes, hours or days", () => {
  const now = Date.parse("2026-03-04T12:00:00Z");
  const at = (minutes) => new Date(now + minutes * 60000).toISOString();
  assert.equal(fmtLeft(at(0.2), now), "less than a minute left");
  assert.equal(fmtLeft(at(-5), now), "less than a minute left");
  assert.equal(fmtLeft(at(12), now), "12 min left");
  assert.equal(fmtLeft(at(120), now), "2 h left");
  assert.equal(fmtLeft(at(135), now), "2 h 15 min left");
  assert.equal(fmtLeft(at(72 * 60), now), "3 days left");
});

test("durations as m:ss and as the minutes an access request asks for", () => {
  assert.equal(fmtSeconds(null), "");
  assert.equal(fmtSeconds(undefined), "");
  assert.equal(fmtSeconds(0), "0:00");
  assert.equal(fmtSeconds(61.4), "1:01");
  assert.equal(fmtSeconds(3599.6), "60:00");
  assert.equal(fmtMinutes(0), "default");
  assert.equal(fmtMinutes(null), "default");
  assert.equal(fmtMinutes(45), "45 min");
  assert.equal(fmtMinutes(120), "2 h");
  assert.equal(fmtMinutes(90), "1 h 30 min");
});

test("sizes of record files and of release wheels", () => {
  assert.equal(fmtSize(undefined), "");
  assert.equal(fmtSize(0), "0 B");
  assert.equal(fmtSize(1023), "1023 B");
  assert.equal(fmtSize(2048), "2 KB");
  assert.equal(fmtSize(3.5 * 1024 * 1024), "3.5 MB");
  assert.equal(fmtBytes(10), "1 kB");
  assert.equal(fmtBytes(1025), "2 kB");
  assert.equal(fmtBytes(2.25 * 1048576), "2.3 MB");
});

test("a datetime-local value is the local time to the second", () => {
  const d = new Date(2026, 0, 2, 3, 4, 5);  // local time
  assert.equal(toLocalInput(d.toISOString()), "2026-01-02T03:04:05");
  assert.equal(toLocalInput(d.getTime()), "2026-01-02T03:04:05");
  assert.equal(new Date(toLocalInput(d)).getTime(), d.getTime(), "the input reads back as the same time");
});
