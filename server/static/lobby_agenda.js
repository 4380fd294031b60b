// The lobby's consultations (ES module): one line per consultation with its times in this
// browser's time zone, its state, and what the reader may do with it (join, records,
// calendar file, end, cancel). Pure builders: the page passes in what a click does.
import { el } from "./dom.js";
import { formatDateTime, t } from "./i18n.js";

/**
 * @typedef {{id: string, title: string, patient: string, state: string, urgency: string,
 *   start: string | null, end: string | null, ended_at: string | null, reason: string,
 *   chair: string | null, requested_by: string | null, invited: boolean, new: boolean,
 *   standing: boolean, decline_reason: string | null, clinic: string | null,
 *   created_at: string, preferred_times: string[],
 *   experts: {username: string, name: string}[], mail?: Record<string, string>}} Entry
 * @typedef {{user: string, role: string, act: (cid: string, what: string) => void}} Reader
 */

/** @param {Entry} c */
export function recordsHref(c) {
  return `/records?patient=${encodeURIComponent(c.patient)}&consultation=${encodeURIComponent(c.id)}`;
}

/**
 * When it is (or was), in this browser's time zone; a standing one has no times.
 * @param {Entry} c
 */
export function whenText(c) {
  if (c.standing || !c.start) return t("lobby.any_time");
  return t("lobby.when", { start: formatDateTime(c.start), end: formatDateTime(/** @type {string} */ (c.end)) });
}

/** @type {Record<string, () => string>} */
const STATES = {
  requested: () => t("lobby.state_requested"),
  scheduled: () => t("lobby.state_scheduled"),
  live: () => t("lobby.state_live"),
  ended: () => t("lobby.state_ended"),
  declined: () => t("lobby.state_declined"),
  cancelled: () => t("lobby.state_cancelled"),
  no_show: () => t("lobby.state_no_show"),
};
/** @type {Record<string, () => string>} */
const URGENCIES = {
  routine: () => t("lobby.urgency_routine"),
  soon: () => t("lobby.urgency_soon"),
  urgent: () => t("lobby.urgency_urgent"),
};

/** @param {string} state */
export function stateText(state) {
  return (STATES[state] || (() => state))();
}

/** @param {string} urgency */
export function urgencyText(urgency) {
  return (URGENCIES[urgency] || (() => urgency))();
}

/**
 * How the invitations' e-mail went, for the chair (only faults and missing addresses).
 * @param {Entry} c
 */
export function mailText(c) {
  const faults = Object.entries(c.mail || {}).filter(([, status]) => status !== "sent");
  if (!faults.length) return "";
  return faults.map(([user, status]) => status === "no_address"
    ? t("lobby.mail_no_address", { user })
    : t("lobby.mail_failed", { user, fault: status.replace(/^failed: /, "") })).join(" ");
}

/**
 * One consultation, live or upcoming (or past: no join link).
 * @param {Entry} c @param {Reader} reader
 */
export function consultationItem(c, reader) {
  const open = c.state === "live" || c.state === "scheduled";
  const chairing = reader.role === "admin" || c.chair === reader.user;
  const links = el("span", { class: "links" });
  if (open && c.invited) links.append(el("a", { href: recordsHref(c), class: "records" }, t("lobby.records")));
  if (c.start && c.state === "scheduled") {
    links.append(el("a", { href: `/api/consultations/${encodeURIComponent(c.id)}/invite.ics`, class: "ics" }, t("lobby.calendar")));
  }
  if (open && c.invited) links.append(el("a", { href: `/room/${encodeURIComponent(c.id)}`, class: "join" }, t("lobby.join")));
  const [end, cancel] = ["end", "cancel"];  // i18n: not for people (the API's words)
  if (chairing && (c.state === "live" || (c.standing && open))) {
    links.append(el("button", { class: end, onclick: () => reader.act(c.id, end) }, t("lobby.end")));
  }
  if (c.chair === reader.user && reader.role === "chair" && (c.state === "live" || (c.standing && open))) {
    links.append(el("a", { href: reportHref(c), class: "report" }, t("lobby.end_and_report")));
  }
  if (c.state === "scheduled" && !c.standing && (chairing || c.requested_by === reader.user)) {
    links.append(el("button", { class: cancel, onclick: () => reader.act(c.id, cancel) }, t("lobby.cancel")));
  }
  const names = c.experts.map((e) => e.name).join(t("room.list_separator"));
  const mail = chairing ? mailText(c) : "";
  return el("li", { dataset: { cid: c.id, state: c.state } },
    el("span", {},
      c.new ? el("strong", { class: "new" }, t("lobby.new")) : null,
      el("span", {}, t("lobby.consultation", { title: c.title, patient: c.patient })),
      el("br"),
      el("span", { class: "muted when" }, `${stateText(c.state)} · ${whenText(c)}`),
      names ? el("span", { class: "muted" }, ` · ${t("lobby.invited", { names })}`) : null,
      mail ? el("span", { class: "error mail" }, ` ${mail}`) : null),
    links);
}

/**
 * One past consultation: ended, declined (with the reason), cancelled or no-show; its
 * chair gets a link to the report.
 * @param {Entry} c @param {Reader} [reader]
 */
export function pastItem(c, reader) {
  const report = reader && c.state === "ended" && c.chair === reader.user && reader.role === "chair"
    ? el("span", { class: "links" }, el("a", { href: reportHref(c), class: "report" }, t("lobby.report")))
    : null;
  const when = c.ended_at ? formatDateTime(c.ended_at) : (c.start ? formatDateTime(c.start) : "");
  return el("li", { dataset: { cid: c.id, state: c.state } },
    el("span", {},
      el("span", {}, t("lobby.consultation", { title: c.title, patient: c.patient })),
      el("br"),
      el("span", { class: "muted when" }, when ? `${stateText(c.state)} · ${when}` : stateText(c.state)),
      c.decline_reason ? el("span", { class: "muted" }, ` · ${t("lobby.declined_because", { reason: c.decline_reason })}`) : null),
    report);
}

/**
 * The chair's "End and report" page of a consultation.
 * @param {Entry} c
 */
export function reportHref(c) {
  return `/report/${encodeURIComponent(c.id)}`;
}
