// Importing a FHIR R4 Bundle from a hospital system: send the file, follow the import
// job's progress, then say what was filed and what was not.
import { $, el, problem, say } from "./dom.js";
import { t } from "./i18n.js";
import { uploadFile } from "./upload.js";

const POLL_MS = 500;

/**
 * Start importing the chosen file (the import form's submit).
 * @param {import("./api.js").Api} api @param {Event} ev
 */
export async function startImport(api, ev) {
  ev.preventDefault();
  const file = $("import-file").files[0];
  if (!file) { say(t("admin.import.choose"), "error"); return; }
  const button = $("import-start");
  button.disabled = true;
  $("import-summary").hidden = true;
  $("import-progress-box").hidden = false;
  $("import-progress").removeAttribute("value");  // indeterminate while sending
  $("import-state").textContent = t("admin.sending", { name: file.name });
  let job;
  try {
    ({ data: job } = await uploadFile(api, {
      method: "POST", url: `/api/imports/fhir${$("import-create").checked ? "?create_patients=true" : ""}`,
      file, contentType: "application/fhir+json",
    }));
  } catch (e) {
    $("import-progress-box").hidden = true;
    say(t("admin.import.not_started", { problem: problem(e) }), "error");
    button.disabled = false;
    return;
  }
  say(t("admin.import.started", { name: file.name }));
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
        $("import-state").textContent = t("admin.import.lost", { problem: problem(e) });
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
    ? t("admin.import.progress", { done: job.done, total: job.total || "?", filed: job.filed })
    : (job.state === "done" ? t("admin.import.finished") : t("admin.import.failed"));
}

/**
 * What an import filed and what it did not, in a sentence.
 * @param {{state: string, filed: number, skipped: string[], error?: string | null}} job
 * @param {string} name the file's name
 */
export function importResultText(job, name) {
  if (job.state !== "failed") {
    return t("admin.import.result", { name, count: job.filed, skipped: job.skipped.length });
  }
  const failed = t("admin.import.result_failed", { name, error: job.error || t("admin.import.unknown_error") });
  return job.filed ? `${failed} ${t("admin.import.kept", { count: job.filed })}` : failed;
}

/**
 * Which patients an import matched by identifier and which it created, in a sentence.
 * @param {{state: string, patients: string[], matched?: string[], created?: string[]}} job
 */
export function importPatientsText(job) {
  if (!job.patients.length) return job.state === "failed" ? "" : t("admin.import.no_patients");
  const sep = t("admin.list_separator");
  const parts = [];
  if (job.matched && job.matched.length) parts.push(t("admin.import.matched", { names: job.matched.join(sep) }));
  if (job.created && job.created.length) parts.push(t("admin.import.created", { names: job.created.join(sep) }));
  return parts.length ? parts.join(" ") : t("admin.import.patients", { names: job.patients.join(sep) });
}

/** @param {any} job @param {string} name the file's name */
function showImportSummary(job, name) {
  $("import-summary").hidden = false;
  const result = $("import-result");
  result.classList.toggle("error", job.state === "failed");
  result.textContent = importResultText(job, name);
  $("import-patients").textContent = importPatientsText(job);
  const skipped = $("import-skipped");
  skipped.replaceChildren(...job.skipped.map((/** @type {string} */ reason) => el("li", {}, reason)));
  $("import-skipped-box").hidden = job.skipped.length === 0;
}
