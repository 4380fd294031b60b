// Replaying archived video in the room (R12): while the appliance is offline, a recorded
// period of this patient's consultations is shown in the patient window.
import { $ } from "./dom.js";
import { toLocalInput } from "./format.js";
import { t } from "./i18n.js";

/**
 * The span to replay: from the typed local time, `minutes` long (at least 1); null when the
 * start is not a time.
 * @param {string} from a datetime-local value @param {string} minutes
 * @returns {{start: string, end: string} | null}
 */
export function replaySpan(from, minutes) {
  const begin = new Date(from);
  if (!from || Number.isNaN(begin.getTime())) return null;
  const length = Number(minutes) || 1;
  return { start: begin.toISOString(), end: new Date(begin.getTime() + length * 60000).toISOString() };
}

/**
 * The replay form of consultation `cid` (patient `patient`).
 * @param {{api: import("./api.js").Api, cid: string, patient: string}} room
 */
export function setupReplay({ api, cid, patient }) {
  const status = $("replay-status");
  const from = /** @type {HTMLInputElement} */ ($("replay-from"));
  from.value = toLocalInput(Date.now() - 10 * 60000);
  $("replay-go").addEventListener("click", async () => {
    const span = replaySpan(from.value, /** @type {HTMLInputElement} */ ($("replay-minutes")).value);
    if (!span) { status.textContent = t("room.replay.choose_start"); return; }
    try {
      const grant = await api.call("POST", "/api/access", {
        patient, operations: ["view"], reason: t("room.replay.reason"),
      });
      if (grant.status !== "granted") { status.textContent = grant.message; return; }
      const r = await api.call("POST", `/api/patients/${grant.patient_id}/archive/replay`, {
        consultation: cid, ...span,
      });
      status.textContent = t("room.replay.showing", { note: r.note });
    } catch (e) { status.textContent = e.message; }
  });
}
