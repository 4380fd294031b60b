// Adding files: the drop zone and file/folder pickers (dropped folders are walked, for
// DICOM studies), a queue of uploads two at a time, each with its progress and outcome.
import { $, el, say } from "./dom.js";
import { t } from "./i18n.js";
import { uploadFile, uploadProblem } from "./upload.js";

const UPLOADS_AT_ONCE = 2;
/**
 * What an accepted file was filed as.
 * @param {string | undefined} category the server's answer's `category`
 */
export function filedAs(category) {
  switch (category) {
    case "clinical_photo": return t("records.filed.photo");
    case "record_scan": return t("records.filed.scan");
    case "ct_image": return t("records.filed.ct_image");
    case "voice_note": return t("records.filed.voice_note");
    default: return t("records.filed.record");
  }
}

/**
 * The line about all uploads: how many are done, not filed, skipped.
 * @param {{total: number, done: number, failed: number, skipped: number}} u
 * @param {boolean} busy uploads still running or queued
 */
export function overallText(u, busy) {
  if (!u.total && !u.skipped) return "";
  const parts = [t("records.upload.done_of", { done: u.done, count: u.total })];
  if (u.failed) parts.push(t("records.upload.not_filed", { count: u.failed }));
  if (u.skipped) parts.push(t("records.upload.skipped", { count: u.skipped }));
  const all = parts.join(t("common.list_separator"));
  return busy ? t("records.upload.uploading_all", { parts: all }) : t("records.upload.finished", { parts: all });
}

/** @typedef {{file: File, path: string}} Picked a file and its path in what was dropped or chosen */

/**
 * Every entry of a dropped folder (the browser hands them out in batches).
 * @param {FileSystemDirectoryReader} reader
 * @returns {Promise<FileSystemEntry[]>}
 */
function readAllEntries(reader) {
  return new Promise((resolve, reject) => {
    /** @type {FileSystemEntry[]} */
    const all = [];
    const next = () => reader.readEntries((batch) => {
      if (!batch.length) { resolve(all); return; }
      all.push(...batch);
      next();
    }, reject);
    next();
  });
}

/**
 * Walk dropped folders (DICOM studies arrive as folders), in name order.
 * @param {FileSystemEntry} entry @param {Picked[]} out
 */
