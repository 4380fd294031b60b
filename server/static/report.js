// The chair's "End and report" page: end the consultation, write the findings and the
// recommendation, choose snapshots, save the draft and sign it with the password again.
// A change after signing is signed as a new version; the old ones stay (listed below).
import { createApi } from "./api.js";
import { $, el, inspectable, problem, say } from "./dom.js";
import { formatDateTime, mountSwitch, t } from "./i18n.js";

const api = createApi();
const cid = decodeURIComponent(location.pathname.split("/").pop() || "");
const base = `/api/consultations/${encodeURIComponent(cid)}`;
/** @type {any} */
let draft = null;

/** @param {string} text @param {string} [kind] */
function formSay(text, kind) {
  const status = $("form-status");
  status.textContent = text;
  status.classList.toggle("error", kind === "error");
}

/** The draft as the form holds it. */
function given() {
  const chosen = [...document.querySelectorAll("#snapshots input:checked")]  // i18n: not for people (a CSS selector)
    .map((box) => Number(/** @type {HTMLInputElement} */ (box).value));
  return {
    findings: /** @type {HTMLTextAreaElement} */ ($("findings")).value,
    recommendation: /** @type {HTMLTextAreaElement} */ ($("recommendation")).value,
    snapshots: chosen,
  };
}

/** @param {any} photo */
function photoLabel(photo) {
  const when = photo.taken_at ? formatDateTime(photo.taken_at) : formatDateTime(photo.created_at);
  return photo.title ? `${photo.title} · ${when}` : t("report.photo_n", { id: photo.id, when });
}

/** @param {any} data GET base/report */
function show(data) {
  draft = data;
  $("report-form").hidden = false;
  $("end-section").hidden = data.state === "ended";
  $("findings").value = data.findings;
  $("recommendation").value = data.recommendation;
  $("notes").textContent = data.notes || t("report.notes_empty");
  const box = $("snapshots");
  box.querySelectorAll("label").forEach((/** @type {Element} */ label) => label.remove());
  $("no-snapshots").hidden = data.photos.length > 0;
  for (const photo of data.photos) {
    const input = el("input", { type: "checkbox", value: String(photo.id), checked: data.snapshots.includes(photo.id) });
    box.append(el("label", { class: "check" }, input, " ", photoLabel(photo)));
  }
  /** @type {HTMLAnchorElement} */ ($("records-link")).href = `/records?patient=${encodeURIComponent(data.patient.identifier)}`;
  showVersions(data.versions);
  if (data.signed) formSay(t("report.signed_as_is"));
}

/** @param {any[]} versions */
function showVersions(versions) {
  $("no-versions").hidden = versions.length > 0;
  $("versions").replaceChildren(...[...versions].reverse().map((v) => el("li", { dataset: { version: String(v.version) } },
    t("report.version_line", { version: v.version, who: v.signed_by, when: formatDateTime(v.signed_at) }), " ",
    el("code", { class: "digest", title: v.digest }, v.digest.slice(0, 16)))));
}

async function load() {
  try { show(await api.call("GET", `${base}/report`)); }
  catch (e) { say(problem(e), "error"); }
}

async function save() {
  await api.call("PUT", `${base}/report`, given());
}

async function end() {
  if (!window.confirm(t("lobby.confirm_end"))) return;
  try {
    await save();  // what is typed so far stays (the form is reloaded below)
    await api.call("POST", `${base}/end`, {});
    say(t("lobby.ended"));
  } catch (e) { say(problem(e), "error"); }
  await load();
}

/** @param {SubmitEvent} ev */
async function sign(ev) {
  ev.preventDefault();
  const password = /** @type {HTMLInputElement} */ ($("password"));
  if (!password.value) { formSay(t("report.password_needed"), "error"); password.focus(); return; }
  try {
    const now = given();
    const changed = !draft || now.findings !== draft.findings || now.recommendation !== draft.recommendation
      || now.snapshots.join() !== [...draft.snapshots].sort((a, b) => a - b).join();
    if (changed || !draft.signed) await save();
    const signed = await api.call("POST", `${base}/report/sign`, { password: password.value });
    password.value = "";
    formSay(t("report.signed", { version: signed.version }));
    await load();
    formSay(t("report.signed", { version: signed.version }));
  } catch (e) {
    password.value = "";
    formSay(problem(e), "error");
  }
}

inspectable({ Api: () => api });

(async () => {
  $("logout").onclick = () => api.logout();
  mountSwitch($("language-slot"), api);
  const session = await api.session();
  $("who").textContent = session.display_name;
  $("heading").textContent = t("report.heading", { cid });
  $("end").addEventListener("click", end);
  $("save").addEventListener("click", async () => {
    try { await save(); formSay(t("report.saved")); await load(); formSay(t("report.saved")); }
    catch (e) { formSay(problem(e), "error"); }
  });
  $("report-form").addEventListener("submit", sign);
  await load();
})();
