// The open patient's records: showing (and clearing) every section, and sharing a record
// to the consultation's presentation window when the page was opened from one.
import { $, el, problem, say } from "./dom.js";
import { t } from "./i18n.js";

/**
 * A record category as a person reads it.
 * @param {string} category
 */
export function categoryName(category) {
  switch (category) {
    case "clinical_photo": return t("records.upload.clinical_photo");
    case "record_scan": return t("records.upload.record_scan");
    case "ct_image": return t("records.category.ct_image");
    case "voice_note": return t("records.upload.voice_note");
    case "emr_entry": return t("records.category.emr_entry");
    case "report": return t("records.category.report");
    default: return category;
  }
}

/** @param {import("./records_page.js").RecordsPage} page */
export function recordsView(page) {
  function clear() {
    for (const id of ["photos", "scans", "ct-slices", "voice", "emr-rows", "reports", "archive-ranges"]) {
      $(id).replaceChildren();
    }
    $("ct-image").removeAttribute("src");
    const video = $("archive-video");
    video.pause(); video.removeAttribute("src"); video.load(); video.hidden = true;
    page.photos.closeOverlay();
    page.ct.reset();
  }

  /** @param {any} data the records answer @param {boolean} [refreshing] the same patient again */
  function show(data, refreshing) {
    const current = page.open;
    current.data = data;
    current.pid = data.patient.id;
    current.canEdit = data.access.operations.includes("edit");
    $("no-access").hidden = true;
    $("pending").hidden = true;
    $("records").hidden = false;
    page.access.stopPendingPoll();
    const p = data.patient;
    $("patient-title").textContent = p.name && p.name !== p.identifier ? `${p.identifier} — ${p.name}` : p.identifier;
    page.access.showInfo();
    $("stop-sharing").hidden = !page.sharingHere();
    $("ct-share-row").hidden = !page.sharingHere();
    const r = data.records;
    page.photos.render("photos", r.clinical_photo || [], "photo");
    page.photos.render("scans", r.record_scan || [], "scan");
    page.ct.render(r.ct_image || []);
    page.voice.render(r.voice_note || []);
    page.emr.render(r.emr_entry || []);
    page.reports.render(r.report || []);
    page.consent.render();
    page.fhir.render();
    page.uploads.renderState();
    if (!refreshing) {
      page.access.watch();
      page.archive.load();
      page.recordings.load();
      let note = "";
      if (page.consultation && !page.sharingHere()) {
        note = " " + t("records.share_only_for", { patient: page.consultation.patient });
      }
      say(t("records.loaded", { patient: p.identifier }) + note);
    }
  }

  /**
   * A "Share to presentation" button, when sharing is possible here.
   * @param {import("./records_page.js").RecordItem} item @param {() => object} [extra] more of the request
   */
  function shareButton(item, extra) {
    if (!page.sharingHere()) return null;
    return el("button", {
      type: "button", class: "share",
      textContent: t("records.share"),
      "aria-label": t("records.share_label", { title: item.title || categoryName(item.category) }),
      onclick: () => share(item, extra ? extra() : {}),
    });
  }

  /** @param {import("./records_page.js").RecordItem} item @param {object} extra */
  async function share(item, extra) {
    try {
      const info = await page.patientCall("POST", `/records/${item.category}/${item.id}/present`,
        { consultation: page.consultation.id, ...extra });
      say(t("records.shared", { caption: info.caption }));
    } catch (e) {
      say(t("records.share_failed", { problem: problem(e) }), "error");
    }
  }

  async function stopSharing() {
    try {
      await page.api.call("DELETE", `/api/consultations/${encodeURIComponent(page.consultation.id)}/presentation`);
      say(t("records.share_cleared"));
    } catch (e) {
      say(t("records.clear_failed", { problem: problem(e) }), "error");
    }
  }

  function setup() {
    $("stop-sharing").addEventListener("click", stopSharing);
  }

  return { setup, clear, show, shareButton, share };
}
