// Admin page. Records admins: decide access requests, review break-glass accesses, revoke
// grants, import a FHIR Bundle. Admins and technicians: the appliances, their releases and
// updates. Server data is put in the page as text only.
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

// ---- Appliances and releases (field updates) -------------------------------------------------
const FLEET_MS = 5000;
const fleet = { role: "", snapshot: "", releases: [], picked: {} };
const UPDATE_STATES = {
  downloading: "downloading", waiting: "waiting to install", installing: "installing",
  updated: "updated", failed: "failed", "rolled back": "rolled back",
};

function fmtBytes(n) {
  if (n >= 1048576) return `${(n / 1048576).toFixed(1)} MB`;
  return `${Math.max(1, Math.ceil(n / 1024))} kB`;
}

function fleetSay(text, kind) {
  $("release-state").textContent = text;
  $("release-state").classList.toggle("error", kind === "error");
}

// Periodic redraws keep the keyboard focus on the control that had it.
function keepFocus(render) {
  const active = document.activeElement;
  const key = active && active.dataset ? active.dataset.focusKey : undefined;
  render();
  if (key) {
    const again = document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

function updateCell(update) {
  if (!update) return el("td", {}, el("span", { class: "muted" }, "—"));
  const bad = update.state === "failed" || update.state === "rolled back";
  const td = el("td", { class: "reason" },
    el(bad ? "strong" : "span", { class: bad ? "bad" : (update.state === "updated" ? "good" : null) },
      `${update.release}: ${UPDATE_STATES[update.state] || update.state}`));
  if (update.detail) td.append(el("div", { class: "muted" }, update.detail));
  if (update.at) td.append(el("div", { class: "muted nowrap" }, fmtTime(update.at)));
  return td;
}

function updateControls(a) {
  const versions = fleet.releases.map((r) => r.version);
  if (!versions.includes(fleet.picked[a.device_id])) fleet.picked[a.device_id] = versions[0];
  const picker = el("select", {
    "aria-label": `Release for ${a.device_id}`,
    dataset: { focusKey: `pick:${a.device_id}` },
    disabled: versions.length === 0,
    onchange: (ev) => { fleet.picked[a.device_id] = ev.currentTarget.value; },
  }, ...versions.map((v) => el("option", { value: v, selected: v === fleet.picked[a.device_id] },
    v === a.version ? `${v} (running)` : v)));
  if (versions.length) picker.value = fleet.picked[a.device_id];
  const button = el("button", {
    type: "button", class: "primary update", textContent: "Update",
    dataset: { focusKey: `update:${a.device_id}`, device: a.device_id },
    disabled: !a.online || versions.length === 0,
    title: a.online ? "" : "The appliance is offline",
    "aria-label": `Update ${a.device_id}`,
    onclick: (ev) => requestUpdate(ev.currentTarget, a, picker.value),
  });
  return el("td", { class: "actions" }, picker, " ", button);
}

function renderAppliances(appliances) {
  const body = $("appliances");
  body.replaceChildren();
  $("appliances-empty").hidden = appliances.length > 0;
  $("appliances-table").hidden = appliances.length === 0;
  const online = appliances.filter((a) => a.online).length;
  $("appliances-title").textContent = `Appliances (${online} of ${appliances.length} online)`;
  for (const a of appliances) {
    body.append(el("tr", { class: a.online ? "active" : "inactive", dataset: { device: a.device_id } },
      el("td", {}, el("strong", {}, a.device_id), el("div", { class: "muted" }, a.clinic)),
      el("td", {}, a.online ? el("span", { class: "good" }, "online") : el("span", { class: "bad" }, "offline")),
      el("td", {}, a.version || el("span", { class: "muted" }, "unknown")),
      updateCell(a.update),
      el("td", {}, a.model_version || el("span", { class: "muted" }, "—")),
      updateControls(a)));
  }
}

function renderReleases(releases) {
  const body = $("releases");
  body.replaceChildren();
  $("releases-empty").hidden = releases.length > 0;
  $("releases-table").hidden = releases.length === 0;
  for (const r of releases) {
    const remove = fleet.role !== "admin" ? null : el("button", {
      type: "button", class: "danger", textContent: "Delete",
      dataset: { focusKey: `delete:${r.version}` },
      "aria-label": `Delete release ${r.version}`,
      onclick: (ev) => deleteRelease(ev.currentTarget, r.version),
    });
    body.append(el("tr", { dataset: { release: r.version } },
      el("td", {}, el("strong", {}, r.version)),
      el("td", { class: "nowrap" }, fmtBytes(r.size)),
      el("td", { class: "digest", title: r.sha256 }, r.sha256),
      el("td", { class: "nowrap" }, fmtTime(r.added_at)),
      el("td", { class: "actions" }, remove)));
  }
}

async function refreshFleet(force) {
  let appliances, releases;
  try {
    [appliances, releases] = await Promise.all([
      Api.call("GET", "/api/admin/appliances"), Api.call("GET", "/api/admin/releases")]);
  } catch (e) {
    $("fleet-note").textContent = `Could not load the appliances: ${problem(e)}`;
    return;
  }
  $("fleet-note").textContent = appliances.broker
    ? "" : "The server is not connected to the MQTT broker: no appliance can be reached, and what is shown may be out of date.";
  $("fleet-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  const snapshot = JSON.stringify([appliances, releases]);
  if (!force && snapshot === fleet.snapshot) return;
  fleet.snapshot = snapshot;
  fleet.releases = releases.releases;
  keepFocus(() => {
    renderAppliances(appliances.appliances);
    renderReleases(releases.releases);
  });
}

async function requestUpdate(button, appliance, release) {
  if (!release) return;
  const running = appliance.version ? ` (it runs ${appliance.version} now)` : "";
  if (!confirm(`Update appliance ${appliance.device_id} at ${appliance.clinic}${running} to release ${release}?\n\n`
    + "The appliance downloads the release, installs it and restarts; its camera is unavailable for a "
    + "minute or two. A release that does not start properly is rolled back.")) return;
  button.disabled = true;
  try {
    await Api.call("POST", `/api/admin/appliances/${encodeURIComponent(appliance.device_id)}/update`, { release });
    say(`Asked ${appliance.device_id} to update to ${release}; follow it in the "Last update" column.`);
  } catch (e) {
    say(`${appliance.device_id} was not updated: ${problem(e)}`, "error");
  }
  await refreshFleet(true);
}

async function deleteRelease(button, version) {
  if (!confirm(`Delete release ${version} from the server? Appliances can no longer be updated to it.`)) return;
  button.disabled = true;
  try {
    await Api.call("DELETE", `/api/admin/releases/${encodeURIComponent(version)}`);
    say(`Release ${version} deleted.`);
  } catch (e) {
    say(`Release ${version} was not deleted: ${problem(e)}`, "error");
  }
  await refreshFleet(true);
}

function uploadRelease(ev) {
  ev.preventDefault();
  const file = $("release-file").files[0];
  if (!file) { fleetSay("Choose a release wheel (.whl) first.", "error"); $("release-progress-box").hidden = false; return; }
  const button = $("release-upload");
  button.disabled = true;
  $("release-progress-box").hidden = false;
  $("release-progress").value = 0;
  fleetSay(`Sending ${file.name}…`);
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", `/api/admin/releases/${encodeURIComponent(file.name)}`);
  xhr.setRequestHeader("X-CSRF-Token", Api.csrf);
  xhr.setRequestHeader("Accept", "application/json");
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable && e.total) {
      $("release-progress").value = e.loaded / e.total;
      fleetSay(e.loaded < e.total ? `Sending ${file.name}: ${Math.floor(100 * e.loaded / e.total)} %` : `Checking ${file.name}…`);
    }
  });
  const done = () => { button.disabled = false; refreshFleet(true); };
  xhr.addEventListener("load", () => {
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
    if (xhr.status === 401) { location.href = "/login?next=/admin"; return; }
    if (xhr.status === 201 || xhr.status === 200) {
      $("release-progress").value = 1;
      fleetSay(xhr.status === 201 ? `Release ${data.version} stored (${fmtBytes(data.size)}).`
        : `Release ${data.version} was already stored with these same contents.`);
      $("release-file").value = "";
    } else {
      $("release-progress").value = 0;
      fleetSay(`${file.name} was not stored: ${(data && data.error) || `the server answered HTTP ${xhr.status}`}`, "error");
    }
    done();
  });
  xhr.addEventListener("error", () => {
    fleetSay(`The upload of ${file.name} broke off (network problem, or the file is larger than the server accepts).`, "error");
    done();
  });
  xhr.send(file);
}

function startFleet(role) {
  fleet.role = role;
  $("fleet").hidden = false;
  $("release-form").addEventListener("submit", uploadRelease);
  refreshFleet(true);
  setInterval(() => { if (!document.hidden) refreshFleet(false); }, FLEET_MS);
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
  if (session.role === "admin" || session.role === "technician") startFleet(session.role);
  if (session.role === "technician") return;
  if (session.role !== "admin") { showNotAdmin(); return; }
  $("admin").hidden = false;
  $("refresh").addEventListener("click", () => load(true));
  $("import-form").addEventListener("submit", startImport);
  await load(true);
  setInterval(() => { if (!document.hidden) load(false); }, REFRESH_MS);
})();
