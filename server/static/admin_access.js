// The records admin's desk: access requests to decide, emergency (break-glass) accesses
// to review, and every grant (with a revoke button while it is active).
import { $, el, emptiedTable, problem, say } from "./dom.js";
import { fmtMinutes } from "./format.js";
import { formatDateTime, t } from "./i18n.js";

/**
 * A moment in the page's language and the viewer's time zone ("—" for none).
 * @param {string | null | undefined} iso
 */
export function adminTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : formatDateTime(d);
}

/** @param {string[]} ops */
export function opsText(ops) {
  return ops.includes("edit") ? t("admin.ops.view_edit") : t("admin.ops.view");
}

/** @param {{patient?: {identifier: string} | null, patient_id: number}} grant */
export function patientText(grant) {
  return grant.patient ? grant.patient.identifier : t("admin.patient_number", { id: grant.patient_id });
}

/**
 * A grant's state in words: revoked (when, by whom), active or expired.
 * @param {{revoked_at?: string | null, revoked_by?: string | null, active?: boolean}} g
 */
export function grantState(g) {
  if (g.revoked_at) {
    return g.revoked_by ? t("admin.state.revoked_by", { when: adminTime(g.revoked_at), who: g.revoked_by })
      : t("admin.state.revoked", { when: adminTime(g.revoked_at) });
  }
  if (g.active) return t("admin.state.active");
  return t("admin.state.expired");
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
      say(t("admin.not_done", { problem: problem(e) }), "error");
      button.disabled = false;
    }
    await load(true);
  }

  /** @param {any[]} requests the access requests waiting for a decision */
  function renderRequests(requests) {
    const body = emptiedTable("requests", requests);
    $("requests-title").textContent = requests.length
      ? t("admin.requests.title_count", { count: requests.length }) : t("admin.requests.title");
    for (const r of requests) {
      const who = { user: r.username, patient: r.patient };
      const decide = (/** @type {boolean} */ approve) => el("button", {
        type: "button",
        class: approve ? "primary approve" : "deny", // i18n: not for people (CSS classes)
        dataset: { request: String(r.request_id) },
        textContent: approve ? t("admin.approve") : t("admin.refuse"),
        "aria-label": approve ? t("admin.approve_label", who) : t("admin.refuse_label", who),
        onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => act(ev.currentTarget,
          () => api.call("POST", `/api/admin/requests/${r.request_id}`, { approve }),
          approve ? t("admin.approved", who) : t("admin.refused", who)),
      });
      body.append(el("tr", { dataset: { request: String(r.request_id), patient: r.patient } },
        el("td", { class: "nowrap" }, adminTime(r.created_at)),
        el("td", {}, r.username),
        el("td", {}, r.patient),
        el("td", {}, opsText(r.operations)),
        el("td", { class: "nowrap" }, fmtMinutes(r.minutes)),
        el("td", { class: "reason" }, r.reason || el("span", { class: "muted" }, t("admin.no_reason_given"))),
        el("td", { class: "actions" }, decide(true), decide(false))));
    }
  }

  /** @param {any[]} rows the break-glass grants not reviewed yet */
  function renderBreakGlass(rows) {
    const list = $("break-glass");
    list.replaceChildren();
    $("break-glass-empty").hidden = rows.length > 0;
    $("break-glass-title").textContent = rows.length
      ? t("admin.break_glass.title_count", { count: rows.length }) : t("admin.break_glass.title");
    for (const g of rows) {
      list.append(el("li", { class: "break-glass-item", dataset: { grant: String(g.grant_id), patient: patientText(g) } },
        el("div", {},
          el("strong", {}, t("admin.break_glass.opened", { user: g.username, patient: patientText(g) })),
          el("div", { class: "muted" },
            t("admin.break_glass.when", { when: adminTime(g.created_at), state: grantState(g), ends: adminTime(g.expires_at) })),
          el("blockquote", { class: "reason" }, g.reason || t("admin.no_reason"))),
        el("div", { class: "actions" },
          el("button", {
            type: "button", class: "review", textContent: t("admin.break_glass.review"),
            "aria-label": t("admin.break_glass.review_label", { user: g.username, patient: patientText(g) }),
            onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => act(ev.currentTarget,
              () => api.call("POST", `/api/admin/grants/${g.grant_id}/review`, {}),
              t("admin.break_glass.reviewed", { user: g.username, patient: patientText(g) })),
          }),
          g.active ? revokeButton(g) : null)));
    }
  }

  /** @param {any} g an active grant */
  function revokeButton(g) {
    return el("button", {
      type: "button", class: "revoke", textContent: t("admin.revoke"),
      dataset: { grant: String(g.grant_id) },
      "aria-label": t("admin.revoke_label", { user: g.username, patient: patientText(g) }),
      onclick: (/** @type {MouseEvent & {currentTarget: HTMLButtonElement}} */ ev) => act(ev.currentTarget,
        () => api.call("POST", `/api/admin/grants/${g.grant_id}/revoke`, {}),
        t("admin.revoked", { user: g.username, patient: patientText(g) })),
    });
  }

  /** @param {any[]} grants */
  function renderGrants(grants) {
    const body = emptiedTable("grants", grants);
    const active = grants.filter((g) => g.active).length;
    $("grants-title").textContent = t("admin.grants.title_count", { active, count: grants.length });
    const sorted = [...grants].sort((a, b) => Number(b.active) - Number(a.active) || b.grant_id - a.grant_id);
    for (const g of sorted) {
      const basis = el("td", { class: "reason" }, g.break_glass ? el("strong", { class: "bad" }, t("admin.break_glass.basis")) : g.basis);
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
      el("td", { class: "nowrap" }, adminTime(g.created_at)),
      el("td", { class: "nowrap" }, adminTime(g.expires_at)),
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
      say(t("admin.load_failed", { problem: problem(e) }), "error");
      return;
    }
    const snapshot = JSON.stringify(data);
    $("updated").textContent = t("admin.updated", { time: formatDateTime(new Date(), { timeStyle: "medium" }) });
    if (!force && snapshot === lastSnapshot) return;
    lastSnapshot = snapshot;
    renderRequests(data.requests);
    renderBreakGlass(data.break_glass_unreviewed);
    renderGrants(data.grants);
  }

  return { load };
}
