// The patient's whole record as one FHIR R4 Bundle (full, or de-identified with the
// patient's export consent): downloads of GET /api/patients/{id}/fhir.
import { $, problem, saveDownload } from "./dom.js";
import { fmtSize } from "./format.js";
import { t } from "./i18n.js";

/** @param {import("./records_page.js").RecordsPage} page */
export function fhirDownloads(page) {
  function render() {
    const consented = Boolean(page.open.data.consent.export);
    const deid = /** @type {HTMLButtonElement} */ ($("fhir-export-deid"));
    deid.disabled = !consented;
    deid.title = consented ? "" : t("records.consent.no_export_consent");
  }

  /** @param {boolean} deidentified */
  async function download(deidentified) {
    const status = $("fhir-status");
    const buttons = [$("fhir-export"), $("fhir-export-deid")].map(
      (b) => /** @type {HTMLButtonElement} */ (b));
    for (const b of buttons) b.disabled = true;
    status.textContent = t("records.fhir.preparing");
    try {
      const query = deidentified ? "?deidentified=true" : "";
      let resp;
      try {
        resp = await page.api.fetchOk(`/api/patients/${page.open.pid}/fhir${query}`);
      } catch (e) {
        if (e.status === 404) page.access.checkStillValid();
        throw e;
      }
      const size = await saveDownload(resp, "record.fhir.json");
      status.textContent = t("records.fhir.downloaded", { size: fmtSize(size) });
    } catch (e) {
      status.textContent = t("records.fhir.failed", { problem: problem(e) });
    } finally {
      buttons[0].disabled = false;
      if (page.current) render();
    }
  }

  function setup() {
    $("fhir-export").addEventListener("click", () => download(false));
    $("fhir-export-deid").addEventListener("click", () => download(true));
  }

  return { setup, render };
}
