// The records admin's desk: access requests to decide, emergency (break-glass) accesses
// to review, and every grant (with a revoke button while it is active).
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { fmtMinutes, fmtTime } from "./format.js";

/** @param {string[]} ops */
export function opsText(ops) {
  return ops.includes("edit") ? "view + edit" : "view";
}

/** @param {{patient?: {identifier: string} | null, patient_id: number}} grant */
export function patientText(grant) {
  return grant.patient ? grant.patient.identifier : `patient #${grant.patient_id}`;
}

/**
 * A grant's state in words: revoked (when, by whom), active or expired.
 * @param {{revoked_at?: string | null, revoked_by?: string | null, active?: boolean}} g
 */
export function grantState(g) {
  if (g.revoked_at) return `revoked ${fmtTime(g.revoked_at)}${g.revoked_by ? ` by ${g.revoked_by}` : ""}`;
  if (g.active) return "active";
  return "expired";
}

export function showNotAdmin() {
  $("admin").hidden = true;
  $("not-admin").hidden = false;
}

/** @param {import("./api.js").Api} api */
export function accessDesk(api) {
  let lastSnapshot = "";

  /**
   * Run an admin action from a button; refresh the lists afterwards.
   * @param {HTMLButtonElement} button @param {() => Promise<unknown>} work @param {string} done what to say then
   */
  async function act(button, work, done) {
    button.disabled = true;
    try {
      await work();
      say(done);
    } catch (e) {
      say(`Not done: ${problem(e)}`, "error");
      button.disabled = false;
    }
    await load(true);
  }

  /** @param {any[]} requests the access requests waiting for a decision */
  function renderRequests(requests) {
    const body = emptiedTable("requests", requests);
    $("requests-title").textContent = `Access requests waiting for you${requests.length ? ` (${requests.length})` : ""}`;
    for (const r of requests) {
      const decide = (/** @type {boolean} */ approve) => el("button", {
        type: "button",
        class: approve ? "primary approve" : "deny",
        dataset: { request: String(r.request_id) },
        textContent: approve ? "Approve" : "Refuse",
        "aria-label": `${approve ? "Approve" : "Refuse"} ${r.username}'s request for ${r.patient}`,
        onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => act(ev.currentTarget,
          () => api.call("POST", `/api/admin/requests/${r.request_id}`, { approve }),
          approve ? `Approved: ${r.username} may now open ${r.patient}.` : `Refused ${r.username}'s request for ${r.patient}.`),
      });
      body.append(el("tr", { dataset: { request: String(r.request_id), patient: r.patient } },
        el("td", { class: "nowrap" }, fmtTime(r.created_at)),
        el("td", {}, r.username),
        el("td", {}, r.patient),
        el("td", {}, opsText(r.operations)),
        el("td", { class: "nowrap" }, fmtMinutes(r.minutes)),
        el("td", { class: "reason" }, r.reason || el("span", { class: "muted" }, "(no reason given)")),
        el("td", { class: "actions" }, decide(true), decide(false))));
    }
  }

  /** @param {any[]} rows the break-glass grants not reviewed yet */
  function renderBreakGlass(rows) {
    const list = $("break-glass");
    list.replaceChildren();
    $("break-glass-empty").hidden = rows.length > 0;
    $("break-glass-title").textContent =
      `Emergency (break-glass) accesses to review${rows.length ? ` (${rows.length})` : ""}`;
    for (const g of rows) {
      list.append(el("li", { class: "break-glass-item", dataset: { grant: String(g.grant_id), patient: patientText(g) } },
        el("div", {},
          el("strong", {}, `${g.username} opened ${patientText(g)} with emergency access`),
          el("div", { class: "muted" },
            `${fmtTime(g.created_at)} · ${grantState(g)} · ends ${fmtTime(g.expires_at)}`),
          el("blockquote", { class: "reason" }, g.reason || "(no reason)")),
        el("div", { class: "actions" },
          el("button", {
            type: "button", class: "review", textContent: "Mark as reviewed",
            "aria-label": `Mark ${g.username}'s emergency access to ${patientText(g)} as reviewed`,
            onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => act(ev.currentTarget,
              () => api.call("POST", `/api/admin/grants/${g.grant_id}/review`, {}),
              `Emergency access of ${g.username} to ${patientText(g)} marked as reviewed.`),
          }),
          g.active ? revokeButton(g) : null)));
    }
  }

  /** @param {any} g an active grant */
  function revokeButton(g) {
    return el("button", {
      type: "button", class: "revoke", textContent: "Revoke",
      dataset: { grant: String(g.grant_id) },
      "aria-label": `Revoke ${g.username}'s access to ${patientText(g)}`,
      onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => act(ev.currentTarget,
        () => api.call("POST", `/api/admin/grants/${g.grant_id}/revoke`, {}),
        `Revoked ${g.username}'s access to ${patientText(g)}: it ends with their next request.`),
    });
  }

  /** @param {any[]} grants */
  function renderGrants(grants) {
    const body = emptiedTable("grants", grants);
    const active = grants.filter((g) => g.active).length;
    $("grants-title").textContent = `Access grants (${active} active, ${grants.length} in all)`;
    const sorted = [...grants].sort((a, b) => Number(b.active) - Number(a.active) || b.grant_id - a.grant_id);
    for (const g of sorted) {
      const basis = el("td", { class: "reason" }, g.break_glass ? el("strong", { class: "bad" }, "break-glass") : g.basis);
      if (g.reason) basis.append(el("div", { class: "muted" }, g.reason));
      body.append(el("tr", {
        class: `${g.active ? "active" : "inactive"}${g.break_glass ? " break-glass-row" : ""}`,
        dataset: { grant: String(g.grant_id), patient: patientText(g) },
      },
      el("td", {}, grantState(g)),
      el("td", {}, g.username),
      el("td", {}, patientText(g)),
      el("td", {}, opsText(g.operations)),
      basis,
      el("td", { class: "nowrap" }, fmtTime(g.created_at)),
      el("td", { class: "nowrap" }, fmtTime(g.expires_at)),
      el("td", { class: "actions" }, g.active ? revokeButton(g) : null)));
    }
  }

  // Refresh the lists; periodic refreshes leave the page alone if nothing changed (so the
  // keyboard focus stays where it is).
  /** @param {boolean} force redraw even when nothing changed */
  async function load(force) {
    let data;
    try {
      data = await api.call("GET", "/api/admin/grants");
    } catch (e) {
      if (e.status === 403) { showNotAdmin(); return; }
      say(`Could not load the lists: ${problem(e)}`, "error");
      return;
    }
    const snapshot = JSON.stringify(data);
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    if (!force && snapshot === lastSnapshot) return;
    lastSnapshot = snapshot;
    renderRequests(data.requests);
    renderBreakGlass(data.break_glass_unreviewed);
    renderGrants(data.grants);
  }

  return { load };
}
