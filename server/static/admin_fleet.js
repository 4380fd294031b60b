// The appliances (admins and technicians): which are online, what release and model they
// run, how their last update went, and asking one to update to a release.
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { fmtTime } from "./format.js";
import { releaseShelf } from "./admin_releases.js";

const FLEET_MS = 5000;
/** @type {Record<string, string>} */
const UPDATE_STATES = {
  downloading: "downloading", waiting: "waiting to install", installing: "installing",
  updated: "updated", failed: "failed", "rolled back": "rolled back",
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
  return UPDATE_STATES[state] || state;
}

/** @param {{state: string, release: string, detail?: string, at?: string} | null} update an appliance's last update */
function updateCell(update) {
  if (!update) return el("td", {}, el("span", { class: "muted" }, "—"));
  const bad = update.state === "failed" || update.state === "rolled back";
  const td = el("td", { class: "reason" },
    el(bad ? "strong" : "span", { class: bad ? "bad" : (update.state === "updated" ? "good" : null) },
      `${update.release}: ${updateStateText(update.state)}`));
  if (update.detail) td.append(el("div", { class: "muted" }, update.detail));
  if (update.at) td.append(el("div", { class: "muted nowrap" }, fmtTime(update.at)));
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
      "aria-label": `Release for ${a.device_id}`,
      dataset: { focusKey: `pick:${a.device_id}` },
      disabled: versions.length === 0,
      onchange: (/** @type {Event & {currentTarget: HTMLSelectElement}} */ ev) => { fleet.picked[a.device_id] = ev.currentTarget.value; },
    }, ...versions.map((v) => el("option", { value: v, selected: v === fleet.picked[a.device_id] },
      v === a.version ? `${v} (running)` : v)));
    if (versions.length) picker.value = fleet.picked[a.device_id];
    const button = el("button", {
      type: "button", class: "primary update", textContent: "Update",
      dataset: { focusKey: `update:${a.device_id}`, device: a.device_id },
      disabled: !a.online || versions.length === 0,
      title: a.online ? "" : "The appliance is offline",
      "aria-label": `Update ${a.device_id}`,
      onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => requestUpdate(ev.currentTarget, a, picker.value),
    });
    return el("td", { class: "actions" }, picker, " ", button);
  }

  /** @param {any[]} appliances */
  function renderAppliances(appliances) {
    const body = emptiedTable("appliances", appliances);
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
      shelf.render(releases.releases);
    });
  }

  /** @param {HTMLButtonElement} button @param {any} appliance @param {string} release */
  async function requestUpdate(button, appliance, release) {
    if (!release) return;
    const running = appliance.version ? ` (it runs ${appliance.version} now)` : "";
    if (!confirm(`Update appliance ${appliance.device_id} at ${appliance.clinic}${running} to release ${release}?\n\n`
      + "The appliance downloads the release, installs it and restarts; its camera is unavailable for a "
      + "minute or two. A release that does not start properly is rolled back.")) return;
    button.disabled = true;
    try {
      await api.call("POST", `/api/admin/appliances/${encodeURIComponent(appliance.device_id)}/update`, { release });
      say(`Asked ${appliance.device_id} to update to ${release}; follow it in the "Last update" column.`);
    } catch (e) {
      say(`${appliance.device_id} was not updated: ${problem(e)}`, "error");
    }
    await refreshFleet(true);
  }

  $("fleet").hidden = false;
  $("release-form").addEventListener("submit", shelf.upload);
  refreshFleet(true);
  setInterval(() => { if (!document.hidden) refreshFleet(false); }, FLEET_MS);
}