async function walkEntry(entry, out) {
  if (entry.isFile) {
    const fileEntry = /** @type {FileSystemFileEntry} */ (entry);
    /** @type {File} */
    const file = await new Promise((resolve, reject) => fileEntry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\//, "") });
  } else if (entry.isDirectory) {
    const children = await readAllEntries(/** @type {FileSystemDirectoryEntry} */ (entry).createReader());
    children.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
    for (const child of children) await walkEntry(child, out);
  }
}

/** @param {import("./records_page.js").RecordsPage} page */
export function uploadQueue(page) {
  /**
   * One file on its way: its list item, progress bar and state line.
   * @typedef {Picked & {li: HTMLElement, progress: HTMLProgressElement, state: HTMLElement,
   *   pid: number | null, category: string, confirmed?: boolean}} Job
   */
  /** @type {{queue: Job[], active: number, total: number, done: number, ok: number, failed: number, skipped: number}} */
  const uploads = { queue: [], active: 0, total: 0, done: 0, ok: 0, failed: 0, skipped: 0 };

  function renderState() {
    const canEdit = Boolean(page.current && page.current.canEdit);
    $("drop-zone").hidden = !canEdit;
    $("upload-readonly").hidden = canEdit;
  }

  function busy() {
    return uploads.active > 0 || uploads.queue.length > 0;
  }

  // Another patient is opened: the finished uploads' list goes (running ones stay).
  function clearIfIdle() {
    if (busy()) return;
    $("upload-list").replaceChildren();
    $("upload-overall").textContent = "";
  }

  /** @param {Picked[]} files */
  function enqueue(files) {
    const current = page.current;
    if (!current || !current.data || !current.canEdit) {
      say(t("records.upload.read_only"), "error");
      return;
    }
    if (!busy()) {
      Object.assign(uploads, { total: 0, done: 0, ok: 0, failed: 0, skipped: 0 });
      $("upload-list").replaceChildren();
    }
    const category = $("upload-category").value;
    for (const { file, path } of files) {
      if (file.name.startsWith(".")) { uploads.skipped += 1; continue; }  // .DS_Store and friends
      const progress = el("progress", { max: 1, value: 0, "aria-label": t("records.upload.progress_label", { path }) });
      const state = el("span", { class: "upload-state" }, t("records.upload.waiting"));
      const li = el("li", { class: "upload-item", dataset: { state: "queued", name: file.name } },
        el("span", { class: "upload-name" }, path), progress, state);
      $("upload-list").append(li);
      uploads.queue.push({ file, path, li, progress, state, pid: current.pid, category });
      uploads.total += 1;
    }
    pump();
  }

  function pump() {
    let job;
    while (uploads.active < UPLOADS_AT_ONCE && (job = uploads.queue.shift())) startUpload(job);
    showProgress();
  }

  function showProgress() {
    $("upload-overall").textContent = overallText(uploads, busy());
  }

  /** @param {Job} job @param {boolean} ok @param {string} message */
  function finishUpload(job, ok, message) {
    uploads.active -= 1;
    uploads.done += 1;
    if (ok) uploads.ok += 1; else uploads.failed += 1;
    job.li.dataset.state = ok ? "ok" : "error";
    job.progress.value = 1;
    job.progress.hidden = true;
    job.state.textContent = ok ? `✓ ${message}` : `✗ ${message}`;
    job.state.classList.toggle("error", !ok);
    if (!busy()) {
      showProgress();
      if (uploads.ok) page.chooser.refreshRecords();
    } else {
      pump();
    }
  }

  /** @param {Job} job */
  function startUpload(job) {
    uploads.active += 1;
    job.li.dataset.state = "uploading";
    job.state.textContent = t("records.upload.uploading");
    let url = `/api/patients/${job.pid}/records?title=${encodeURIComponent(job.file.name)}`;
    if (job.category) url += `&category=${encodeURIComponent(job.category)}`;
    if (job.confirmed) url += "&confirm_identity_mismatch=true";
    uploadFile(page.api, { method: "POST", url, file: job.file, onProgress: (f) => { job.progress.value = f; } })
      .then(({ data }) => finishUpload(job, true, filedAs(data && data.category)), (e) => {
        const message = uploadProblem(e);
        if (e.code === "identity_mismatch" && !job.confirmed &&
            window.confirm(t("records.upload.confirm_mismatch", { name: job.file.name, problem: message }))) {
          uploads.active -= 1;  // the same file again, this time confirmed (and audited)
          job.confirmed = true;
          startUpload(job);
          return;
        }
        finishUpload(job, false, e.status === 409 ? t("records.upload.duplicate", { problem: message }) : message);
        if (e.status === 404) page.access.checkStillValid();
      });
  }

  /** @param {string} reason */
  function cancelQueued(reason) {
    for (const job of uploads.queue) {
      uploads.done += 1; uploads.failed += 1;
      job.li.dataset.state = "error";
      job.progress.hidden = true;
      job.state.textContent = `✗ ${reason}`;
      job.state.classList.add("error");
    }
    uploads.queue = [];
    showProgress();
  }

  /** @param {DataTransfer} dataTransfer */
  async function dropped(dataTransfer) {
    // The item list is only valid during the event: take the entries first, walk afterwards.
    const items = [...(dataTransfer.items || [])].filter((i) => i.kind === "file");
    const entries = [];
    const plain = [];
    for (const item of items) {
      const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
      if (entry) entries.push(entry);
      else { const f = item.getAsFile(); if (f) plain.push({ file: f, path: f.name }); }
    }
    if (!items.length) for (const f of dataTransfer.files || []) plain.push({ file: f, path: f.name });
    $("upload-overall").textContent = t("records.upload.reading");
    const files = [...plain];
    try {
      for (const entry of entries) await walkEntry(entry, files);
    } catch (e) {
      say(t("records.upload.unreadable", { problem: e.message || String(e) }), "error");
    }
    if (!files.length) { $("upload-overall").textContent = t("records.upload.nothing_dropped"); return; }
    enqueue(files);
  }

  function setup() {
    const zone = $("drop-zone");
    $("choose-files").addEventListener("click", () => $("file-input").click());
    $("choose-folder").addEventListener("click", () => $("folder-input").click());
    for (const id of ["file-input", "folder-input"]) {
      const input = $(id);
      input.addEventListener("change", () => {
        /** @type {Picked[]} */
        const files = [...input.files].map((f) => ({ file: f, path: f.webkitRelativePath || f.name }));
        input.value = "";
        if (files.length) enqueue(files);
      });
    }
    zone.addEventListener("dragenter", (/** @type {DragEvent} */ ev) => { ev.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragover", (/** @type {DragEvent} */ ev) => {
      ev.preventDefault();
      if (ev.dataTransfer) ev.dataTransfer.dropEffect = "copy";
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", (/** @type {DragEvent} */ ev) => {
      if (!zone.contains(ev.relatedTarget)) zone.classList.remove("over");
    });
    zone.addEventListener("drop", (/** @type {DragEvent} */ ev) => {
      ev.preventDefault();
      zone.classList.remove("over");
      if (ev.dataTransfer) dropped(ev.dataTransfer);
    });
    // A file dropped next to the zone must not replace the page (and lose its state).
    window.addEventListener("dragover", (ev) => ev.preventDefault());
    window.addEventListener("drop", (ev) => {
      if (!zone.contains(ev.target)) {
        ev.preventDefault();
        if (page.current && page.current.canEdit && !$("records").hidden) say(t("records.upload.drop_on_zone"));
      }
    });
    window.addEventListener("beforeunload", (ev) => {
      if (busy()) { ev.preventDefault(); ev.returnValue = ""; }
    });
  }

  return { setup, renderState, busy, clearIfIdle, cancelQueued };
}
