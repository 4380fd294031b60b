// The patient's whole record as one FHIR R4 Bundle (full, or de-identified with the
// patient's export consent): downloads of GET /api/patients/{id}/fhir.
import { $, el, problem } from "./dom.js";
import { fmtSize } from "./format.js";
import { t } from "./i18n.js";

/** The file name the server gave (Content-Disposition), else ``fallback``.
 * @param {string | null} disposition @param {string} fallback */
export function downloadName(disposition, fallback) {
  const match = /filename="([^"]+)"/.exec(disposition || "");
  return match ? match[1] : fallback;
}

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
      const blob = await resp.blob();
      const name = downloadName(resp.headers.get("Content-Disposition"), "record.fhir.json");
      const link = el("a", { href: URL.createObjectURL(blob), download: name });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
      status.textContent = t("records.fhir.downloaded", { size: fmtSize(blob.size) });
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
