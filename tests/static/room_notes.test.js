// node --test: the shared notes' page logic (server/static/room_notes.js): the caret stays
// put when others' text arrives, nothing unsent is overwritten, typing during a save goes
// out next from what was sent, offline retries, an ended consultation is read-only.
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { commonEnds, IDLE_MS, mapCaret, notesSync, RETRY_MS, statusText } from "../../server/static/room_notes.js";

test("common ends never overlap", () => {
  assert.deepEqual(commonEnds("abc", "abc"), { prefix: 3, suffix: 0 });
  assert.deepEqual(commonEnds("aXc", "aYYc"), { prefix: 1, suffix: 1 });
  assert.deepEqual(commonEnds("aa", "aaa"), { prefix: 2, suffix: 0 });
  assert.deepEqual(commonEnds("", "x"), { prefix: 0, suffix: 0 });
});

test("the caret keeps its place in the text around others' changes", () => {
  // someone wrote after the caret: it stays
  assert.equal(mapCaret("Findings: |Plan:", "Findings: |Plan: rest", 10), 10);
  // someone wrote before the caret: it moves with the text
  assert.equal(mapCaret("Plan: x", "NEW Plan: x", 7), 11);
  // someone deleted before the caret
  assert.equal(mapCaret("abcdef", "adef", 5), 3);
  // the caret was inside what changed: the end of the new part
  assert.equal(mapCaret("abcdef", "aXYZef", 2), 4);
});

/** A fake editor and a server whose answers the test gives one by one. */
function harness(initial = "") {
  const editor = { text: initial, caret: initial.length, composing: false };
  const calls = [];
  const shown = [];
  const waits = [];
  let answer = null;
  const sync = notesSync({
    read: () => ({ text: editor.text, caret: editor.caret }),
    busy: () => editor.composing,
    write: (text, caret) => { editor.text = text; editor.caret = caret; },
    save: (body) => new Promise((resolve, reject) => { calls.push(body); answer = { resolve, reject }; }),
    show: (status, latest) => shown.push([status, latest.version]),
    again: (ms) => waits.push(ms),
  });
  const type = (text) => { editor.text = text; editor.caret = text.length; };
  return { editor, calls, shown, waits, sync, type, answer: () => answer };
}

const notes = (version, text, more = {}) => ({ version, text, by: "bob", by_name: "Bob", at: null, ...more });

test("a new version is taken while nothing is unsent, with the caret kept", () => {
  const h = harness();
  h.sync.receive(notes(1, "Findings:\n"));
  assert.equal(h.editor.text, "Findings:\n");
  h.editor.caret = 3;
  h.sync.receive(notes(2, "Findings:\nPlan: rest\n"));
  assert.deepEqual([h.editor.text, h.editor.caret], ["Findings:\nPlan: rest\n", 3]);
  h.sync.receive(notes(1, "stale"));  // an older version arriving late changes nothing
  assert.equal(h.editor.text, "Findings:\nPlan: rest\n");
  assert.deepEqual(h.shown.at(-1), ["saved", 2]);
});

test("unsent typing is never overwritten; the answer brings everyone's text", async () => {
  const h = harness();
  h.sync.receive(notes(1, "one\n"));
  h.type("one\nmine\n");
  h.sync.receive(notes(2, "zero\none\n"));  // bob saved meanwhile
  assert.equal(h.editor.text, "one\nmine\n");
  assert.deepEqual(h.shown.at(-1), ["unsaved", 2]);
  const saved = h.sync.flush();
  assert.deepEqual(h.calls, [{ base_version: 1, text: "one\nmine\n", sent: false }]);
  assert.deepEqual(h.shown.at(-1), ["saving", 2]);
  h.answer().resolve(notes(3, "zero\none\nmine\n", { by: "alice", saved: true }));
  await saved;
  assert.equal(h.editor.text, "zero\none\nmine\n");
  assert.equal(h.sync.dirty(), false);
  assert.deepEqual(h.shown.at(-1), ["saved", 3]);
});

