// Importing a FHIR R4 Bundle from a hospital system: send the file, follow the import
// job's progress, then say what was filed and what was not.
/* global Api */
import { $, el, problem, say } from "./dom.js";

const POLL_MS = 500;

export async function startImport(ev) {
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
    const resp = await fetch("/api/imports/fhir", {
      method: "POST", body: file, credentials: "same-origin",
      headers: { "X-CSRF-Token": Api.csrf, "Content-Type": "application/fhir+json", "Accept": "application/json" },
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) throw Object.assign(new Error((data && data.error) || `HTTP ${resp.status}`), { status: resp.status });
    job = data;
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
      job = await Api.call("GET", `/api/imports/${encodeURIComponent(job.id)}`);
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

function showImportProgress(job) {
  const bar = $("import-progress");
  if (job.total) { bar.max = job.total; bar.value = job.done; } else bar.removeAttribute("value");
  $("import-state").textContent = job.state === "running"
    ? `Importing: ${job.done} of ${job.total || "?"} items, ${job.filed} filed…`
    : (job.state === "done" ? "Import finished." : "Import failed.");
}

function showImportSummary(job, name) {
  $("import-summary").hidden = false;
  const result = $("import-result");
  result.classList.toggle("error", job.state === "failed");
  const kept = job.filed ? ` The ${job.filed} item${job.filed === 1 ? "" : "s"} filed before the failure are kept.` : "";
  result.textContent = job.state === "failed"
    ? `The import of ${name} failed: ${job.error || "unknown error"}.${kept}`
    : `Imported ${name}: ${job.filed} item${job.filed === 1 ? "" : "s"} filed, ${job.skipped.length} not imported.`;
  $("import-patients").textContent = job.patients.length
    ? `Patients: ${job.patients.join(", ")}` : (job.state === "failed" ? "" : "No patients in this bundle.");
  const skipped = $("import-skipped");
  skipped.replaceChildren(...job.skipped.map((reason) => el("li", {}, reason)));
  $("import-skipped-box").hidden = job.skipped.length === 0;
}
