// The open patient's records: showing (and clearing) every section, and sharing a record
// to the consultation's presentation window when the page was opened from one.
import { $, el, problem, say } from "./dom.js";

/** @param {import("./records_page.js").RecordsPage} page */
export function recordsView(page) {
  function clear() {
    for (const id of ["photos", "scans", "ct-slices", "voice", "emr-rows", "archive-ranges"]) {
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
    page.consent.render();
    page.uploads.renderState();
    if (!refreshing) {
      page.access.watch();
      page.archive.load();
      let note = "";
      if (page.consultation && !page.sharingHere()) {
        note = ` Sharing to the consultation is only possible for its patient (${page.consultation.patient}).`;
      }
      say(`Records of ${p.identifier} loaded.${note}`);
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
      textContent: "Share to presentation",
      "aria-label": `Share ${item.title || item.category.replace("_", " ")} to the consultation's presentation`,
      onclick: () => share(item, extra ? extra() : {}),
    });
  }

  /** @param {import("./records_page.js").RecordItem} item @param {object} extra */
  async function share(item, extra) {
    try {
      const info = await page.patientCall("POST", `/records/${item.category}/${item.id}/present`,
        { consultation: page.consultation.id, ...extra });
      say(`Shown in the consultation's presentation window: ${info.caption}`);
    } catch (e) {
      say(`Could not share it: ${problem(e)}`, "error");
    }
  }

  async function stopSharing() {
    try {
      await page.api.call("DELETE", `/api/consultations/${encodeURIComponent(page.consultation.id)}/presentation`);
      say("The presentation window is cleared.");
    } catch (e) {
      say(`Could not clear the presentation: ${problem(e)}`, "error");
    }
  }

  function setup() {
    $("stop-sharing").addEventListener("click", stopSharing);
  }

  return { setup, clear, show, shareButton, share };
}
