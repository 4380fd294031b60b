// The room's shared notes (issue 20): every expert in the consultation types into the same
// text; the server merges edits made at the same time (nothing typed is lost) and sends each
// new version over the room's socket. This page needs no diff: it sends the whole text with
// the version it started from, takes the server's text only while it has nothing unsent, and
// keeps the caret where it was. Saved ~1 s after typing stops, at least every ~3 s while
// typing, and when the field loses focus or the page is left. Never shown at the clinic.
import { $ } from "./dom.js";
import { formatDateTime, t } from "./i18n.js";

export const IDLE_MS = 1000;
export const MAX_WAIT_MS = 3000;
export const RETRY_MS = 3000;

/**
 * How long the unchanged start and end of two texts are (they never overlap).
 * @param {string} a
 * @param {string} b
 * @returns {{prefix: number, suffix: number}}
 */
export function commonEnds(a, b) {
  const most = Math.min(a.length, b.length);
  let prefix = 0;
  while (prefix < most && a.charCodeAt(prefix) === b.charCodeAt(prefix)) prefix++;
  let suffix = 0;
  while (suffix < most - prefix &&
    a.charCodeAt(a.length - 1 - suffix) === b.charCodeAt(b.length - 1 - suffix)) suffix++;
  return { prefix, suffix };
}

/**
 * Where a caret at `caret` in `before` goes once the text is `after`: before the changed
 * part it stays, after it moves with the text, inside it goes to the changed part's end.
 * @param {string} before
 * @param {string} after
 * @param {number} caret
 */
export function mapCaret(before, after, caret) {
  const { prefix, suffix } = commonEnds(before, after);
  if (caret <= prefix) return caret;
  if (caret >= before.length - suffix) return caret + after.length - before.length;
  return after.length - suffix;
}

/**
 * @typedef {{version: number, text: string, by?: string | null, by_name?: string | null,
 *   at?: string | null, read_only?: boolean, saved?: boolean}} Notes
 * @typedef {{text: string, caret: number}} Editor
 * @typedef {"saved" | "saving" | "unsaved" | "offline" | "ended" | "ended_unsaved" | "refused"} Status
 */

/**
 * The notes' synchronisation, without the page: `read` and `write` the editor, `save` an edit
 * (resolves to the server's answer, rejects with an error that may carry `status`), `show`
 * the state. `again` is called when an edit is waiting to be sent (typed during a save);
 * while `busy` (an input method is composing a word) nothing is sent or replaced.
 * @param {{read: () => Editor, write: (text: string, caret: number) => void, busy?: () => boolean,
 *   save: (body: {base_version: number, text: string, sent: boolean}, leaving: boolean) => Promise<Notes>,
 *   show: (status: Status, latest: Notes, detail?: string) => void, again: (ms: number) => void}} io
 */
export function notesSync({ read, write, save, show, again, busy = () => false }) {
  /** The text the editor started from: a version's (merged) text, or what we sent for it. */
  let base = { version: 0, text: "", sent: false };
  /** @type {Notes} the newest version the server told of */
  let latest = { version: 0, text: "" };
  let saving = false;
  let readOnly = false;

  const dirty = () => busy() || read().text !== base.text;

  /** @param {Notes} notes */
  function adopt(notes) {
    const { text, caret } = read();
    if (text !== notes.text) write(notes.text, mapCaret(text, notes.text, caret));
    base = { version: notes.version, text: notes.text, sent: false };
  }

  /** @param {Notes} notes */
  function heard(notes) {
    if (notes.version >= latest.version) latest = notes;
  }

  /** Take the newest version when nothing of ours is unsent. */
  function settle() {
    if (!saving && !dirty() && latest.version > base.version) adopt(latest);
    if (saving) return;
    if (readOnly) show(dirty() ? "ended_unsaved" : "ended", latest);
    else show(dirty() ? "unsaved" : "saved", latest);
  }

  /** @param {Notes} notes the answer to GET, or a version from the room's socket */
  function receive(notes) {
    heard(notes);
    if (notes.read_only) readOnly = true;
    settle();
  }

  /** Send what was typed (if anything), then take the merged text. */
  async function flush(leaving = false) {
    if (readOnly || saving) return;
    if (busy()) { again(IDLE_MS); return; }
    if (!dirty()) { settle(); return; }
    const sentText = read().text;
    saving = true;
    show("saving", latest);
    /** @type {Notes} */
    let reply;
    try {
      reply = await save({ base_version: base.version, text: sentText, sent: base.sent }, leaving);
    } catch (e) {
      saving = false;
      if (e && e.status === 409) { readOnly = true; settle(); return; }
      if (e && e.status >= 400 && e.status < 500) { show("refused", latest, e.message); return; }
      show("offline", latest);
      again(RETRY_MS);  // the network or the server is away: try again, and again
      return;
    }
    saving = false;
    heard(reply);
    if (read().text === sentText) {
      adopt(latest.version > reply.version ? latest : reply);
    } else {  // typed on while it was saved: continue from what was sent, send the rest
      if (reply.saved) base = { version: reply.version, text: sentText, sent: true };
      again(0);
    }
    settle();
  }

  return {
    receive, flush, dirty,
    get readOnly() { return readOnly; },
    /** The consultation ended: nothing more can be saved. */
    end() { readOnly = true; settle(); },
  };
}

