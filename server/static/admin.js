// Records admin: decide access requests, review break-glass accesses, revoke grants,
// import a FHIR Bundle. Server data is put in the page as text only.
"use strict";

const REFRESH_MS = 15000;
const POLL_MS = 500;
let lastSnapshot = "";

function say(text, kind) {
  $("status").textContent = text || "";
  $("status").classList.toggle("error", kind === "error");
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function fmtMinutes(minutes) {
  if (!minutes) return "default";
  if (minutes < 60) return `${minutes} min`;
  if (minutes % 60 === 0) return `${minutes / 60} h`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function opsText(ops) {
  return ops.includes("edit") ? "view + edit" : "view";
}

function patientText(grant) {
  return grant.patient ? grant.patient.identifier : `patient #${grant.patient_id}`;
}

function grantState(g) {
  if (g.revoked_at) return `revoked ${fmtTime(g.revoked_at)}${g.revoked_by ? ` by ${g.revoked_by}` : ""}`;
  if (g.active) return "active";
  return "expired";
}

// Run an admin action from a button; refresh the lists afterwards.
async function act(button, work, done) {
  button.disabled = true;
  try {
    await work();
    say(done);
  } catch (e) {
    say(`Not done: ${problem(e)}`, "error");
    button.disabled = false;
  }
  await load(true);
}

function renderRequests(requests) {
  const body = $("requests");
  body.replaceChildren();
  $("requests-empty").hidden = requests.length > 0;
  $("requests-table").hidden = requests.length === 0;
  $("requests-title").textContent = `Access requests waiting for you${requests.length ? ` (${requests.length})` : ""}`;
  for (const r of requests) {
    const decide = (approve) => el("button", {
      type: "button",
      class: approve ? "primary approve" : "deny",
      dataset: { request: String(r.request_id) },
      textContent: approve ? "Approve" : "Refuse",
      "aria-label": `${approve ? "Approve" : "Refuse"} ${r.username}'s request for ${r.patient}`,
      onclick: (ev) => act(ev.currentTarget,
        () => Api.call("POST", `/api/admin/requests/${r.request_id}`, { approve }),
        approve ? `Approved: ${r.username} may now open ${r.patient}.` : `Refused ${r.username}'s request for ${r.patient}.`),
    });
    body.append(el("tr", { dataset: { request: String(r.request_id), patient: r.patient } },
      el("td", { class: "nowrap" }, fmtTime(r.created_at)),
      el("td", {}, r.username),
      el("td", {}, r.patient),
      el("td", {}, opsText(r.operations)),
      el("td", { class: "nowrap" }, fmtMinutes(r.minutes)),
      el("td", { class: "reason" }, r.reason || el("span", { class: "muted" }, "(no reason given)")),
      el("td", { class: "actions" }, decide(true), decide(false))));
  }
}

function renderBreakGlass(rows) {
  const list = $("break-glass");
  list.replaceChildren();
  $("break-glass-empty").hidden = rows.length > 0;
  $("break-glass-title").textContent =
    `Emergency (break-glass) accesses to review${rows.length ? ` (${rows.length})` : ""}`;
  for (const g of rows) {
    list.append(el("li", { class: "break-glass-item", dataset: { grant: String(g.grant_id), patient: patientText(g) } },
      el("div", {},
        el("strong", {}, `${g.username} opened ${patientText(g)} with emergency access`),
        el("div", { class: "muted" },
          `${fmtTime(g.created_at)} · ${grantState(g)} · ends ${fmtTime(g.expires_at)}`),
        el("blockquote", { class: "reason" }, g.reason || "(no reason)")),
      el("div", { class: "actions" },
        el("button", {
          type: "button", class: "review", textContent: "Mark as reviewed",
          "aria-label": `Mark ${g.username}'s emergency access to ${patientText(g)} as reviewed`,
          onclick: (ev) => act(ev.currentTarget,
            () => Api.call("POST", `/api/admin/grants/${g.grant_id}/review`, {}),
            `Emergency access of ${g.username} to ${patientText(g)} marked as reviewed.`),
        }),
        g.active ? revokeButton(g) : null)));
  }
}

function revokeButton(g) {
  return el("button", {
    type: "button", class: "revoke", textContent: "Revoke",
    dataset: { grant: String(g.grant_id) },
    "aria-label": `Revoke ${g.username}'s access to ${patientText(g)}`,
    onclick: (ev) => act(ev.currentTarget,
      () => Api.call("POST", `/api/admin/grants/${g.grant_id}/revoke`, {}),
      `Revoked ${g.username}'s access to ${patientText(g)}: it ends with their next request.`),
  });
}

function renderGrants(grants) {
  const body = $("grants");
  body.replaceChildren();
  $("grants-empty").hidden = grants.length > 0;
  $("grants-table").hidden = grants.length === 0;
  const active = grants.filter((g) => g.active).length;
  $("grants-title").textContent = `Access grants (${active} active, ${grants.length} in all)`;
  const sorted = [...grants].sort((a, b) => Number(b.active) - Number(a.active) || b.grant_id - a.grant_id);
  for (const g of sorted) {
    const basis = el("td", { class: "reason" }, g.break_glass ? el("strong", { class: "bad" }, "break-glass") : g.basis);
    if (g.reason) basis.append(el("div", { class: "muted" }, g.reason));
    body.append(el("tr", {
      class: `${g.active ? "active" : "inactive"}${g.break_glass ? " break-glass-row" : ""}`,
      dataset: { grant: String(g.grant_id), patient: patientText(g) },
    },
    el("td", {}, grantState(g)),
    el("td", {}, g.username),
    el("td", {}, patientText(g)),
    el("td", {}, opsText(g.operations)),
    basis,
    el("td", { class: "nowrap" }, fmtTime(g.created_at)),
    el("td", { class: "nowrap" }, fmtTime(g.expires_at)),
    el("td", { class: "actions" }, g.active ? revokeButton(g) : null)));
  }
}

// Refresh the lists; periodic refreshes leave the page alone if nothing changed (so the
// keyboard focus stays where it is).
async function load(force) {
  let data;
  try {
    data = await Api.call("GET", "/api/admin/grants");
  } catch (e) {
    if (e.status === 403) { showNotAdmin(); return; }
    say(`Could not load the lists: ${problem(e)}`, "error");
    return;
  }
  const snapshot = JSON.stringify(data);
  $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  if (!force && snapshot === lastSnapshot) return;
  lastSnapshot = snapshot;
  renderRequests(data.requests);
  renderBreakGlass(data.break_glass_unreviewed);
  renderGrants(data.grants);
}

function showNotAdmin() {
  $("admin").hidden = true;
  $("not-admin").hidden = false;
}

// ---- FHIR import ------------------------------------------------------------------------------
async function startImport(ev) {
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

(async () => {
  $("logout").addEventListener("click", () => Api.logout());
  let session;
  try {
    session = await Api.session();
  } catch (e) {
    say(`Cannot reach the server: ${problem(e)}`, "error");
    return;
  }
  $("who").textContent = session.display_name;
  if (session.role !== "admin") { showNotAdmin(); return; }
  $("admin").hidden = false;
  $("refresh").addEventListener("click", () => load(true));
  $("import-form").addEventListener("submit", startImport);
  await load(true);
  setInterval(() => { if (!document.hidden) load(false); }, REFRESH_MS);
})();
