// The patient's consent (training use, de-identified export) and the export download.
import { $, el, problem, say } from "./dom.js";
import { fmtSize } from "./format.js";

/** @param {import("./records_page.js").RecordsPage} page */
export function consentAndExport(page) {
  function render() {
    const current = page.open;
    const consent = current.data.consent;
    for (const purpose of ["training", "export"]) {
      const box = $(`consent-${purpose}`);
      box.checked = Boolean(consent[purpose]);
      box.disabled = !current.canEdit;
    }
    $("consent-note").textContent = current.canEdit
      ? "Tick or untick to record the patient's decision (it is logged with your name)."
      : "Recording consent needs view+edit access.";
    const exportButton = $("export");
    exportButton.disabled = !consent.export;
    exportButton.title = consent.export ? "" : "No export consent is recorded for this patient";
    if (!consent.export) $("export-status").textContent = "Export needs the patient's recorded export consent.";
    else if ($("export-status").textContent.startsWith("Export needs")) $("export-status").textContent = "";
  }

  /** @param {string} purpose training or export @param {HTMLInputElement} box */
  async function changeConsent(purpose, box) {
    const granted = box.checked;
    box.disabled = true;
    try {
      await page.patientCall("POST", "/consent", { purpose, granted, note: "" });
      page.open.data.consent[purpose] = granted;
      say(`Recorded: the patient ${granted ? "agrees" : "does not agree"} to ${purpose === "training" ? "use for training" : "de-identified export"}.`);
    } catch (e) {
      box.checked = !granted;
      say(`Consent not recorded: ${problem(e)}`, "error");
    } finally {
      if (page.open.data) render();
    }
  }

  async function exportRecords() {
    const status = $("export-status");
    const button = $("export");
    button.disabled = true;
    status.textContent = "Preparing the de-identified export…";
    try {
      let resp;
      try {
        resp = await page.api.fetchOk(`/api/patients/${page.open.pid}/export`);
      } catch (e) {
        if (e.status === 404) page.access.checkStillValid();
        throw e;
      }
      const blob = await resp.blob();
      const disposition = resp.headers.get("Content-Disposition") || "";
      const match = /filename="([^"]+)"/.exec(disposition);
      const link = el("a", { href: URL.createObjectURL(blob), download: match ? match[1] : "export.zip" });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
      status.textContent = `Export downloaded (${fmtSize(blob.size)}).`;
    } catch (e) {
      status.textContent = `Export failed: ${problem(e)}`;
    } finally {
      if (page.open.data) button.disabled = !page.open.data.consent.export;
    }
  }

  function setup() {
    for (const purpose of ["training", "export"]) {
      const box = $(`consent-${purpose}`);
      box.addEventListener("change", () => changeConsent(purpose, box));
    }
    $("export").addEventListener("click", exportRecords);
  }

  return { setup, render };
}
