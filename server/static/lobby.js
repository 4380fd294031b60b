// The lobby: each person's consultations (live and upcoming with a join link, past ones),
// new invitations and changes as notices, for clinic staff their clinic's bedside stations
// and the request form, for chairs the requests to schedule. Times are shown in this
// browser's time zone.
import { createApi } from "./api.js";
import { $, el, problem, say } from "./dom.js";
import { mountSwitch, t } from "./i18n.js";
import { consultationItem, pastItem } from "./lobby_agenda.js";
import { requestItem, setupAsk } from "./lobby_forms.js";

const api = createApi();
mountSwitch(/** @type {HTMLElement} */ (document.querySelector("header")), api);
const REFRESH_MS = 30000;

/**
 * @param {any} s the session @param {any} mine GET /api/consultations?scope=mine
 */
function render(s, mine) {
  const reader = { user: s.user, role: s.role, act };
  const list = $("consultations");
  list.replaceChildren();
  for (const c of [...mine.live, ...mine.upcoming]) list.append(consultationItem(c, reader));
  for (const st of s.stations || []) {  // clinic staff: their clinic's bedside stations
    list.append(el("li", {},
      el("span", {}, t("lobby.station", { clinic: st.clinic, device: st.device })),
      el("a", { href: `/station/${encodeURIComponent(st.device)}`, class: "join" }, t("lobby.open_station"))));
  }
  $("empty").hidden = list.children.length > 0;
  const chairing = s.role === "chair" || s.role === "admin";
  const requests = $("requests");
  requests.replaceChildren(...mine.requests.map((/** @type {any} */ c) => chairing
    ? requestItem(c, api, mine.invitable || [], s.user, () => refresh())
    : consultationItem(c, reader)));
  $("requests-section").hidden = mine.requests.length === 0;
  $("past").replaceChildren(...mine.past.map((/** @type {any} */ c) => pastItem(c, reader)));
  const fresh = [...mine.live, ...mine.upcoming].filter((c) => c.new);
  const notices = $("notices");
  notices.hidden = fresh.length === 0;
  notices.textContent = fresh.length ? t("lobby.notice", { count: fresh.length }) : "";
  for (const c of fresh) api.call("POST", `/api/consultations/${encodeURIComponent(c.id)}/seen`, {}).catch(() => {});
}

/**
 * A button on a consultation: end it (the chair) or cancel it.
 * @param {string} cid @param {string} what
 */
async function act(cid, what) {
  if (!window.confirm(what === "end" ? t("lobby.confirm_end") : t("lobby.confirm_cancel"))) return;
  try {
    await api.call("POST", `/api/consultations/${encodeURIComponent(cid)}/${what}`, {});
    say(what === "end" ? t("lobby.ended") : t("lobby.cancelled"));
  } catch (e) { say(problem(e), "error"); }
  await refresh();
}

/** @type {any} */
let session = null;

/** @param {boolean} [auto] a periodic refresh waits while the reader is filling in a form */
async function refresh(auto) {
  const focus = document.activeElement;
  if (auto && focus && ($("requests").contains(focus) || $("ask").contains(focus))) return;
  try { render(session, await api.call("GET", "/api/consultations?scope=mine")); }
  catch (e) { say(problem(e), "error"); }
}

(async () => {
  $("logout").onclick = () => api.logout();
  session = await api.session();
  $("who").textContent = session.display_name;
  $("admin-link").hidden = session.role !== "admin";
  $("records-link").hidden = session.role === "clinic";
  $("clinic-link").hidden = session.role !== "clinic" && session.role !== "admin";
  if (session.role === "clinic") {
    $("ask-section").hidden = false;
    setupAsk(/** @type {HTMLFormElement} */ ($("ask")), api, session.stations || [], () => refresh());
  }
  await refresh();
  setInterval(() => refresh(true), REFRESH_MS);
})();
