// Access to the open patient: the "no access" panel (ask for a grant, wait for an admin's
// approval, break the glass in an emergency), what the current grant allows, and noticing
// when it ends (expired, revoked, or collected in another browser).
import { $, problem, say } from "./dom.js";
import { fmtClock, fmtLeft } from "./format.js";
import { t } from "./i18n.js";
import { opsText } from "./records_page.js";

const PENDING_POLL_MS = 5000;
const ACCESS_CHECK_MS = 30000;

/** @param {import("./records_page.js").RecordsPage} page */
export function accessPanel(page) {
  /** @type {ReturnType<typeof setInterval> | null} */
  let accessTimer = null;
  /** @type {ReturnType<typeof setInterval> | null} */
  let pendingTimer = null;
  /** @type {Promise<boolean> | null} */
  let checkingAccess = null;

  function stopPendingPoll() {
    if (pendingTimer) clearInterval(pendingTimer);
    pendingTimer = null;
  }

  function stopTimers() {
    if (accessTimer) clearInterval(accessTimer);
    accessTimer = null;
    stopPendingPoll();
  }

  /** @param {string} [reason] why there is no access (shown as an error) */
  function showNoAccess(reason) {
    const current = page.open;
    stopTimers();
    $("records").hidden = true;
    $("no-access").hidden = false;
    $("no-access-title").textContent = t("records.no_access.title_of", { patient: current.identifier });
    const why = $("no-access-why");
    why.classList.toggle("error", Boolean(reason));
    why.textContent = reason || t("records.no_access.why");
    setRequestButtons(false);
    const stored = sessionStorage.getItem(page.pendingKey(current.identifier));
    if (stored) {
      try { showPending(JSON.parse(stored)); } catch (e) { sessionStorage.removeItem(page.pendingKey(current.identifier)); }
    } else {
      $("pending").hidden = true;
    }
    say(reason ? "" : t("records.no_access.status", { patient: current.identifier }));
  }

  /** @param {boolean} busy */
  function setRequestButtons(busy) {
    $("request-view").disabled = busy;
    $("request-edit").disabled = busy;
    updateBreakGlassButton(busy);
  }

  /** @param {boolean} busy */
  function updateBreakGlassButton(busy) {
    $("break-glass").disabled = busy || $("break-glass-reason").value.trim().length < 10;
  }

  /**
   * Ask for a grant. true when the records are now open.
   * @param {string[]} ops @param {string} reason @param {number} seq the openPatient call it serves
   * @param {boolean} [quiet] leave the status line alone
   */
  async function requestAccess(ops, reason, seq, quiet) {
    const identifier = page.open.identifier;
    setRequestButtons(true);
    if (!quiet) say(t("records.access.asking", { ops: opsText(ops), patient: identifier }));
    let answer;
    try {
      /** @type {{patient: string, operations: string[], reason: string, minutes?: number}} */
      const body = { patient: identifier, operations: ops, reason };
      const minutes = Number($("access-minutes").value);
      if (minutes) body.minutes = minutes;
      answer = await page.api.call("POST", "/api/access", body);
    } catch (e) {
      if (seq !== page.openSeq) return false;
      setRequestButtons(false);
      if (e.status === 404) {
        say(t("records.access.no_such_patient", { patient: identifier }), "error");
      } else {
        say(t("records.access.not_accepted", { problem: problem(e) }), "error");
      }
      return false;
    }
    if (seq !== page.openSeq) return false;
    setRequestButtons(false);
    if (answer.status === "pending") {
      const pending = { ops, reason, at: new Date().toISOString() };
      sessionStorage.setItem(page.pendingKey(identifier), JSON.stringify(pending));
      showNoAccess();
      say(t("records.access.sent", { message: answer.message || t("records.access.needs_admin") }));
      return false;
    }
    page.open.pid = answer.patient_id;
    const outcome = await page.chooser.loadRecords(seq);
    if (outcome === "ok") page.chooser.loadPatients().catch(() => {});
    return outcome === "ok";
  }

  /** @param {{ops: string[], reason: string, at: string}} pending the request kept in sessionStorage */
  function showPending(pending) {
    $("pending").hidden = false;
    $("pending-text").textContent =
      t("records.access.pending", { ops: opsText(pending.ops), time: fmtClock(pending.at) });
    if (pendingTimer) clearInterval(pendingTimer);
    pendingTimer = setInterval(checkPending, PENDING_POLL_MS);
  }

  // Has an admin approved our pending request? Then collect the grant.
  async function checkPending() {
    const seq = page.openSeq;
    const stored = sessionStorage.getItem(page.pendingKey(page.open.identifier));
    if (!stored) { stopPendingPoll(); return; }
    const pending = JSON.parse(stored);
    try {
      await page.chooser.loadPatients();
    } catch (e) {
      return;  // try again at the next tick
    }
    if (seq !== page.openSeq) return;
    const identifier = page.open.identifier;
    const mine = page.patients.find((/** @type {import("./records_page.js").Patient} */ p) => p.identifier === identifier);
    const decision = mine && mine.request;
    if (decision && decision.status === "denied" && decision.decided_at >= pending.at) {
      stopPendingPoll();
      sessionStorage.removeItem(page.pendingKey(identifier));
      $("pending-text").textContent = t("records.access.refused", { admin: decision.decided_by });
      return;
    }
    const covering = page.chooser.activeGrants(identifier).filter((g) =>
      !g.break_glass && pending.ops.every((/** @type {string} */ op) => g.operations.includes(op)));
    if (!covering.length) return;
    stopPendingPoll();
    const known = page.patients.find((/** @type {import("./records_page.js").Patient} */ p) => p.identifier === identifier);
    if (known) page.open.pid = known.id;
    say(t("records.access.approved"));
    await requestAccess(pending.ops, pending.reason, seq, true);
  }

  async function breakGlass() {
    const reason = $("break-glass-reason").value.trim();
    if (reason.length < 10) {
      say(t("records.break_glass.short_reason"), "error");
      return;
    }
    const seq = page.openSeq;
    setRequestButtons(true);
    say(t("records.break_glass.opening"));
    try {
      const answer = await page.api.call("POST", "/api/break-glass", { patient: page.open.identifier, reason });
      if (seq !== page.openSeq) return;
      page.open.pid = answer.patient_id;
      $("break-glass-reason").value = "";
      $("break-glass-box").open = false;
      const outcome = await page.chooser.loadRecords(seq);
      if (outcome === "ok") page.chooser.loadPatients().catch(() => {});
    } catch (e) {
      if (seq !== page.openSeq) return;
      say(t("records.break_glass.refused", { problem: problem(e) }), "error");
    } finally {
      if (seq === page.openSeq) setRequestButtons(false);
    }
  }

  // A 404 from a records URL: is our grant still there? (Consent is a cheap, quiet check.)
  async function checkStillValid() {
    if (!page.current || !page.current.data) return true;
    if (checkingAccess) return checkingAccess;
    const seq = page.openSeq;
    checkingAccess = (async () => {
      try {
        await page.api.call("GET", `/api/patients/${page.open.pid}/consent`);
        return true;
      } catch (e) {
        if (e.status === 404 && seq === page.openSeq && page.open.data) {
          accessEnded();
          return false;
        }
        return true;
      } finally {
        checkingAccess = null;
      }
    })();
    return checkingAccess;
  }

  async function accessEnded() {
    page.uploads.cancelQueued(t("records.upload.access_ended"));
    page.view.clear();
    page.open.data = null;
    page.open.canEdit = false;
    showNoAccess(t("records.access.ended_why"));
    say(t("records.access.ended"), "error");
    const seq = page.openSeq;
    try { await page.chooser.loadPatients(); } catch (e) { return; }
    // Still granted? Then the grant was collected in another browser (it works in one place).
    if (seq === page.openSeq && page.chooser.activeGrants(page.open.identifier).some((g) => !g.break_glass)) {
      $("no-access-why").textContent = t("records.access.elsewhere");
    }
  }

  function watch() {
    if (accessTimer) clearInterval(accessTimer);
    accessTimer = setInterval(() => {
      if (!page.current || !page.current.data) return;
      const expires = page.open.data.access.expires_at;
      if (new Date(expires).getTime() <= Date.now()) { accessEnded(); return; }
      showInfo();
      checkStillValid();
    }, ACCESS_CHECK_MS);
  }

  // What the current grant allows and until when (and the break-glass banner).
  function showInfo() {
    const a = page.open.data.access;
    $("access-info").textContent = t("records.access.info",
      { ops: opsText(a.operations), time: fmtClock(a.expires_at), left: fmtLeft(a.expires_at) });
    const banner = $("break-glass-banner");
    banner.hidden = !a.break_glass;
    banner.textContent = a.break_glass ? t("records.break_glass.banner", { time: fmtClock(a.expires_at) }) : "";
  }

  function setup() {
    const reason = () => $("access-reason").value.trim();
    $("request-view").addEventListener("click", () => requestAccess(["view"], reason(), page.openSeq));
    $("request-edit").addEventListener("click", () => requestAccess(["view", "edit"], reason(), page.openSeq));
    $("pending-check").addEventListener("click", () => checkPending());
    $("break-glass-reason").addEventListener("input", () => updateBreakGlassButton(false));
    $("break-glass").addEventListener("click", breakGlass);
  }

  return { setup, stopTimers, stopPendingPoll, showNoAccess, requestAccess, checkStillValid, watch, showInfo };
}
