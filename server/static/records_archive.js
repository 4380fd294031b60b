// Recorded video of the patient's consultations: the recorded periods, and playing a
// time span of them (the server remuxes the overlapping segments).
import { $, el, problem } from "./dom.js";
import { fmtSeconds, fmtSecondsClock, fmtTime, toLocalInput } from "./format.js";
import { lang, t } from "./i18n.js";

/** @param {import("./records_page.js").RecordsPage} page */
export function videoArchive(page) {
  async function load() {
    const section = $("archive-section");
    section.hidden = true;
    const seq = page.openSeq;
    let data;
    try {
      data = await page.api.call("GET", `/api/patients/${page.open.pid}/archive`);
    } catch (e) {
      return;  // no archive on this server (or not yet): the section stays hidden
    }
    if (seq !== page.openSeq || !page.open.data || !data || !Array.isArray(data.ranges)) return;
    section.hidden = false;
    const list = $("archive-ranges");
    list.replaceChildren();
    $("archive-empty").hidden = data.ranges.length > 0;
    $("archive-controls").hidden = data.ranges.length === 0;
    for (const range of data.ranges) {
      const seconds = (new Date(range.end).getTime() - new Date(range.start).getTime()) / 1000;
      const pick = () => {
        $("archive-from").value = toLocalInput(range.start);
        $("archive-to").value = toLocalInput(range.end);
      };
      list.append(el("li", { class: "row" },
        el("span", {}, t("records.archive.range", {
          day: new Date(range.start).toLocaleDateString(lang()), start: fmtSecondsClock(range.start),
          end: fmtSecondsClock(range.end), length: fmtSeconds(seconds) })),
        el("button", { type: "button", textContent: t("records.archive.choose"), onclick: pick,
          "aria-label": t("records.archive.choose_label", { time: fmtTime(range.start) }) }),
        el("button", { type: "button", textContent: t("records.archive.play"), onclick: () => { pick(); play(); },
          "aria-label": t("records.archive.play_label", { time: fmtTime(range.start) }) })));
    }
    if (data.ranges.length && !$("archive-from").value) {
      const last = data.ranges[data.ranges.length - 1];
      $("archive-from").value = toLocalInput(last.start);
      $("archive-to").value = toLocalInput(last.end);
    }
    const segments = Array.isArray(data.segments) ? data.segments.length : 0;
    $("archive-status").textContent = data.ranges.length
      ? t("records.archive.periods", { count: data.ranges.length, pieces: segments })
      : "";
  }

  function play() {
    const status = $("archive-status");
    const from = $("archive-from").value, to = $("archive-to").value;
    if (!from || !to) { status.textContent = t("records.archive.need_span"); return; }
    const start = new Date(from), end = new Date(to);
    if (!(end > start)) { status.textContent = t("records.archive.end_before_start"); return; }
    const video = $("archive-video");
    video.hidden = false;
    video.src = `/api/patients/${page.open.pid}/archive/video?start=${encodeURIComponent(start.toISOString())}` +
      `&end=${encodeURIComponent(end.toISOString())}`;
    status.textContent = t("records.archive.loading");
    video.play().catch(() => { /* the error event explains */ });
  }

  function setup() {
    const video = $("archive-video");
    $("archive-play").addEventListener("click", play);
    video.addEventListener("loadeddata", () => { $("archive-status").textContent = ""; });
    video.addEventListener("error", async () => {
      const src = video.getAttribute("src");
      if (!src) return;
      let message = t("records.archive.unplayable");
      try {
        const resp = await page.api.fetchOk(src);
        if (resp.body) resp.body.cancel();
        message = t("records.archive.browser_cannot");
      } catch (e) {
        if (!e.status) message = problem(e);
        else if (e.data && e.data.error) message = e.message;
        if (e.status === 404) page.access.checkStillValid();
      }
      $("archive-status").textContent = t("records.archive.cannot_play", { problem: message });
    });
  }

  return { setup, load };
}