test("typing during a save goes out next, from what was sent", async () => {
  const h = harness();
  h.sync.receive(notes(1, "a\n"));
  h.type("a\nb\n");
  const first = h.sync.flush();
  h.type("a\nb\nc\n");  // still typing while it is saved
  h.answer().resolve(notes(2, "a\nb\nbob\n", { saved: true }));
  await first;
  assert.equal(h.editor.text, "a\nb\nc\n");  // not replaced: c is not sent yet
  assert.deepEqual(h.waits, [0]);  // send the rest soon
  const second = h.sync.flush();
  assert.deepEqual(h.calls[1], { base_version: 2, text: "a\nb\nc\n", sent: true });
  h.answer().resolve(notes(3, "a\nb\nc\nbob\n", { saved: true }));
  await second;
  assert.equal(h.editor.text, "a\nb\nc\nbob\n");
});

test("one save at a time; nothing to save sends nothing", async () => {
  const h = harness();
  await h.sync.flush();
  assert.equal(h.calls.length, 0);
  h.type("x");
  const first = h.sync.flush();
  await h.sync.flush();  // a second flush while saving waits its turn
  assert.equal(h.calls.length, 1);
  h.answer().resolve(notes(1, "x", { saved: true }));
  await first;
});

test("offline: says so and tries again; the text stays", async () => {
  const h = harness();
  h.type("typed offline");
  const saving = h.sync.flush();
  h.answer().reject(Object.assign(new Error("Failed to fetch"), {}));
  await saving;
  assert.deepEqual(h.shown.at(-1), ["offline", 0]);
  assert.deepEqual(h.waits, [RETRY_MS]);
  assert.equal(h.editor.text, "typed offline");
  assert.match(statusText("offline", notes(0, "", { by: null })), /Offline — will save when back/);
  const retry = h.sync.flush();
  assert.deepEqual(h.calls[1], { base_version: 0, text: "typed offline", sent: false });
  h.answer().resolve(notes(1, "typed offline", { saved: true }));
  await retry;
  assert.deepEqual(h.shown.at(-1), ["saved", 1]);
});

test("after the end the notes are read-only and unsent text is kept on the page", async () => {
  const h = harness();
  h.sync.receive(notes(1, "final"));
  h.type("final words");
  const saving = h.sync.flush();
  h.answer().reject(Object.assign(new Error("this consultation has ended"), { status: 409 }));
  await saving;
  assert.equal(h.sync.readOnly, true);
  assert.deepEqual(h.shown.at(-1), ["ended_unsaved", 1]);
  assert.equal(h.editor.text, "final words");
  await h.sync.flush();
  assert.equal(h.calls.length, 1);  // nothing more is sent
  const shown = harness();
  shown.sync.receive(notes(4, "done", { read_only: true }));
  assert.deepEqual(shown.shown.at(-1), ["ended", 4]);
});

test("a refused edit says why and is not retried by itself", async () => {
  const h = harness();
  h.type("x");
  const saving = h.sync.flush();
  h.answer().reject(Object.assign(new Error("too long"), { status: 413 }));
  await saving;
  assert.deepEqual(h.shown.at(-1), ["refused", 0]);
  assert.deepEqual(h.waits, []);
  assert.equal(statusText("refused", notes(0, "", { by: null }), "too long"), "Not saved: too long");
});

test("the status line names who edited last", () => {
  const text = statusText("saved", notes(3, "x", { at: "2026-12-07T09:30:00+00:00" }));
  assert.match(text, /^Saved · last edit by Bob, /);
});

test("while an input method composes a word, nothing is sent or replaced", async () => {
  const h = harness();
  h.sync.receive(notes(1, "a"));
  h.editor.composing = true;
  h.sync.receive(notes(2, "a b"));
  assert.equal(h.editor.text, "a");  // not replaced under the composition
  h.type("a ni'hao");
  await h.sync.flush();
  assert.equal(h.calls.length, 0);
  assert.deepEqual(h.waits, [IDLE_MS]);  // tried again after a pause
  h.editor.composing = false;
  h.type("a 你好");
  const saving = h.sync.flush();
  assert.deepEqual(h.calls, [{ base_version: 1, text: "a 你好", sent: false }]);
  h.answer().resolve(notes(3, "a 你好 b", { saved: true }));
  await saving;
  assert.equal(h.editor.text, "a 你好 b");
});
