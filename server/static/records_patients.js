// Choosing a patient: the patient list, opening a patient (with a grant in hand, or by
// collecting it again), loading and refreshing their records.
import { $, problem, say } from "./dom.js";
import { t } from "./i18n.js";

/** @param {import("./records_page.js").RecordsPage} page */
export function patientChooser(page) {
  async function loadPatients() {
    const data = await page.api.call("GET", "/api/patients");
    page.patients = data.patients;
    const select = $("patient-select");
    const keep = page.current ? page.current.identifier : select.value;
    select.replaceChildren(new Option(t("records.choose_patient_option"), ""));
    for (const p of page.patients) {
      const label = p.name ? `${p.identifier} — ${p.name}` : t("records.no_access_yet", { patient: p.identifier });
      select.append(new Option(label, p.identifier));
    }
    select.value = page.patients.some((p) => p.identifier === keep) ? keep : "";
  }

  /**
   * The user's grants for a patient that still hold.
   * @param {string} identifier
   */
  function activeGrants(identifier) {
    const known = page.patients.find((p) => p.identifier === identifier);
    if (!known) return [];
    const now = Date.now();
    return known.grants.filter((g) => !g.revoked_at && new Date(g.expires_at).getTime() > now);
  }

  /** @param {string | null} identifier */
  function updateUrl(identifier) {
    const next = new URLSearchParams();
    if (identifier) next.set("patient", identifier);
    if (page.consultation) next.set("consultation", page.consultation.id);
    const query = next.toString();
    history.replaceState(null, "", query ? `/records?${query}` : "/records");
  }

  /** @param {string} identifier */
  async function openPatient(identifier) {
    identifier = identifier.trim();
    if (!identifier) { say(t("records.choose_or_type"), "error"); return; }
    page.access.stopTimers();
    page.view.clear();
    page.uploads.clearIfIdle();
    const seq = ++page.openSeq;
    page.current = { identifier, pid: null, data: null, canEdit: false };
    updateUrl(identifier);
    $("no-access").hidden = true;
    $("records").hidden = true;
    say(t("records.opening", { patient: identifier }));
    try {
      await loadPatients();
    } catch (e) {
      if (seq === page.openSeq) say(t("records.list_failed", { problem: problem(e) }), "error");
      return;
    }
    if (seq !== page.openSeq) return;
    $("patient-other").value = page.patients.some((p) => p.identifier === identifier) ? "" : identifier;
    const known = page.patients.find((p) => p.identifier === identifier);
    if (known) page.open.pid = known.id;
    const grants = activeGrants(identifier);
    if (grants.length) {
      const outcome = await loadRecords(seq);
      if (outcome !== "denied") return;
      // This browser lost the grant's key (another tab or device took a new one): collect
      // the same grant again. Break-glass grants are never handed out twice like this.
      const reusable = grants.filter((g) => !g.break_glass);
      if (reusable.length) {
        const ops = reusable.some((g) => g.operations.includes("edit")) ? ["view", "edit"] : ["view"];
        if (await page.access.requestAccess(ops, t("records.access.continuing"), seq, true)) return;
      }
    }
    if (seq !== page.openSeq) return;
    page.access.showNoAccess();
  }

  /**
   * Load the open patient's records: "ok" | "denied" (no current grant) | "error".
   * @param {number} seq the openPatient call it serves
   */
  async function loadRecords(seq) {
    const current = page.open;
    if (current.pid === null) return "denied";
    let data;
    try {
      data = await page.api.call("GET", `/api/patients/${current.pid}/records`);
    } catch (e) {
      if (seq !== page.openSeq) return "error";
      if (e.status === 404) return "denied";
      say(t("records.load_failed", { problem: problem(e) }), "error");
      return "error";
    }
    if (seq !== page.openSeq) return "error";
    sessionStorage.removeItem(page.pendingKey(page.open.identifier));
    page.view.show(data);
    return "ok";
  }

  async function refreshRecords() {
    const current = page.current;
    if (!current || current.pid === null || !current.data) return;
    const seq = page.openSeq;
    try {
      const data = await page.patientCall("GET", "/records");
      if (seq === page.openSeq && page.open.data) page.view.show(data, true);
    } catch (e) {
      if (seq === page.openSeq && page.open.data) say(t("records.refresh_failed", { problem: problem(e) }), "error");
    }
  }

  function setup() {
    $("patient-form").addEventListener("submit", (/** @type {Event} */ ev) => {
      ev.preventDefault();
      const typed = $("patient-other").value.trim();
      openPatient(typed || $("patient-select").value);
    });
    // Picking with the mouse opens at once; arrowing through the list with the keyboard
    // does not open every patient on the way (Enter or "Open" does).
    let keyedAt = 0;
    $("patient-select").addEventListener("keydown", () => { keyedAt = Date.now(); });
    $("patient-select").addEventListener("change", () => {
      const picked = $("patient-select").value;
      if (!picked || Date.now() - keyedAt < 800) return;
      $("patient-other").value = "";
      openPatient(picked);
    });
    $("refresh").addEventListener("click", async () => { await refreshRecords(); say(t("records.refreshed")); });
  }

  return { setup, loadPatients, activeGrants, openPatient, loadRecords, refreshRecords };
}
