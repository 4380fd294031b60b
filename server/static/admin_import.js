// Importing a FHIR R4 Bundle from a hospital system: send the file, follow the import
// job's progress, then say what was filed and what was not.
import { $, el, problem, say } from "./dom.js";
import { uploadFile } from "./upload.js";

const POLL_MS = 500;

/**
 * Start importing the chosen file (the import form's submit).
 * @param {import("./api.js").Api} api @param {Event} ev
 */
export async function startImport(api, ev) {
  ev.preventDefault();
  const file = $("import-file").files[0];
  if (!file) { say("Choose a FHIR Bundle file (JSON) first.", "error"); return; }
  const button = $("import-start");
  button.disabled = true;
  $("import-summary").hidden = true;
  $("import-progress-box").hidden = false;
  $("import-progress").removeAttribute("value");  // indeterminate while sending
  $("import-state").textContent = `Sending ${file.name}…`;
  let job;
  try {
    ({ data: job } = await uploadFile(api, {
      method: "POST", url: "/api/imports/fhir", file, contentType: "application/fhir+json",
    }));
  } catch (e) {
    $("import-progress-box").hidden = true;
    say(`The import did not start: ${problem(e)}`, "error");
    button.disabled = false;
    return;
  }
  say(`Import of ${file.name} started.`);
  let failures = 0;
  while (job.state === "running") {
    showImportProgress(job);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    try {
      job = await api.call("GET", `/api/imports/${encodeURIComponent(job.id)}`);
      failures = 0;
    } catch (e) {
      failures += 1;
      if (e.status === 404 || failures > 20) {
        $("import-state").textContent = `Lost track of the import: ${problem(e)}`;
        button.disabled = false;
        return;
      }
    }
  }
  showImportProgress(job);
  showImportSummary(job, file.name);
  say("");
  button.disabled = false;
  $("import-file").value = "";
}

/** @param {any} job the import job (GET /api/imports/<id>) */
function showImportProgress(job) {
  const bar = $("import-progress");
  if (job.total) { bar.max = job.total; bar.value = job.done; } else bar.removeAttribute("value");
  $("import-state").textContent = job.state === "running"
    ? `Importing: ${job.done} of ${job.total || "?"} items, ${job.filed} filed…`
    : (job.state === "done" ? "Import finished." : "Import failed.");
}

/**
 * What an import filed and what it did not, in a sentence.
 * @param {{state: string, filed: number, skipped: string[], error?: string | null}} job
 * @param {string} name the file's name
 */
export function importResultText(job, name) {
  const kept = job.filed ? ` The ${job.filed} item${job.filed === 1 ? "" : "s"} filed before the failure are kept.` : "";
  return job.state === "failed"
    ? `The import of ${name} failed: ${job.error || "unknown error"}.${kept}`
    : `Imported ${name}: ${job.filed} item${job.filed === 1 ? "" : "s"} filed, ${job.skipped.length} not imported.`;
}

/** @param {any} job @param {string} name the file's name */
function showImportSummary(job, name) {
  $("import-summary").hidden = false;
  const result = $("import-result");
  result.classList.toggle("error", job.state === "failed");
  result.textContent = importResultText(job, name);
  $("import-patients").textContent = job.patients.length
    ? `Patients: ${job.patients.join(", ")}` : (job.state === "failed" ? "" : "No patients in this bundle.");
  const skipped = $("import-skipped");
  skipped.replaceChildren(...job.skipped.map((/** @type {string} */ reason) => el("li", {}, reason)));
  $("import-skipped-box").hidden = job.skipped.length === 0;
}
