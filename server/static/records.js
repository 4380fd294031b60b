// Patient records: pick a patient, get access (rule, admin approval or break-glass), then
// see and add photos, scans, CT slices, voice notes and record entries.
// Everything the server or a user typed is put in the page as text (never as HTML).
"use strict";

const params = new URLSearchParams(location.search);
const BROWSER_IMAGES = new Set(["image/jpeg", "image/png", "image/webp", "image/gif"]);
const UPLOADS_AT_ONCE = 2;
const PENDING_POLL_MS = 5000;
const ACCESS_CHECK_MS = 30000;

let session = null;
let patients = [];          // GET /api/patients
let current = null;         // {identifier, pid, data, canEdit}
let consultation = null;    // {id, patient, ...} when opened from a consultation
let openSeq = 0;            // the newest openPatient call; older ones drop their results
let accessTimer = null;
let pendingTimer = null;

// ---- small helpers --------------------------------------------------------------------
function say(text, kind) {
  const status = $("status");
  status.textContent = text || "";
  status.classList.toggle("error", kind === "error");
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function fmtSecondsClock(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function fmtClock(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function fmtLeft(iso) {
  const minutes = Math.round((new Date(iso).getTime() - Date.now()) / 60000);
  if (minutes < 1) return "less than a minute left";
  if (minutes < 60) return `${minutes} min left`;
  const h = Math.floor(minutes / 60), m = minutes % 60;
  if (h >= 48) return `${Math.round(h / 24)} days left`;
  return m ? `${h} h ${m} min left` : `${h} h left`;
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "";
  const total = Math.round(s);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

function fmtSize(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function fieldText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

// ISO time → the value a datetime-local input shows (local time, seconds).
function toLocalInput(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function opsText(ops) {
  return ops.includes("edit") ? "view and edit" : "view";
}

function recordUrl(item, what) {
  return `/api/patients/${current.pid}/records/${item.category}/${item.id}/${what}`;
}

function pendingKey(identifier) {
  return `clinicam.pending.${session.user}.${identifier}`;
}

// A request under /api/patients/<pid>/. A 404 there means the record is gone, or (far
// more often) that our grant has ended: the access check below tells which.
async function patientCall(method, path, body) {
  const pid = current.pid;
  try {
    return await Api.call(method, `/api/patients/${pid}${path}`, body);
  } catch (e) {
    if (e.status === 404) await checkAccessStillValid();
    throw e;
  }
}

// ---- patients and access ------------------------------------------------------------------
async function loadPatients() {
  const data = await Api.call("GET", "/api/patients");
  patients = data.patients;
  const select = $("patient-select");
  const keep = current ? current.identifier : select.value;
  select.replaceChildren(new Option("Choose a patient…", ""));
  for (const p of patients) {
    const label = p.name ? `${p.identifier} — ${p.name}` : `${p.identifier} (no access yet)`;
    select.append(new Option(label, p.identifier));
  }
  select.value = patients.some((p) => p.identifier === keep) ? keep : "";
}

function activeGrants(identifier) {
  const known = patients.find((p) => p.identifier === identifier);
  if (!known) return [];
  const now = Date.now();
  return known.grants.filter((g) => !g.revoked_at && new Date(g.expires_at).getTime() > now);
}

function stopTimers() {
  clearInterval(accessTimer); accessTimer = null;
  clearInterval(pendingTimer); pendingTimer = null;
}

function updateUrl(identifier) {
  const next = new URLSearchParams();
  if (identifier) next.set("patient", identifier);
  if (consultation) next.set("consultation", consultation.id);
  const query = next.toString();
  history.replaceState(null, "", query ? `/records?${query}` : "/records");
}

async function openPatient(identifier) {
  identifier = identifier.trim();
  if (!identifier) { say("Choose a patient or type a patient identifier.", "error"); return; }
  stopTimers();
  clearRecordsView();
  if (!uploadsBusy()) {
    $("upload-list").replaceChildren();
    $("upload-overall").textContent = "";
  }
  const seq = ++openSeq;
  current = { identifier, pid: null, data: null, canEdit: false };
  updateUrl(identifier);
  $("no-access").hidden = true;
  $("records").hidden = true;
  say(`Opening the records of ${identifier}…`);
  try {
    await loadPatients();
  } catch (e) {
    if (seq === openSeq) say(`Could not load your patient list: ${problem(e)}`, "error");
    return;
  }
  if (seq !== openSeq) return;
  $("patient-other").value = patients.some((p) => p.identifier === identifier) ? "" : identifier;
  const known = patients.find((p) => p.identifier === identifier);
  if (known) current.pid = known.id;
  const grants = activeGrants(identifier);
  if (grants.length) {
    const outcome = await loadRecords(seq);
    if (outcome !== "denied") return;
    // This browser lost the grant's key (another tab or device took a new one): collect
    // the same grant again. Break-glass grants are never handed out twice like this.
    const reusable = grants.filter((g) => !g.break_glass);
    if (reusable.length) {
      const ops = reusable.some((g) => g.operations.includes("edit")) ? ["view", "edit"] : ["view"];
      if (await requestAccess(ops, "continuing an access granted earlier", seq, true)) return;
    }
  }
  if (seq !== openSeq) return;
  showNoAccess();
}

// "ok" | "denied" (no current grant) | "error"
async function loadRecords(seq) {
  if (current.pid === null) return "denied";
  let data;
  try {
    data = await Api.call("GET", `/api/patients/${current.pid}/records`);
  } catch (e) {
    if (seq !== openSeq) return "error";
    if (e.status === 404) return "denied";
    say(`Could not load the records: ${problem(e)}`, "error");
    return "error";
  }
  if (seq !== openSeq) return "error";
  sessionStorage.removeItem(pendingKey(current.identifier));
  showRecords(data);
  return "ok";
}

async function refreshRecords() {
  if (!current || current.pid === null || !current.data) return;
  const seq = openSeq;
  try {
    const data = await patientCall("GET", "/records");
    if (seq === openSeq && current.data) showRecords(data, true);
  } catch (e) {
    if (seq === openSeq && current.data) say(`Could not refresh the records: ${problem(e)}`, "error");
  }
}

function showNoAccess(reason) {
  stopTimers();
  $("records").hidden = true;
  $("no-access").hidden = false;
  $("no-access-title").textContent = `No access to the records of ${current.identifier}`;
  const why = $("no-access-why");
  why.classList.toggle("error", Boolean(reason));
  why.textContent = reason ||
    "You can only see a patient's records with an access grant. Ask for one below: if a rule of " +
    "your hospital covers it you get access at once, otherwise an admin has to approve it.";
  setRequestButtons(false);
  const stored = sessionStorage.getItem(pendingKey(current.identifier));
  if (stored) {
    try { showPending(JSON.parse(stored)); } catch (e) { sessionStorage.removeItem(pendingKey(current.identifier)); }
  } else {
    $("pending").hidden = true;
  }
  say(reason ? "" : `You have no current access to ${current.identifier}.`);
}

function setRequestButtons(busy) {
  $("request-view").disabled = busy;
  $("request-edit").disabled = busy;
  updateBreakGlassButton(busy);
}

function updateBreakGlassButton(busy) {
  $("break-glass").disabled = busy || $("break-glass-reason").value.trim().length < 10;
}

// Ask for a grant. true when the records are now open.
async function requestAccess(ops, reason, seq, quiet) {
  const identifier = current.identifier;
  setRequestButtons(true);
  if (!quiet) say(`Asking for ${opsText(ops)} access to ${identifier}…`);
  let answer;
  try {
    const body = { patient: identifier, operations: ops, reason };
    const minutes = Number($("access-minutes").value);
    if (minutes) body.minutes = minutes;
    answer = await Api.call("POST", "/api/access", body);
  } catch (e) {
    if (seq !== openSeq) return false;
    setRequestButtons(false);
    if (e.status === 404) {
      say(`There is no patient with the identifier “${identifier}”. Check the spelling.`, "error");
    } else {
      say(`The access request was not accepted: ${problem(e)}`, "error");
    }
    return false;
  }
  if (seq !== openSeq) return false;
  setRequestButtons(false);
  if (answer.status === "pending") {
    const pending = { ops, reason, at: new Date().toISOString() };
    sessionStorage.setItem(pendingKey(identifier), JSON.stringify(pending));
    showNoAccess();
    say(`Your request was sent: ${answer.message || "an admin has to approve it"}.`);
    return false;
  }
  current.pid = answer.patient_id;
  const outcome = await loadRecords(seq);
  if (outcome === "ok") loadPatients().catch(() => {});
  return outcome === "ok";
}

function showPending(pending) {
  $("pending").hidden = false;
  $("pending-text").textContent =
    `Your request for ${opsText(pending.ops)} access (sent ${fmtClock(pending.at)}) is waiting for an ` +
    "admin to approve it. This page opens the records by itself once it is approved. If it is " +
    "refused nothing changes here: contact your records admin.";
  clearInterval(pendingTimer);
  pendingTimer = setInterval(checkPending, PENDING_POLL_MS);
}

// Has an admin approved our pending request? Then collect the grant.
async function checkPending() {
  const seq = openSeq;
  const stored = sessionStorage.getItem(pendingKey(current.identifier));
  if (!stored) { clearInterval(pendingTimer); pendingTimer = null; return; }
  const pending = JSON.parse(stored);
  try {
    await loadPatients();
  } catch (e) {
    return;  // try again at the next tick
  }
  if (seq !== openSeq) return;
  const mine = patients.find((p) => p.identifier === current.identifier);
  const decision = mine && mine.request;
  if (decision && decision.status === "denied" && decision.decided_at >= pending.at) {
    clearInterval(pendingTimer); pendingTimer = null;
    sessionStorage.removeItem(pendingKey(current.identifier));
    $("pending-text").textContent =
      `An admin (${decision.decided_by}) refused your request. Ask them, or use break-glass in an emergency.`;
    return;
  }
  const covering = activeGrants(current.identifier).filter((g) =>
    !g.break_glass && pending.ops.every((op) => g.operations.includes(op)));
  if (!covering.length) return;
  clearInterval(pendingTimer); pendingTimer = null;
  const known = patients.find((p) => p.identifier === current.identifier);
  if (known) current.pid = known.id;
  say("An admin approved your request — opening the records…");
  await requestAccess(pending.ops, pending.reason, seq, true);
}

async function breakGlass() {
  const reason = $("break-glass-reason").value.trim();
  if (reason.length < 10) {
    say("Break-glass access needs a reason of at least 10 characters.", "error");
    return;
  }
  const seq = openSeq;
  setRequestButtons(true);
  say("Opening the records with emergency access…");
  try {
    const answer = await Api.call("POST", "/api/break-glass", { patient: current.identifier, reason });
    if (seq !== openSeq) return;
    current.pid = answer.patient_id;
    $("break-glass-reason").value = "";
    $("break-glass-box").open = false;
    const outcome = await loadRecords(seq);
    if (outcome === "ok") loadPatients().catch(() => {});
  } catch (e) {
    if (seq !== openSeq) return;
    say(`Emergency access was refused: ${problem(e)}`, "error");
  } finally {
    if (seq === openSeq) setRequestButtons(false);
  }
}

// A 404 from a records URL: is our grant still there? (Consent is a cheap, quiet check.)
let checkingAccess = null;
async function checkAccessStillValid() {
  if (!current || !current.data) return true;
  if (checkingAccess) return checkingAccess;
  const seq = openSeq;
  checkingAccess = (async () => {
    try {
      await Api.call("GET", `/api/patients/${current.pid}/consent`);
      return true;
    } catch (e) {
      if (e.status === 404 && seq === openSeq && current.data) {
        accessEnded();
        return false;
      }
      return true;
    } finally {
      checkingAccess = null;
    }
  })();
  return checkingAccess;
}

async function accessEnded() {
  cancelQueuedUploads("not uploaded: your access to this patient ended");
  clearRecordsView();
  current.data = null;
  current.canEdit = false;
  showNoAccess(
    "Your access to these records has ended: it expired or an admin revoked it. " +
    "Ask for access again to continue.");
  say("Your access has ended.", "error");
  const seq = openSeq;
  try { await loadPatients(); } catch (e) { return; }
  // Still granted? Then the grant was collected in another browser (it works in one place).
  if (seq === openSeq && activeGrants(current.identifier).some((g) => !g.break_glass)) {
    $("no-access-why").textContent =
      "Your access to these records is now in use in another browser (an access works in one " +
      "browser at a time). Ask for access again to continue here.";
  }
}

function watchAccess() {
  clearInterval(accessTimer);
  accessTimer = setInterval(() => {
    if (!current || !current.data) return;
    const expires = current.data.access.expires_at;
    if (new Date(expires).getTime() <= Date.now()) { accessEnded(); return; }
    showAccessInfo();
    checkAccessStillValid();
  }, ACCESS_CHECK_MS);
}

// ---- showing the records -------------------------------------------------------------------
function clearRecordsView() {
  for (const id of ["photos", "scans", "ct-slices", "voice", "emr-rows", "archive-ranges"]) {
    $(id).replaceChildren();
  }
  $("ct-image").removeAttribute("src");
  const video = $("archive-video");
  video.pause(); video.removeAttribute("src"); video.load(); video.hidden = true;
  closeOverlay();
  ct.series = []; ct.all = []; ct.index = 0; ct.loading = false; ct.queued = null;
}

function sharingHere() {
  return Boolean(consultation && current && consultation.patient === current.identifier);
}

function showAccessInfo() {
  const a = current.data.access;
  $("access-info").textContent =
    `Your access: ${opsText(a.operations)} until ${fmtClock(a.expires_at)} (${fmtLeft(a.expires_at)})`;
  const banner = $("break-glass-banner");
  banner.hidden = !a.break_glass;
  banner.textContent = a.break_glass
    ? `Emergency (break-glass) access — everything you open is logged and reported to the admins. ` +
      `It ends at ${fmtClock(a.expires_at)}.`
    : "";
}

function showRecords(data, refreshing) {
  current.data = data;
  current.pid = data.patient.id;
  current.canEdit = data.access.operations.includes("edit");
  $("no-access").hidden = true;
  $("pending").hidden = true;
  $("records").hidden = false;
  clearInterval(pendingTimer); pendingTimer = null;
  const p = data.patient;
  $("patient-title").textContent = p.name && p.name !== p.identifier ? `${p.identifier} — ${p.name}` : p.identifier;
  showAccessInfo();
  $("stop-sharing").hidden = !sharingHere();
  $("ct-share-row").hidden = !sharingHere();
  const r = data.records;
  renderImages("photos", r.clinical_photo || [], "photo");
  renderImages("scans", r.record_scan || [], "scan");
  renderCt(r.ct_image || []);
  renderVoice(r.voice_note || []);
  renderEmr(r.emr_entry || []);
  renderConsent();
  renderUploadState();
  if (!refreshing) {
    watchAccess();
    loadArchive();
    let note = "";
    if (consultation && !sharingHere()) {
      note = ` Sharing to the consultation is only possible for its patient (${consultation.patient}).`;
    }
    say(`Records of ${p.identifier} loaded.${note}`);
  }
}

function shareButton(item, extra) {
  if (!sharingHere()) return null;
  return el("button", {
    type: "button", class: "share",
    textContent: "Share to presentation",
    "aria-label": `Share ${item.title || item.category.replace("_", " ")} to the consultation's presentation`,
    onclick: () => share(item, extra ? extra() : {}),
  });
}

async function share(item, extra) {
  try {
    const info = await patientCall("POST", `/records/${item.category}/${item.id}/present`,
      { consultation: consultation.id, ...extra });
    say(`Shown in the consultation's presentation window: ${info.caption}`);
  } catch (e) {
    say(`Could not share it: ${problem(e)}`, "error");
  }
}

async function stopSharing() {
  try {
    await Api.call("DELETE", `/api/consultations/${encodeURIComponent(consultation.id)}/presentation`);
    say("The presentation window is cleared.");
  } catch (e) {
    say(`Could not clear the presentation: ${problem(e)}`, "error");
  }
}

function renderImages(containerId, items, kind) {
  const box = $(containerId);
  box.replaceChildren();
  $(`${containerId}-empty`).hidden = items.length > 0;
  $(`${containerId}-title`).textContent =
    `${kind === "photo" ? "Photos" : "Scanned records"}${items.length ? ` (${items.length})` : ""}`;
  for (const item of [...items].reverse()) {
    const title = item.title || (kind === "photo" ? `Photo ${item.id}` : `Scan ${item.id}`);
    const isImage = String(item.media_type).startsWith("image/");
    const figure = el("figure", { class: "thumb", dataset: { id: String(item.id), category: item.category } });
    if (isImage) {
      const img = el("img", { src: recordUrl(item, "thumbnail"), alt: title, loading: "lazy" });
      img.addEventListener("error", () => {
        img.replaceWith(el("span", { class: "no-preview" }, "No preview"));
        checkAccessStillValid();
      });
      const full = BROWSER_IMAGES.has(item.media_type) ? recordUrl(item, "content") : recordUrl(item, "thumbnail");
      figure.append(el("button", {
        type: "button", class: "thumb-open", "aria-label": `Open ${title} large`,
        onclick: (ev) => openOverlay(full, title, ev.currentTarget),
      }, img));
    } else {
      const pages = item.page_count ? `${item.page_count} page${item.page_count === 1 ? "" : "s"}` : "document";
      figure.append(el("a", {
        class: "doc-tile", href: recordUrl(item, "content"), target: "_blank", rel: "noopener",
        "aria-label": `Open ${title} (PDF, ${pages}) in a new tab`,
      }, el("span", { class: "doc-icon", "aria-hidden": "true" }, "PDF"), el("span", {}, pages)));
    }
    const when = item.taken_at || item.created_at;
    const caption = el("figcaption", {}, el("span", { class: "thumb-title" }, title),
      el("span", { class: "muted" }, fmtTime(when)));
    if (item.source === "appliance snapshot") {
      caption.append(el("span", { class: "muted" },
        `Camera snapshot${item.requested_by ? ` by ${item.requested_by}` : ""}`));
    } else if (item.created_by) {
      caption.append(el("span", { class: "muted" }, `Added by ${item.created_by}`));
    }
    caption.append(el("a", { href: recordUrl(item, "content"), download: "", class: "small-link" },
      `Download (${fmtSize(item.size)})`));
    figure.append(caption);
    const shareIt = shareButton(item);
    if (shareIt) figure.append(shareIt);
    box.append(figure);
  }
}

// ---- photo overlay ------------------------------------------------------------------------
let overlayOpener = null;
function openOverlay(src, caption, opener) {
  overlayOpener = opener || null;
  $("overlay-image").src = src;
  $("overlay-image").alt = caption;
  $("overlay-caption").textContent = caption;
  $("overlay").hidden = false;
  $("overlay-close").focus();
}

function closeOverlay() {
  if ($("overlay").hidden) return;
  $("overlay").hidden = true;
  $("overlay-image").removeAttribute("src");
  if (overlayOpener && document.contains(overlayOpener)) overlayOpener.focus();
  overlayOpener = null;
}

// ---- CT viewer ------------------------------------------------------------------------------
const ct = { all: [], series: [], index: 0, center: null, width: null, loading: false, queued: null };

function bySlice(a, b) {
  const pa = a.slice_position, pb = b.slice_position;
  if (pa === null || pa === undefined) return (pb === null || pb === undefined) ? a.id - b.id : 1;
  if (pb === null || pb === undefined) return -1;
  return pa - pb || a.id - b.id;
}

function renderCt(items) {
  ct.all = items;
  $("ct-empty").hidden = items.length > 0;
  $("ct-viewer").hidden = items.length === 0;
  $("ct-title").textContent = `CT images${items.length ? ` (${items.length})` : ""}`;
  const select = $("ct-series");
  const groups = new Map();
  for (const item of items) {
    const key = item.series_uid || "unknown";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(item);
  }
  const previous = select.value;
  select.replaceChildren();
  let n = 0;
  for (const [uid, slices] of groups) {
    n += 1;
    const modality = slices[0].modality || "CT";
    const option = new Option(`${n}: ${modality}, ${slices.length} slice${slices.length === 1 ? "" : "s"}`, uid);
    option.title = `Series ${uid}`;
    select.append(option);
  }
  $("ct-series-field").hidden = groups.size < 2;
  if (groups.has(previous)) select.value = previous;
  if (!items.length) return;
  const keepId = ct.series[ct.index] ? ct.series[ct.index].id : null;
  ct.groups = groups;
  chooseSeries(select.value, keepId);
}

function chooseSeries(uid, keepId) {
  ct.series = [...(ct.groups.get(uid) || [])].sort(bySlice);
  const list = $("ct-slices");
  list.replaceChildren();
  ct.series.forEach((item, i) => {
    const pos = item.slice_position === null || item.slice_position === undefined ? "" : ` · ${item.slice_position} mm`;
    list.append(el("li", {}, el("button", {
      type: "button", class: "ct-slice-button", dataset: { index: String(i) },
      textContent: `Slice ${i + 1}${pos}`, onclick: () => showSlice(i),
    })));
  });
  const slider = $("ct-slice");
  slider.max = String(Math.max(0, ct.series.length - 1));
  const keep = keepId === null ? -1 : ct.series.findIndex((s) => s.id === keepId);
  showSlice(keep >= 0 ? keep : 0);
}

function ctRenderUrl(item) {
  const base = recordUrl(item, "render");
  if (ct.center === null || ct.width === null) return base;
  return `${base}?center=${encodeURIComponent(ct.center)}&width=${encodeURIComponent(ct.width)}`;
}

// Newest wins: while a slice loads, only the latest wanted picture is kept waiting.
function requestCtImage() {
  const item = ct.series[ct.index];
  if (!item) return;
  const src = new URL(ctRenderUrl(item), location.href).href;
  const img = $("ct-image");
  if (ct.loading) { ct.queued = src; return; }
  ct.queued = null;
  if (img.src === src && img.complete) return;  // already showing it
  ct.loading = true;
  img.alt = `CT slice ${ct.index + 1} of ${ct.series.length}`;
  img.src = src;
}

function ctImageDone(ok) {
  ct.loading = false;
  if (ct.queued && ct.queued !== $("ct-image").src) {
    const next = ct.queued;
    ct.queued = null;
    ct.loading = true;
    $("ct-image").src = next;
    return;
  }
  ct.queued = null;
  if (!ok) ctImageProblem();
}

async function ctImageProblem() {
  const src = $("ct-image").getAttribute("src");
  if (!src) return;
  try {
    const resp = await fetch(src, { credentials: "same-origin" });
    if (resp.ok) return;
    let message = `HTTP ${resp.status}`;
    try { message = (await resp.json()).error || message; } catch (e) { /* not JSON */ }
    $("ct-info").textContent = `This slice cannot be shown: ${message}`;
    if (resp.status === 404) checkAccessStillValid();
  } catch (e) {
    $("ct-info").textContent = `This slice cannot be shown: ${problem(e)}`;
  }
}

function showSlice(i) {
  if (!ct.series.length) return;
  ct.index = Math.max(0, Math.min(ct.series.length - 1, i));
  $("ct-slice").value = String(ct.index);
  $("ct-slice-value").textContent = `${ct.index + 1} of ${ct.series.length}`;
  for (const b of document.querySelectorAll(".ct-slice-button")) {
    if (Number(b.dataset.index) === ct.index) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
  $("ct-prev").disabled = ct.index === 0;
  $("ct-next").disabled = ct.index === ct.series.length - 1;
  showCtInfo();
  requestCtImage();
}

function showCtInfo() {
  const item = ct.series[ct.index];
  if (!item) return;
  const parts = [`Slice ${ct.index + 1} of ${ct.series.length}`];
  if (item.slice_position !== null && item.slice_position !== undefined) parts.push(`position ${item.slice_position} mm`);
  if (item.modality) parts.push(item.modality);
  parts.push(ct.center === null ? "the file's own window" : `window ${ct.center}/${ct.width}`);
  if (item.title) parts.push(item.title);
  $("ct-info").textContent = parts.join(" · ");
  $("ct-center-value").textContent = ct.center === null ? "(file)" : String(ct.center);
  $("ct-width-value").textContent = ct.width === null ? "(file)" : String(ct.width);
}

function setWindow(center, width) {
  ct.center = center;
  ct.width = width;
  if (center !== null) $("ct-center").value = String(center);
  if (width !== null) $("ct-width").value = String(width);
  showCtInfo();
  requestCtImage();
}

function setupCt() {
  const img = $("ct-image");
  img.addEventListener("load", () => ctImageDone(true));
  img.addEventListener("error", () => ctImageDone(false));
  $("ct-prev").addEventListener("click", () => showSlice(ct.index - 1));
  $("ct-next").addEventListener("click", () => showSlice(ct.index + 1));
  $("ct-slice").addEventListener("input", (ev) => showSlice(Number(ev.target.value)));
  $("ct-series").addEventListener("change", (ev) => chooseSeries(ev.target.value, null));
  const fromSliders = () => setWindow(Number($("ct-center").value), Number($("ct-width").value));
  $("ct-center").addEventListener("input", fromSliders);
  $("ct-width").addEventListener("input", fromSliders);
  for (const b of document.querySelectorAll(".ct-preset")) {
    b.addEventListener("click", () => {
      if (b.dataset.center === "") setWindow(null, null);
      else setWindow(Number(b.dataset.center), Number(b.dataset.width));
    });
  }
  const stage = $("ct-stage");
  let wheel = 0;
  stage.addEventListener("wheel", (ev) => {
    if (!ct.series.length) return;
    ev.preventDefault();
    wheel += ev.deltaY;
    if (Math.abs(wheel) >= 40) {
      showSlice(ct.index + Math.sign(wheel));
      wheel = 0;
    }
  }, { passive: false });
  stage.addEventListener("keydown", (ev) => {
    const moves = { ArrowUp: -1, ArrowLeft: -1, PageUp: -5, ArrowDown: 1, ArrowRight: 1, PageDown: 5 };
    if (ev.key in moves) { ev.preventDefault(); showSlice(ct.index + moves[ev.key]); }
    else if (ev.key === "Home") { ev.preventDefault(); showSlice(0); }
    else if (ev.key === "End") { ev.preventDefault(); showSlice(ct.series.length - 1); }
  });
  $("ct-share").addEventListener("click", () => {
    const item = ct.series[ct.index];
    if (!item) return;
    const extra = ct.center === null ? {} : { center: ct.center, width: ct.width };
    share(item, extra);
  });
}

// ---- voice notes ------------------------------------------------------------------------------
function renderVoice(items) {
  const list = $("voice");
  list.replaceChildren();
  $("voice-empty").hidden = items.length > 0;
  $("voice-title").textContent = `Voice notes${items.length ? ` (${items.length})` : ""}`;
  for (const item of [...items].reverse()) {
    const title = item.title || `Voice note ${item.id}`;
    const meta = [fmtTime(item.created_at), fmtSeconds(item.duration_s), item.created_by && `by ${item.created_by}`]
      .filter(Boolean).join(" · ");
    const li = el("li", { class: "voice-item", dataset: { id: String(item.id) } },
      el("div", {}, el("span", { class: "thumb-title" }, title), " ", el("span", { class: "muted" }, meta)),
      el("audio", {
        controls: true, preload: "metadata", src: recordUrl(item, "content"), "aria-label": title,
        onerror: () => checkAccessStillValid(),
      }));
    const shareIt = shareButton(item);
    if (shareIt) li.append(shareIt);
    list.append(li);
  }
}

// ---- EMR entries ------------------------------------------------------------------------------
let editingEntry = null;   // the entry being edited, or null when adding

function renderEmr(items) {
  const body = $("emr-rows");
  body.replaceChildren();
  $("emr-empty").hidden = items.length > 0;
  $("emr-table").hidden = items.length === 0;
  const sorted = [...items].sort((a, b) =>
    new Date(b.recorded_at || b.created_at) - new Date(a.recorded_at || a.created_at) || b.id - a.id);
  for (const item of sorted) {
    const fields = el("dl", { class: "fields" });
    for (const [key, value] of Object.entries(item.fields || {})) {
      fields.append(el("div", {}, el("dt", {}, `${key}:`), el("dd", {}, fieldText(value))));
    }
    const actions = el("td", { class: "actions" });
    if (current.canEdit) {
      actions.append(el("button", {
        type: "button", textContent: "Edit", "aria-label": `Edit the entry of ${fmtTime(item.recorded_at)}`,
        onclick: () => startEditing(item),
      }));
    }
    const shareIt = shareButton({ ...item, title: `Record entry of ${fmtTime(item.recorded_at)}` });
    if (shareIt) actions.append(shareIt);
    body.append(el("tr", { dataset: { id: String(item.id) } },
      el("td", { class: "nowrap" }, fmtTime(item.recorded_at || item.created_at)),
      el("td", {}, fields),
      el("td", { class: "muted" }, item.created_by || ""),
      actions));
  }
  $("emr-form").hidden = !current.canEdit;
  if (editingEntry && !items.some((i) => i.id === editingEntry.id)) resetEmrForm();
}

function addFieldRow(key, value) {
  const rows = $("emr-fields");
  const n = rows.children.length + 1;
  const keyInput = el("input", { class: "emr-key", value: key || "", maxLength: 200, "aria-label": `Field ${n} name`, placeholder: "Field, e.g. blood pressure" });
  const valueInput = el("input", { class: "emr-value", value: value || "", "aria-label": `Field ${n} value`, placeholder: "Value, e.g. 120/80" });
  const row = el("div", { class: "row emr-row" }, keyInput, valueInput);
  row.append(el("button", {
    type: "button", textContent: "✕", "aria-label": `Remove field ${n}`, title: "Remove this field",
    onclick: () => { row.remove(); if (!rows.children.length) addFieldRow(); },
  }));
  rows.append(row);
  return keyInput;
}

function resetEmrForm() {
  editingEntry = null;
  $("emr-fields").replaceChildren();
  addFieldRow();
  $("emr-recorded-at").value = "";
  $("emr-recorded-at").disabled = false;
  $("emr-form-title").textContent = "Add entry";
  $("emr-save").textContent = "Save entry";
  $("emr-cancel").hidden = true;
}

function startEditing(item) {
  editingEntry = item;
  $("emr-fields").replaceChildren();
  for (const [key, value] of Object.entries(item.fields || {})) addFieldRow(key, fieldText(value));
  $("emr-recorded-at").value = item.recorded_at ? toLocalInput(item.recorded_at).slice(0, 16) : "";
  $("emr-recorded-at").disabled = true;
  $("emr-form-title").textContent = `Edit the entry of ${fmtTime(item.recorded_at)} (fields can be changed or added)`;
  $("emr-save").textContent = "Save changes";
  $("emr-cancel").hidden = false;
  $("emr-status").textContent = "";
  const first = $("emr-fields").querySelector(".emr-value");
  if (first) first.focus();
}

function collectFields() {
  const fields = {};
  for (const row of $("emr-fields").querySelectorAll(".emr-row")) {
    const key = row.querySelector(".emr-key").value.trim();
    const raw = row.querySelector(".emr-value").value;
    if (!key && !raw.trim()) continue;
    if (!key) throw new Error("every value needs a field name");
    if (key in fields) throw new Error(`the field “${key}” is there twice`);
    let value = raw.trim();
    // An edited field keeps its kind: numbers stay numbers, text stays text.
    const before = editingEntry && editingEntry.fields ? editingEntry.fields[key] : undefined;
    if (before !== undefined && typeof before !== "string") {
      try { value = JSON.parse(value); } catch (e) { /* keep the text */ }
    }
    fields[key] = value;
  }
  if (!Object.keys(fields).length) throw new Error("fill in at least one field");
  return fields;
}

async function saveEmr(ev) {
  ev.preventDefault();
  const status = $("emr-status");
  status.classList.remove("error");
  let fields;
  try {
    fields = collectFields();
  } catch (e) {
    status.textContent = `Not saved: ${e.message}.`;
    status.classList.add("error");
    return;
  }
  const save = $("emr-save");
  save.disabled = true;
  try {
    if (editingEntry) {
      await patientCall("PATCH", `/records/emr_entry/${editingEntry.id}`, { fields });
      status.textContent = "Changes saved.";
    } else {
      const body = { fields };
      const at = $("emr-recorded-at").value;
      if (at) body.recorded_at = new Date(at).toISOString();
      await patientCall("POST", "/emr", body);
      status.textContent = "Entry saved.";
    }
    resetEmrForm();
    await refreshRecords();
  } catch (e) {
    status.textContent = `Not saved: ${problem(e)}`;
    status.classList.add("error");
  } finally {
    save.disabled = false;
  }
}

// ---- consent and export ---------------------------------------------------------------------
function renderConsent() {
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

async function changeConsent(purpose, box) {
  const granted = box.checked;
  box.disabled = true;
  try {
    await patientCall("POST", "/consent", { purpose, granted, note: "" });
    current.data.consent[purpose] = granted;
    say(`Recorded: the patient ${granted ? "agrees" : "does not agree"} to ${purpose === "training" ? "use for training" : "de-identified export"}.`);
  } catch (e) {
    box.checked = !granted;
    say(`Consent not recorded: ${problem(e)}`, "error");
  } finally {
    if (current.data) renderConsent();
  }
}

async function exportRecords() {
  const status = $("export-status");
  const button = $("export");
  button.disabled = true;
  status.textContent = "Preparing the de-identified export…";
  try {
    const resp = await fetch(`/api/patients/${current.pid}/export`, { credentials: "same-origin" });
    if (!resp.ok) {
      let message = `HTTP ${resp.status}`;
      try { message = (await resp.json()).error || message; } catch (e) { /* not JSON */ }
      if (resp.status === 404) checkAccessStillValid();
      throw Object.assign(new Error(message), { status: resp.status });
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
    if (current.data) button.disabled = !current.data.consent.export;
  }
}

// ---- archive (recorded video) --------------------------------------------------------------
async function loadArchive() {
  const section = $("archive-section");
  section.hidden = true;
  const seq = openSeq;
  let data;
  try {
    data = await Api.call("GET", `/api/patients/${current.pid}/archive`);
  } catch (e) {
    return;  // no archive on this server (or not yet): the section stays hidden
  }
  if (seq !== openSeq || !current.data || !data || !Array.isArray(data.ranges)) return;
  section.hidden = false;
  const list = $("archive-ranges");
  list.replaceChildren();
  $("archive-empty").hidden = data.ranges.length > 0;
  $("archive-controls").hidden = data.ranges.length === 0;
  for (const range of data.ranges) {
    const seconds = (new Date(range.end) - new Date(range.start)) / 1000;
    const pick = () => {
      $("archive-from").value = toLocalInput(range.start);
      $("archive-to").value = toLocalInput(range.end);
    };
    list.append(el("li", { class: "row" },
      el("span", {}, `${new Date(range.start).toLocaleDateString()} ${fmtSecondsClock(range.start)} – ` +
        `${fmtSecondsClock(range.end)} (${fmtSeconds(seconds)})`),
      el("button", { type: "button", textContent: "Choose", onclick: pick,
        "aria-label": `Choose the recording from ${fmtTime(range.start)}` }),
      el("button", { type: "button", textContent: "Play", onclick: () => { pick(); playArchive(); },
        "aria-label": `Play the recording from ${fmtTime(range.start)}` })));
  }
  if (data.ranges.length && !$("archive-from").value) {
    const last = data.ranges[data.ranges.length - 1];
    $("archive-from").value = toLocalInput(last.start);
    $("archive-to").value = toLocalInput(last.end);
  }
  const segments = Array.isArray(data.segments) ? data.segments.length : 0;
  $("archive-status").textContent = data.ranges.length
    ? `${data.ranges.length} recorded period${data.ranges.length === 1 ? "" : "s"} (${segments} pieces). Choose one or type a time span.`
    : "";
}

function playArchive() {
  const status = $("archive-status");
  const from = $("archive-from").value, to = $("archive-to").value;
  if (!from || !to) { status.textContent = "Choose a start and an end time."; return; }
  const start = new Date(from), end = new Date(to);
  if (!(end > start)) { status.textContent = "The end time must be after the start time."; return; }
  const video = $("archive-video");
  video.hidden = false;
  video.src = `/api/patients/${current.pid}/archive/video?start=${encodeURIComponent(start.toISOString())}` +
    `&end=${encodeURIComponent(end.toISOString())}`;
  status.textContent = "Loading the recording…";
  video.play().catch(() => { /* the error event explains */ });
}

function setupArchive() {
  const video = $("archive-video");
  $("archive-play").addEventListener("click", playArchive);
  video.addEventListener("loadeddata", () => { $("archive-status").textContent = ""; });
  video.addEventListener("error", async () => {
    const src = video.getAttribute("src");
    if (!src) return;
    let message = "this part of the recording cannot be played";
    try {
      const resp = await fetch(src, { credentials: "same-origin" });
      if (resp.ok) {
        if (resp.body) resp.body.cancel();
        message = "your browser cannot play this recording";
      } else {
        try { message = (await resp.json()).error || message; } catch (e) { /* not JSON */ }
        if (resp.status === 404) checkAccessStillValid();
      }
    } catch (e) {
      message = problem(e);
    }
    $("archive-status").textContent = `Cannot play: ${message}`;
  });
}

// ---- uploads ----------------------------------------------------------------------------------
const uploads = { queue: [], active: 0, total: 0, done: 0, ok: 0, failed: 0, skipped: 0 };

function renderUploadState() {
  const canEdit = Boolean(current && current.canEdit);
  $("drop-zone").hidden = !canEdit;
  $("upload-readonly").hidden = canEdit;
}

function uploadsBusy() {
  return uploads.active > 0 || uploads.queue.length > 0;
}

function enqueue(files) {
  if (!current || !current.data || !current.canEdit) {
    say("You have view access only: ask for view+edit access to add files.", "error");
    return;
  }
  if (!uploadsBusy()) {
    Object.assign(uploads, { total: 0, done: 0, ok: 0, failed: 0, skipped: 0 });
    $("upload-list").replaceChildren();
  }
  const category = $("upload-category").value;
  for (const { file, path } of files) {
    if (file.name.startsWith(".")) { uploads.skipped += 1; continue; }  // .DS_Store and friends
    const progress = el("progress", { max: 1, value: 0, "aria-label": `Upload of ${path}` });
    const state = el("span", { class: "upload-state" }, "waiting");
    const li = el("li", { class: "upload-item", dataset: { state: "queued", name: file.name } },
      el("span", { class: "upload-name" }, path), progress, state);
    $("upload-list").append(li);
    uploads.queue.push({ file, path, li, progress, state, pid: current.pid, category });
    uploads.total += 1;
  }
  pump();
}

function pump() {
  while (uploads.active < UPLOADS_AT_ONCE && uploads.queue.length) startUpload(uploads.queue.shift());
  showUploadProgress();
}

function showUploadProgress() {
  const u = uploads;
  if (!u.total && !u.skipped) { $("upload-overall").textContent = ""; return; }
  const parts = [`${u.done} of ${u.total} file${u.total === 1 ? "" : "s"} done`];
  if (u.failed) parts.push(`${u.failed} not filed`);
  if (u.skipped) parts.push(`${u.skipped} hidden system file${u.skipped === 1 ? "" : "s"} skipped`);
  $("upload-overall").textContent = (uploadsBusy() ? "Uploading: " : "Finished: ") + parts.join(", ") + ".";
}

function finishUpload(job, ok, message) {
  uploads.active -= 1;
  uploads.done += 1;
  if (ok) uploads.ok += 1; else uploads.failed += 1;
  job.li.dataset.state = ok ? "ok" : "error";
  job.progress.value = 1;
  job.progress.hidden = true;
  job.state.textContent = ok ? `✓ ${message}` : `✗ ${message}`;
  job.state.classList.toggle("error", !ok);
  if (!uploadsBusy()) {
    showUploadProgress();
    if (uploads.ok) refreshRecords();
  } else {
    pump();
  }
}

function startUpload(job) {
  uploads.active += 1;
  job.li.dataset.state = "uploading";
  job.state.textContent = "uploading…";
  let url = `/api/patients/${job.pid}/records?title=${encodeURIComponent(job.file.name)}`;
  if (job.category) url += `&category=${encodeURIComponent(job.category)}`;
  const xhr = new XMLHttpRequest();
  xhr.open("POST", url);
  xhr.setRequestHeader("X-CSRF-Token", Api.csrf);
  xhr.setRequestHeader("Accept", "application/json");
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.upload.addEventListener("progress", (ev) => {
    if (ev.lengthComputable && ev.total) job.progress.value = ev.loaded / ev.total;
  });
  xhr.addEventListener("load", () => {
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
    if (xhr.status === 201) {
      const label = { clinical_photo: "photo", record_scan: "scanned record", ct_image: "CT image", voice_note: "voice note" };
      finishUpload(job, true, `filed as ${label[data && data.category] || "record"}`);
      return;
    }
    if (xhr.status === 401) { location.href = "/login?next=/records"; return; }
    const message = (data && data.error) || `the server answered HTTP ${xhr.status}`;
    finishUpload(job, false, xhr.status === 409 ? `already in the record: ${message}` : message);
    if (xhr.status === 404) checkAccessStillValid();
  });
  xhr.addEventListener("error", () => finishUpload(job, false,
    "the upload broke off (network problem, or the file is larger than the server accepts)"));
  xhr.send(job.file);
}

function cancelQueuedUploads(reason) {
  for (const job of uploads.queue) {
    uploads.done += 1; uploads.failed += 1;
    job.li.dataset.state = "error";
    job.progress.hidden = true;
    job.state.textContent = `✗ ${reason}`;
    job.state.classList.add("error");
  }
  uploads.queue = [];
  showUploadProgress();
}

// Walk dropped folders (DICOM studies arrive as folders).
function readAllEntries(reader) {
  return new Promise((resolve, reject) => {
    const all = [];
    const next = () => reader.readEntries((batch) => {
      if (!batch.length) { resolve(all); return; }
      all.push(...batch);
      next();
    }, reject);
    next();
  });
}

async function walkEntry(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\//, "") });
  } else if (entry.isDirectory) {
    const children = await readAllEntries(entry.createReader());
    children.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
    for (const child of children) await walkEntry(child, out);
  }
}

async function dropped(dataTransfer) {
  // The item list is only valid during the event: take the entries first, walk afterwards.
  const items = [...(dataTransfer.items || [])].filter((i) => i.kind === "file");
  const entries = [];
  const plain = [];
  for (const item of items) {
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else { const f = item.getAsFile(); if (f) plain.push({ file: f, path: f.name }); }
  }
  if (!items.length) for (const f of dataTransfer.files || []) plain.push({ file: f, path: f.name });
  $("upload-overall").textContent = "Reading the dropped files…";
  const files = [...plain];
  try {
    for (const entry of entries) await walkEntry(entry, files);
  } catch (e) {
    say(`Some dropped files could not be read: ${e.message || e}`, "error");
  }
  if (!files.length) { $("upload-overall").textContent = "No files found in what was dropped."; return; }
  enqueue(files);
}

function setupUploads() {
  const zone = $("drop-zone");
  $("choose-files").addEventListener("click", () => $("file-input").click());
  $("choose-folder").addEventListener("click", () => $("folder-input").click());
  for (const id of ["file-input", "folder-input"]) {
    $(id).addEventListener("change", (ev) => {
      const files = [...ev.target.files].map((f) => ({ file: f, path: f.webkitRelativePath || f.name }));
      ev.target.value = "";
      if (files.length) enqueue(files);
    });
  }
  zone.addEventListener("dragenter", (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", (ev) => {
    if (!zone.contains(ev.relatedTarget)) zone.classList.remove("over");
  });
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    dropped(ev.dataTransfer);
  });
  // A file dropped next to the zone must not replace the page (and lose its state).
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => {
    if (!zone.contains(ev.target)) {
      ev.preventDefault();
      if (current && current.canEdit && !$("records").hidden) say("Drop files on the “Add files” area to upload them.");
    }
  });
  window.addEventListener("beforeunload", (ev) => {
    if (uploadsBusy()) { ev.preventDefault(); ev.returnValue = ""; }
  });
}

// ---- start ------------------------------------------------------------------------------------
function setup() {
  $("logout").addEventListener("click", () => Api.logout());
  $("patient-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const typed = $("patient-other").value.trim();
    openPatient(typed || $("patient-select").value);
  });
  // Picking with the mouse opens at once; arrowing through the list with the keyboard
  // does not open every patient on the way (Enter or "Open" does).
  let keyedAt = 0;
  $("patient-select").addEventListener("keydown", () => { keyedAt = Date.now(); });
  $("patient-select").addEventListener("change", (ev) => {
    if (!ev.target.value || Date.now() - keyedAt < 800) return;
    $("patient-other").value = "";
    openPatient(ev.target.value);
  });
  const reason = () => $("access-reason").value.trim();
  $("request-view").addEventListener("click", () => requestAccess(["view"], reason(), openSeq));
  $("request-edit").addEventListener("click", () => requestAccess(["view", "edit"], reason(), openSeq));
  $("pending-check").addEventListener("click", () => checkPending());
  $("break-glass-reason").addEventListener("input", () => updateBreakGlassButton(false));
  $("break-glass").addEventListener("click", breakGlass);
  $("refresh").addEventListener("click", async () => { await refreshRecords(); say("Records refreshed."); });
  $("stop-sharing").addEventListener("click", stopSharing);
  $("overlay-close").addEventListener("click", closeOverlay);
  $("overlay").addEventListener("click", (ev) => { if (ev.target === $("overlay")) closeOverlay(); });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("overlay").hidden) { ev.preventDefault(); closeOverlay(); }
  });
  $("emr-form").addEventListener("submit", saveEmr);
  $("emr-add-field").addEventListener("click", () => addFieldRow().focus());
  $("emr-cancel").addEventListener("click", () => { resetEmrForm(); $("emr-status").textContent = ""; });
  for (const purpose of ["training", "export"]) {
    const box = $(`consent-${purpose}`);
    box.addEventListener("change", () => changeConsent(purpose, box));
  }
  $("export").addEventListener("click", exportRecords);
  setupCt();
  setupArchive();
  setupUploads();
  resetEmrForm();
}

(async () => {
  setup();
  try {
    session = await Api.session();
  } catch (e) {
    say(`Cannot reach the server: ${problem(e)}`, "error");
    return;
  }
  $("who").textContent = session.display_name;
  $("admin-link").hidden = session.role !== "admin";
  const cid = params.get("consultation");
  if (cid) {
    consultation = session.consultations.find((c) => c.id === cid) || null;
    if (!consultation) say("You are not invited to that consultation, so nothing can be shared to it from here.", "error");
  }
  const wanted = params.get("patient");
  if (wanted) {
    await openPatient(wanted);
    return;
  }
  try {
    await loadPatients();
    say(patients.length ? "Choose a patient to open their records." : "Type a patient identifier to ask for access to their records.");
  } catch (e) {
    say(`Could not load your patient list: ${problem(e)}`, "error");
  }
})();
