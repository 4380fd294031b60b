// Clinic staff's page: register a patient with their consent (R15), and find patients
// by identifier or name among those this person may know of.
import { createApi } from "./api.js";
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { mountSwitch, t } from "./i18n.js";

export const PER_PAGE = 20;

/**
 * The registration request from what was entered (texts trimmed; empty optional ones left out).
 * @param {{identifier: string, name: string, sex: string, birthDate: string, clinic?: string,
 *   group?: string, training: boolean, export: boolean, recording?: boolean}} form
 */
export function registrationBody(form) {
  /** @type {Record<string, any>} */
  const body = {
    identifier: form.identifier.trim(),
    name: form.name.trim(),
    sex: form.sex,
    birth_date: form.birthDate,
    consent: { training: Boolean(form.training), export: Boolean(form.export),
      recording: Boolean(form.recording) },
  };
  const group = (form.group || "").trim();
  const clinic = (form.clinic || "").trim();
  if (group) body.group = group;
  if (clinic) body.clinic = clinic;
  return body;
}

/**
 * The search URL for a query and a page.
 * @param {string} q @param {number} page
 */
export function searchUrl(q, page) {
  const params = new URLSearchParams({ q: q.trim(), page: String(page), per_page: String(PER_PAGE) });
  return `/api/patients?${params}`;
}

/**
 * What a page of results says: how many in all, which ones are shown.
 * @param {{total: number, page: number, per_page: number, patients: unknown[]}} answer
 */
export function resultsSummary(answer) {
  if (!answer.total) return "";
  const first = (answer.page - 1) * answer.per_page + 1;
  const last = first + answer.patients.length - 1;
  return t("clinic.search.summary", { count: answer.total, first, last });
}

/** @param {string | null} sex */
function sexText(sex) {
  return sex ? t(`clinic.sex.${sex}`) : "";
}

/** @param {any} p a found patient */
function row(p) {
  return el("tr", {},
    el("td", { translate: "no" }, p.identifier),
    el("td", {}, p.name === null ? t("clinic.search.name_hidden") : p.name),
    el("td", {}, sexText(p.sex)),
    el("td", {}, p.birth_date || ""),
    el("td", {}, p.clinic || ""));
}

function setup() {
  const api = createApi();
  mountSwitch(/** @type {HTMLElement} */ (document.querySelector("header")), api);
  let query = "";
  let page = 1;

  async function search() {
    try {
      const answer = await api.call("GET", searchUrl(query, page));
      const body = emptiedTable("results", answer.patients);
      body.append(...answer.patients.map(row));
      $("results-summary").textContent = resultsSummary(answer);
      $("results-prev").hidden = answer.page <= 1;
      $("results-next").hidden = answer.page * answer.per_page >= answer.total;
    } catch (e) {
      say(t("clinic.search.failed", { problem: problem(e) }), "error");
    }
  }

  async function register(/** @type {Event} */ ev) {
    ev.preventDefault();
    const button = $("register");
    button.disabled = true;
    const body = registrationBody({
      identifier: $("reg-identifier").value,
      name: $("reg-name").value,
      sex: $("reg-sex").value,
      birthDate: $("reg-birth").value,
      clinic: $("reg-clinic-field").hidden ? "" : $("reg-clinic").value,
      group: $("reg-group").value,
      training: $("reg-consent-training").checked,
      export: $("reg-consent-export").checked,
      recording: $("reg-consent-recording").checked,
    });
    try {
      const patient = await api.call("POST", "/api/patients", body);
      say(t("clinic.register.done", { identifier: patient.identifier, name: patient.name }));
      /** @type {HTMLFormElement} */ ($("register-form")).reset();
      query = patient.identifier;
      page = 1;
      $("search-q").value = query;
      await search();
    } catch (e) {
      say(t("clinic.register.refused", { problem: problem(e) }), "error");
    } finally {
      button.disabled = false;
    }
  }

  (async () => {
    $("logout").onclick = () => api.logout();
    const s = await api.session();
    $("who").textContent = s.display_name;
    $("reg-clinic-field").hidden = s.role !== "admin";  // staff register for their own clinic
    const now = new Date();  // today where the clinic is, not in UTC
    $("reg-birth").max = new Date(now.getTime() - now.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
    $("register-form").addEventListener("submit", register);
    $("search-form").addEventListener("submit", (/** @type {Event} */ ev) => {
      ev.preventDefault();
      query = $("search-q").value;
      page = 1;
      search();
    });
    $("results-prev").onclick = () => { page = Math.max(1, page - 1); search(); };
    $("results-next").onclick = () => { page += 1; search(); };
    await search();
  })();
}

if (typeof document !== "undefined" && document.getElementById("register-form")) setup();
