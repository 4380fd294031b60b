// The room's decision-support panel (R7, R9): the latest relevance, computing it, and
// confirming a diagnosis for the learning loop.
import { $ } from "./dom.js";

export const RoomRelevance = {
  /**
   * The latest relevance: values, caption, confirmable labels.
   * @param {{caption: string, labels: string[], values: number[]} | null} r room state's `relevance`
   */
  render(r) {
    if (!r) return;
    $("relevance-caption").textContent = r.caption;
    const list = $("relevance-values");
    list.replaceChildren();
    r.labels.forEach((label, i) => {
      const li = document.createElement("li");
      li.textContent = `${label}: ${(100 * r.values[i]).toFixed(0)} %`;
      list.append(li);
    });
    const select = $("diagnosis-label");
    if (select.options.length !== r.labels.length) {
      select.replaceChildren(...r.labels.map((label) => new Option(label, label)));
    }
    select.disabled = false;
    $("diagnosis-confirm").disabled = false;
  },

  /**
   * The "compute" and "confirm" buttons of consultation `cid` (API at `base`).
   * @param {{api: import("./api.js").Api, base: string, cid: string, patient: string}} room
   */
  setup({ api, base, cid, patient }) {
    const status = $("relevance-status");
    $("relevance-ask").addEventListener("click", async () => {
      status.textContent = "Computing…";
      try {
        const r = await api.call("POST", `${base}/relevance`, { where: "auto" });
        status.textContent = r.status === "computing"
          ? "The appliance is computing; the chart updates when it is done."
          : "Computed on the server (the appliance is offline).";
      } catch (e) { status.textContent = e.message; }
    });
    $("diagnosis-confirm").addEventListener("click", async () => {
      const label = $("diagnosis-label").value;
      try {
        const grant = await api.call("POST", "/api/access", {
          patient, operations: ["view", "edit"], reason: "confirm a diagnosis in the room",
        });
        if (grant.status !== "granted") { status.textContent = grant.message; return; }
        await api.call("POST", `/api/patients/${grant.patient_id}/diagnosis`, { label, consultation: cid });
        status.textContent = `Diagnosis "${label}" recorded: it labels this patient's data for retraining (if consent allows).`;
      } catch (e) { status.textContent = e.message; }
    });
  },
};