/**
 * The status line's words.
 * @param {Status} status
 * @param {Notes} latest
 * @param {string} [detail]
 */
export function statusText(status, latest, detail) {
  const word = {
    saved: t("room.notes.saved"), saving: t("room.notes.saving"),
    unsaved: t("room.notes.unsaved"), offline: t("room.notes.offline"),
    ended: t("room.notes.read_only"), ended_unsaved: t("room.notes.read_only_unsaved"),
    refused: t("room.notes.refused", { reason: detail || "" }),
  }[status];
  if (!latest.by) return word;
  const when = latest.at ? formatDateTime(latest.at) : "";
  return `${word} · ${t("room.notes.last_edit", { name: latest.by_name || latest.by, time: when })}`;
}

/**
 * Mount the notes panel of room.html.
 * @param {{api: import("./api.js").Api, base: string}} options `base`: the consultation's API path
 */
export function setupNotes({ api, base }) {
  const area = /** @type {HTMLTextAreaElement} */ ($("notes-text"));
  const line = $("notes-status");
  const url = `${base}/notes`;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let idle = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let longest = null;
  let composing = false;  // a Chinese (or other) input method is building a word

  function clearTimers() {
    if (idle) clearTimeout(idle);
    if (longest) clearTimeout(longest);
    idle = longest = null;
  }
  function flushNow() { clearTimers(); sync.flush(); }
  /** @param {number} ms */
  function later(ms) {
    if (idle) clearTimeout(idle);
    idle = setTimeout(flushNow, ms);
    if (!longest) longest = setTimeout(flushNow, MAX_WAIT_MS);
  }

  const sync = notesSync({
    read: () => ({ text: area.value, caret: area.selectionStart }),
    busy: () => composing,
    write(text, caret) {
      const focused = document.activeElement === area;
      area.value = text;
      if (focused) area.setSelectionRange(caret, caret);
    },
    async save(body, leaving) {
      if (!leaving) return api.call("POST", url, body);
      const resp = await fetch(url, {  // the page is going: the request must outlive it
        method: "POST", keepalive: true, credentials: "same-origin",
        headers: api.headers("POST", "application/json"), body: JSON.stringify(body),
      });
      let data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      return api.check(resp.status, data, url);
    },
    show(status, latest, detail) {
      line.textContent = statusText(status, latest, detail);
      line.dataset.status = status;
      area.readOnly = status === "ended" || status === "ended_unsaved";
    },
    again: later,
  });

  area.addEventListener("input", () => { if (!sync.readOnly) later(IDLE_MS); });
  area.addEventListener("blur", flushNow);
  area.addEventListener("compositionstart", () => { composing = true; });
  area.addEventListener("compositionend", () => { composing = false; later(IDLE_MS); });
  window.addEventListener("pagehide", () => { clearTimers(); sync.flush(true); });
  window.addEventListener("online", flushNow);

  /** Read the notes again (at start, and after the room's socket came back). */
  async function refresh() {
    try { sync.receive(await api.call("GET", url)); } catch (e) {
      line.textContent = t("room.notes.offline");
    }
  }

  refresh();
  return {
    /** @param {any} msg a "notes" message from the room's socket */
    receive(msg) { sync.receive(msg); },
    refresh,
    /** The chair ended the consultation: the notes are read-only from now on. */
    ended() { clearTimers(); sync.end(); },
    sync,
  };
}
