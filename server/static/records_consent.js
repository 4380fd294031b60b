// The patient's consent (training use, de-identified export, the whole call recorded) and
// the export download.
import { $, problem, saveDownload, say } from "./dom.js";
import { fmtSize } from "./format.js";
import { t } from "./i18n.js";

export const PURPOSES = ["training", "export", "recording"];

/**
 * What the page says once a decision is recorded.
 * @param {string} purpose training, export or recording @param {boolean} granted
 */
export function consentSaid(purpose, granted) {
  if (purpose === "training") {
    return granted ? t("records.consent.agrees_training") : t("records.consent.refuses_training");
  }
  if (purpose === "recording") {
    return granted ? t("records.consent.agrees_recording") : t("records.consent.refuses_recording");
  }
  return granted ? t("records.consent.agrees_export") : t("records.consent.refuses_export");
}

/** @param {import("./records_page.js").RecordsPage} page */
export function consentAndExport(page) {
  function render() {
    const current = page.open;
    const consent = current.data.consent;
    for (const purpose of PURPOSES) {
      const box = $(`consent-${purpose}`);
      box.checked = Boolean(consent[purpose]);
      box.disabled = !current.canEdit;
    }
    $("consent-note").textContent = current.canEdit
      ? t("records.consent.note_edit")
      : t("records.consent.note_view");
    const exportButton = $("export");
    exportButton.disabled = !consent.export;
    exportButton.title = consent.export ? "" : t("records.consent.no_export_consent");
    const needsConsent = t("records.consent.export_needs");
    if (!consent.export) $("export-status").textContent = needsConsent;
    else if ($("export-status").textContent === needsConsent) $("export-status").textContent = "";
  }

  /** @param {string} purpose training, export or recording @param {HTMLInputElement} box */
  async function changeConsent(purpose, box) {
    const granted = box.checked;
    box.disabled = true;
    try {
      await page.patientCall("POST", "/consent", { purpose, granted, note: "" });
      page.open.data.consent[purpose] = granted;
      say(consentSaid(purpose, granted));
    } catch (e) {
      box.checked = !granted;
      say(t("records.consent.not_recorded", { problem: problem(e) }), "error");
    } finally {
      if (page.open.data) render();
    }
  }

  async function exportRecords() {
    const status = $("export-status");
    const button = $("export");
    button.disabled = true;
    status.textContent = t("records.consent.preparing");
    try {
      let resp;
      try {
        resp = await page.api.fetchOk(`/api/patients/${page.open.pid}/export`);
      } catch (e) {
        if (e.status === 404) page.access.checkStillValid();
        throw e;
      }
      const size = await saveDownload(resp, "export.zip");
      status.textContent = t("records.consent.downloaded", { size: fmtSize(size) });
    } catch (e) {
      status.textContent = t("records.consent.export_failed", { problem: problem(e) });
    } finally {
      if (page.open.data) button.disabled = !page.open.data.consent.export;
    }
  }

  function setup() {
    for (const purpose of PURPOSES) {
      const box = $(`consent-${purpose}`);
      box.addEventListener("change", () => changeConsent(purpose, box));
    }
    $("export").addEventListener("click", exportRecords);
  }

  return { setup, render };
}
