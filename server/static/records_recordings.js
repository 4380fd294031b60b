// The patient's recorded consultations (O4): listed in the archive section, played in its
// <video> (the server burns the viewer's watermark in where the site asks), and downloaded
// de-identified. Every request is checked and audited by the server.
import { $, el, problem, saveDownload } from "./dom.js";
import { fmtSeconds, fmtSecondsClock, fmtSize } from "./format.js";
import { lang, t } from "./i18n.js";

/**
 * The line that describes one recording.
 * @param {{consultation: string, start: string, end: string}} rec
 * @param {string} language
 */
export function recordingLine(rec, language) {
  const seconds = (new Date(rec.end).getTime() - new Date(rec.start).getTime()) / 1000;
  return t("records.recordings.line", {
    consultation: rec.consultation,
    day: new Date(rec.start).toLocaleDateString(language),
    start: fmtSecondsClock(rec.start),
    end: fmtSecondsClock(rec.end),
    length: fmtSeconds(seconds),
  });
}

/** @param {import("./records_page.js").RecordsPage} page */
export function callRecordings(page) {
  async function load() {
    const seq = page.openSeq;
    const list = $("recordings-list");
    list.replaceChildren();
    let data;
    try {
      data = await page.api.call("GET", `/api/patients/${page.open.pid}/recordings`);
    } catch (e) {
      $("recordings-empty").hidden = false;
      return;  // no recordings on this server: the note says none
    }
    if (seq !== page.openSeq || !page.open.data || !data || !Array.isArray(data.recordings)) return;
    $("archive-section").hidden = false;
    $("recordings-empty").hidden = data.recordings.length > 0;
    for (const rec of data.recordings) {
      const time = fmtSecondsClock(rec.start);
      list.append(el("li", { class: "row" },
        el("span", {}, recordingLine(rec, lang())),
        el("button", { type: "button", textContent: t("records.recordings.play"), onclick: () => play(rec.id),
          "aria-label": t("records.recordings.play_label", { time }) }),
        el("button", { type: "button", textContent: t("records.recordings.export"),
          onclick: () => download(rec.id),
          "aria-label": t("records.recordings.export_label", { time }) })));
    }
  }

  /** @param {number} id */
  function play(id) {
    const video = /** @type {HTMLVideoElement} */ ($("archive-video"));
    video.hidden = false;
    video.src = `/api/patients/${page.open.pid}/recordings/${id}/video`;
    $("archive-status").textContent = t("records.archive.loading");
    video.play().catch(() => { /* the archive's error handler explains */ });
  }

  /** @param {number} id */
  async function download(id) {
    const status = $("recordings-status");
    status.textContent = t("records.recordings.preparing");
    try {
      let resp;
      try {
        resp = await page.api.fetchOk(`/api/patients/${page.open.pid}/recordings/${id}/export`);
      } catch (e) {
        if (e.status === 404) page.access.checkStillValid();
        throw e;
      }
      const size = await saveDownload(resp, "recording.mp4");
      status.textContent = t("records.consent.downloaded", { size: fmtSize(size) });
    } catch (e) {
      status.textContent = t("records.consent.export_failed", { problem: problem(e) });
    }
  }

  return { load };
}
