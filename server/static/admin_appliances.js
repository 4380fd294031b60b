// Enrolling appliances (admins and technicians): name, clinic and room give a one-time
// provisioning file (clinicam.toml for the SD card's boot partition); enrolled appliances
// can have their credentials rotated (a new file) or be revoked. The file holds the
// appliance's secrets: it is shown once, kept only in this page until hidden.
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { adminTime } from "./admin_access.js";
import { t } from "./i18n.js";

const LIST_MS = 10000;

/**
 * What the server said about the broker's accounts after a change, for a person.
 * @param {{state: string, problem: string | null}} broker
 */
export function brokerText(broker) {
  if (broker.state === "updated") return t("admin.enrol.broker_updated");
  if (broker.state === "failed") return t("admin.enrol.broker_failed", { problem: broker.problem || "" });
  return t("admin.enrol.broker_manual");
}

/**
 * Where an appliance stands: its clinic, and its room when it has one.
 * @param {{clinic: string, room?: string | null}} a
 */
export function placeText(a) {
  return a.room ? t("admin.enrol.place", { clinic: a.clinic, room: a.room }) : a.clinic;
}

/** @param {import("./api.js").Api} api */
export function startEnrolment(api) {
  /** @type {string | null} */
  let bundleUrl = null;
  let snapshot = "";

  function hideBundle() {
    if (bundleUrl) URL.revokeObjectURL(bundleUrl);
    bundleUrl = null;
    $("bundle-text").textContent = "";
    $("bundle-download").removeAttribute("href");
    $("bundle-box").hidden = true;
  }

  /**
   * Show a new provisioning file once, with its download.
   * @param {{device_id: string, name: string, filename: string, bundle: string,
   *   broker: {state: string, problem: string | null}}} made
   * @param {string} heading
   */
  function showBundle(made, heading) {
    hideBundle();
    bundleUrl = URL.createObjectURL(new Blob([made.bundle], { type: "application/toml" }));
    $("bundle-title").textContent = heading;
    $("bundle-broker").textContent = brokerText(made.broker);
    $("bundle-broker").classList.toggle("bad", made.broker.state === "failed");
    $("bundle-text").textContent = made.bundle;
    const link = $("bundle-download");
    link.href = bundleUrl;
    link.download = made.filename;
    $("bundle-box").hidden = false;
    link.focus();
  }

  /** @param {any[]} appliances */
  function render(appliances) {
    const body = emptiedTable("enrolled", appliances);
    const clinics = [...new Set(appliances.map((a) => a.clinic))].sort();
    $("enrol-clinics").replaceChildren(...clinics.map((c) => el("option", { value: c })));
    for (const a of appliances) {
      const label = a.name || a.device_id;
      body.append(el("tr", { dataset: { device: a.device_id } },
        el("td", {}, el("strong", {}, label), el("div", { class: "muted", translate: "no" }, a.device_id)),
        el("td", {}, placeText(a)),
        el("td", {}, a.online ? el("span", { class: "good" }, t("admin.fleet.online"))
          : el("span", { class: "bad" }, t("admin.fleet.offline"))),
        el("td", { class: "nowrap" }, a.enrolled_at ? adminTime(a.enrolled_at)
          : el("span", { class: "muted" }, t("admin.enrol.from_config")),
        a.enrolled_by ? el("div", { class: "muted" }, a.enrolled_by) : null),
        el("td", { class: "actions" },
          el("button", {
            type: "button", class: "rotate", textContent: t("admin.enrol.rotate"),
            "aria-label": t("admin.enrol.rotate_label", { name: label }),
            onclick: () => rotate(a, label),
          }), " ",
          el("button", {
            type: "button", class: "danger revoke", textContent: t("admin.enrol.revoke"),
            "aria-label": t("admin.enrol.revoke_label", { name: label }),
            onclick: () => revoke(a, label),
          }))));
    }
  }

  /** @param {boolean} force redraw even when nothing changed */
  async function load(force) {
    /** @type {any} */
    let listing;
    try {
      listing = await api.call("GET", "/api/admin/appliances");
    } catch (e) {
      $("enrol-note").textContent = t("admin.enrol.load_failed", { problem: problem(e) });
      return;
    }
    $("enrol-note").textContent = listing.broker_managed ? "" : t("admin.enrol.broker_by_hand");
    const rows = listing.appliances.map((/** @type {any} */ a) => ({
      device_id: a.device_id, name: a.name, clinic: a.clinic, room: a.room,
      online: a.online, enrolled_at: a.enrolled_at, enrolled_by: a.enrolled_by,
    }));
    const now = JSON.stringify(rows);
    if (!force && now === snapshot) return;
    snapshot = now;
    render(rows);
  }

  /** @param {Event} ev */
  async function enrol(ev) {
    ev.preventDefault();
    const body = {
      name: $("enrol-name").value.trim(),
      clinic: $("enrol-clinic").value.trim(),
      room: $("enrol-room").value.trim() || null,
    };
    $("enrol-start").disabled = true;
    try {
      const made = await api.call("POST", "/api/admin/appliances", body);
      showBundle(made, t("admin.enrol.made", { name: made.name, device: made.device_id }));
      say(t("admin.enrol.enrolled", { name: made.name }));
      $("enrol-form").reset();
    } catch (e) {
      say(t("admin.enrol.not_enrolled", { problem: problem(e) }), "error");
    } finally {
      $("enrol-start").disabled = false;
    }
    await load(true);
  }

  /** @param {any} a @param {string} label */
  async function rotate(a, label) {
    if (!confirm(t("admin.enrol.confirm_rotate", { name: label, device: a.device_id }))) return;
    try {
      const made = await api.call("POST", `/api/admin/appliances/${encodeURIComponent(a.device_id)}/rotate`, {});
      showBundle(made, t("admin.enrol.rotated", { name: label, device: a.device_id }));
      say(t("admin.enrol.rotated", { name: label, device: a.device_id }));
    } catch (e) {
      say(t("admin.enrol.not_rotated", { name: label, problem: problem(e) }), "error");
    }
    await load(true);
  }

  /** @param {any} a @param {string} label */
  async function revoke(a, label) {
    if (!confirm(t("admin.enrol.confirm_revoke", { name: label, device: a.device_id }))) return;
    try {
      const done = await api.call("POST", `/api/admin/appliances/${encodeURIComponent(a.device_id)}/revoke`, {});
      const kind = done.broker.state === "failed" ? "error" : undefined;
      say(`${t("admin.enrol.revoked", { name: label })} ${brokerText(done.broker)}`, kind);
    } catch (e) {
      say(t("admin.enrol.not_revoked", { name: label, problem: problem(e) }), "error");
    }
    await load(true);
  }

  $("enrolment").hidden = false;
  $("enrol-form").addEventListener("submit", enrol);
  $("bundle-done").addEventListener("click", hideBundle);
  load(true);
  setInterval(() => { if (!document.hidden) load(false); }, LIST_MS);
}
