// The lobby's forms (ES module): clinic staff ask for a consultation (or start one now,
// when it is urgent); a chair schedules a request and invites experts, or declines it.
import { el, problem, say } from "./dom.js";
import { formatDateTime, t } from "./i18n.js";
import { urgencyText } from "./lobby_agenda.js";

/** @typedef {import("./lobby_agenda.js").Entry} Entry */
/** @typedef {{call: (method: string, url: string, body?: any) => Promise<any>}} Api */
/** @typedef {{username: string, name: string, role: string}} Invitable */

/**
 * A `datetime-local` value (this browser's zone) as an ISO time in UTC, or null.
 * @param {string} local
 */
export function isoFromLocal(local) {
  if (!local) return null;
  const when = new Date(local);
  return Number.isNaN(when.getTime()) ? null : when.toISOString();
}

/**
 * The start and end of a schedule order, or null when the start is missing or unreadable.
 * @param {string} local the start (datetime-local) @param {number} minutes its length
 */
export function slot(local, minutes) {
  const start = isoFromLocal(local);
  if (!start) return null;
  const end = new Date(new Date(start).getTime() + minutes * 60000).toISOString();
  return { start, end };
}

/**
 * The clinic staff's request form.
 * @param {HTMLFormElement} form @param {Api} api @param {{device: string, clinic: string}[]} stations
 * @param {() => void} done after a request was sent
 */
export function setupAsk(form, api, stations, done) {
  const value = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ (form.querySelector(`#${id}`)).value.trim();
  const appliance = /** @type {HTMLSelectElement} */ (form.querySelector("#ask-appliance"));
  for (const s of stations) appliance.append(el("option", { value: s.device }, `${s.clinic} — ${s.device}`));
  function order() {
    const times = value("ask-times");
    return {
      patient_id: value("ask-patient"), appliance: appliance.value, reason: value("ask-reason"),
      specialty: value("ask-specialty") || null, urgency: value("ask-urgency"),
      preferred_times: times ? [times] : [],
    };
  }
  /** @param {boolean} now */
  async function send(now) {
    try {
      const made = await api.call("POST", "/api/consultations", { ...order(), urgency: now ? "urgent" : value("ask-urgency") });
      if (now) await api.call("POST", `/api/consultations/${encodeURIComponent(made.id)}/start-now`, {});
      form.reset();
      say(now ? t("lobby.started_now") : t("lobby.asked"));
      done();
    } catch (e) { say(problem(e), "error"); }
  }
  form.addEventListener("submit", (ev) => { ev.preventDefault(); send(false); });
  /** @type {HTMLElement} */ (form.querySelector("#ask-now")).onclick = () => {
    if (form.reportValidity()) send(true);
  };
}

/**
 * A request as a chair sees it: schedule it (time, length, experts) or decline it.
 * @param {Entry} c @param {Api} api @param {Invitable[]} invitable @param {string} user
 * @param {() => void} done after a decision
 */
export function requestItem(c, api, invitable, user, done) {
  const base = `/api/consultations/${encodeURIComponent(c.id)}`;
  const start = el("input", { type: "datetime-local", required: true, class: "start" });
  const minutes = el("input", { type: "number", min: 10, max: 480, value: 30, class: "minutes" });
  const boxes = invitable.filter((p) => p.username !== user).map((p) =>
    el("label", { class: "expert" }, el("input", { type: "checkbox", value: p.username }), ` ${p.name}`));
  const reason = el("input", { class: "decline-reason", maxlength: 2000 });
  const chosen = () => boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
  /** @param {string} what @param {any} body */
  async function decide(what, body) {
    try { await api.call("POST", `${base}/${what}`, body); done(); }
    catch (e) { say(problem(e), "error"); }
  }
  const schedule = () => {
    const when = slot(start.value, Number(minutes.value) || 30);
    if (!when) { say(t("lobby.pick_start"), "error"); return; }
    decide("schedule", { ...when, experts: chosen() });
  };
  const times = (c.preferred_times || []).join("; ");
  return el("li", { dataset: { cid: c.id, state: c.state }, class: "request" },
    el("div", {},
      el("strong", {}, t("lobby.consultation", { title: c.title, patient: c.patient })),
      el("p", { class: "muted" }, t("lobby.request_line", {
        clinic: c.clinic || "", urgency: urgencyText(c.urgency), reason: c.reason,
        asked: formatDateTime(c.created_at),
      })),
      times ? el("p", { class: "muted" }, t("lobby.preferred", { times })) : null,
      el("fieldset", { class: "schedule" },
        el("legend", {}, t("lobby.schedule_heading")),
        el("label", {}, t("lobby.start"), " ", start),
        el("label", {}, t("lobby.minutes"), " ", minutes),
        el("div", { class: "experts" }, ...boxes),
        el("button", { class: "schedule", type: "button", onclick: schedule }, t("lobby.schedule")),
        el("button", { class: "start-now", type: "button", onclick: () => decide("start-now", { experts: chosen() }) }, t("lobby.ask_now"))),
      el("fieldset", { class: "decline" },
        el("legend", {}, t("lobby.decline_heading")),
        el("label", {}, t("lobby.decline_reason"), " ", reason),
        el("button", { class: "decline", type: "button", onclick: () => decide("decline", { reason: reason.value.trim() }) }, t("lobby.decline")))));
}
