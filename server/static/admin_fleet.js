// The appliances (admins and technicians): which are online, what release and model they
// run, how their last update went, and asking one to update to a release.
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { adminTime } from "./admin_access.js";
import { formatDateTime, t } from "./i18n.js";
import { releaseShelf } from "./admin_releases.js";

const FLEET_MS = 5000;
/**
 * The update states the appliances report, in words.
 * @type {Record<string, () => string>}
 */
const UPDATE_STATES = {
  downloading: () => t("admin.update.downloading"),
  waiting: () => t("admin.update.waiting"),
  installing: () => t("admin.update.installing"),
  updated: () => t("admin.update.updated"),
  failed: () => t("admin.update.failed"),
  "rolled back": // i18n: not for people (the name of the state)
    () => t("admin.update.rolled_back"),
};

// Periodic redraws keep the keyboard focus on the control that had it.
/** @param {() => void} render */
function keepFocus(render) {
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  const key = active && active.dataset ? active.dataset.focusKey : undefined;
  render();
  if (key) {
    const again = /** @type {HTMLElement | null} */ (document.querySelector(`[data-focus-key="${CSS.escape(key)}"]`));
    if (again) again.focus();
  }
}

/**
 * What an update's state reads as (the server's word when it is a new one).
 * @param {string} state
 */
export function updateStateText(state) {
  return state in UPDATE_STATES ? UPDATE_STATES[state]() : state;
}

/** @param {{state: string, release: string, detail?: string, at?: string} | null} update an appliance's last update */
function updateCell(update) {
  if (!update) return el("td", {}, el("span", { class: "muted" }, "—"));
  const bad = update.state === "failed" || update.state === "rolled back"; // i18n: not for people (a state)
  const td = el("td", { class: "reason" },
    el(bad ? "strong" : "span", { class: bad ? "bad" : (update.state === "updated" ? "good" : null) },
      `${update.release}: ${updateStateText(update.state)}`));
  if (update.detail) td.append(el("div", { class: "muted" }, update.detail));
  if (update.at) td.append(el("div", { class: "muted nowrap" }, adminTime(update.at)));
  return td;
}

/** @param {import("./api.js").Api} api @param {string} role */
export function startFleet(api, role) {
  /**
   * @type {{api: import("./api.js").Api, role: string, snapshot: string, releases: {version: string}[],
   *   picked: Record<string, string>, refresh: (force: boolean) => Promise<void>}}
   */
  const fleet = { api, role, snapshot: "", releases: [], picked: {}, refresh: refreshFleet };
  const shelf = releaseShelf(fleet);

  /** @param {any} a an appliance */
  function updateControls(a) {
    const versions = fleet.releases.map((r) => r.version);
    if (!versions.includes(fleet.picked[a.device_id])) fleet.picked[a.device_id] = versions[0];
    const picker = el("select", {
      "aria-label": t("admin.fleet.release_for", { device: a.device_id }),
      dataset: { focusKey: `pick:${a.device_id}` },
      disabled: versions.length === 0,
      onchange: (/** @type {Event & {currentTarget: HTMLSelectElement}} */ ev) => { fleet.picked[a.device_id] = ev.currentTarget.value; },
    }, ...versions.map((v) => el("option", { value: v, selected: v === fleet.picked[a.device_id] },
      v === a.version ? t("admin.fleet.running", { version: v }) : v)));
    if (versions.length) picker.value = fleet.picked[a.device_id];
    const button = el("button", {
      type: "button", class: "primary update", textContent: t("admin.fleet.update"),
      dataset: { focusKey: `update:${a.device_id}`, device: a.device_id },
      disabled: !a.online || versions.length === 0,
      title: a.online ? "" : t("admin.fleet.offline_title"),
      "aria-label": t("admin.fleet.update_label", { device: a.device_id }),
      onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => requestUpdate(ev.currentTarget, a, picker.value),
    });
    return el("td", { class: "actions" }, picker, " ", button);
  }

  /** @param {any[]} appliances */
  function renderAppliances(appliances) {
    const body = emptiedTable("appliances", appliances);
    const online = appliances.filter((a) => a.online).length;
    $("appliances-title").textContent = t("admin.appliances.title_count", { online, count: appliances.length });
    for (const a of appliances) {
      body.append(el("tr", { class: a.online ? "active" : "inactive", dataset: { device: a.device_id } },
        el("td", {}, el("strong", {}, a.device_id), el("div", { class: "muted" }, a.clinic)),
        el("td", {}, a.online ? el("span", { class: "good" }, t("admin.fleet.online"))
          : el("span", { class: "bad" }, t("admin.fleet.offline"))),
        el("td", {}, a.version || el("span", { class: "muted" }, t("admin.fleet.unknown"))),
        updateCell(a.update),
        el("td", {}, a.model_version || el("span", { class: "muted" }, "—")),
        updateControls(a)));
    }
  }

  /** @param {boolean} force redraw even when nothing changed */
  async function refreshFleet(force) {
    /** @type {any} */
    let appliances;
    /** @type {any} */
    let releases;
    try {
      [appliances, releases] = await Promise.all([
        api.call("GET", "/api/admin/appliances"), api.call("GET", "/api/admin/releases")]);
    } catch (e) {
      $("fleet-note").textContent = t("admin.fleet.load_failed", { problem: problem(e) });
      return;
    }
    $("fleet-note").textContent = appliances.broker
      ? "" : t("admin.fleet.no_broker");
    $("fleet-updated").textContent = t("admin.updated", { time: formatDateTime(new Date(), { timeStyle: "medium" }) });
    const snapshot = JSON.stringify([appliances, releases]);
    if (!force && snapshot === fleet.snapshot) return;
    fleet.snapshot = snapshot;
    fleet.releases = releases.releases;
    keepFocus(() => {
      renderAppliances(appliances.appliances);
      shelf.render(releases.releases);
    });
  }

  /** @param {HTMLButtonElement} button @param {any} appliance @param {string} release */
  async function requestUpdate(button, appliance, release) {
    if (!release) return;
    const params = { device: appliance.device_id, clinic: appliance.clinic, release, version: appliance.version };
    const question = appliance.version ? t("admin.fleet.confirm_running", params) : t("admin.fleet.confirm", params);
    if (!confirm(`${question}\n\n${t("admin.fleet.confirm_detail")}`)) return;
    button.disabled = true;
    try {
      await api.call("POST", `/api/admin/appliances/${encodeURIComponent(appliance.device_id)}/update`, { release });
      say(t("admin.fleet.asked", { device: appliance.device_id, release }));
    } catch (e) {
      say(t("admin.fleet.not_updated", { device: appliance.device_id, problem: problem(e) }), "error");
    }
    await refreshFleet(true);
  }

  $("fleet").hidden = false;
  $("release-form").addEventListener("submit", shelf.upload);
  refreshFleet(true);
  setInterval(() => { if (!document.hidden) refreshFleet(false); }, FLEET_MS);
}
