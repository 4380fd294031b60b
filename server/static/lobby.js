// The lobby: the consultations this user is invited to (join, or open the patient's
// records), and for clinic staff their clinic's bedside stations.
import { createApi } from "./api.js";
import { $, el } from "./dom.js";
import { mountSwitch, t } from "./i18n.js";

const api = createApi();
mountSwitch(/** @type {HTMLElement} */ (document.querySelector("header")), api);

/**
 * The records page of a consultation's patient, opened from that consultation.
 * @param {{id: string, patient: string}} c
 */
function recordsHref(c) {
  return `/records?patient=${encodeURIComponent(c.patient)}&consultation=${encodeURIComponent(c.id)}`;
}

(async () => {
  $("logout").onclick = () => api.logout();
  const s = await api.session();
  $("who").textContent = s.display_name;
  $("admin-link").hidden = s.role !== "admin";
  const list = $("consultations");
  for (const c of s.consultations) {
    list.append(el("li", {},
      el("span", {}, t("lobby.consultation", { title: c.title, patient: c.patient })),
      el("span", { class: "links" },
        el("a", { href: recordsHref(c), class: "records" }, t("lobby.records")),
        el("a", { href: `/room/${encodeURIComponent(c.id)}`, class: "join" }, t("lobby.join")))));
  }
  for (const st of s.stations || []) {  // clinic staff: their clinic's bedside stations
    list.append(el("li", {},
      el("span", {}, t("lobby.station", { clinic: st.clinic, device: st.device })),
      el("a", { href: `/station/${encodeURIComponent(st.device)}`, class: "join" }, t("lobby.open_station"))));
  }
  $("records-link").hidden = s.role === "clinic";
  $("clinic-link").hidden = s.role !== "clinic" && s.role !== "admin";
  $("empty").hidden = s.consultations.length + (s.stations || []).length > 0;
})();
