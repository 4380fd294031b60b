// The room's decision-support panel (R7, R9): the latest relevance, computing it, and
// confirming a diagnosis for the learning loop.
"use strict";
const RoomRelevance = {
  // The latest relevance (room state's `relevance`): values, caption, confirmable labels.
  render(r) {
    if (!r) return;
    document.getElementById("relevance-caption").textContent = r.caption;
    const list = document.getElementById("relevance-values");
    list.replaceChildren();
    r.labels.forEach((label, i) => {
      const li = document.createElement("li");
      li.textContent = `${label}: ${(100 * r.values[i]).toFixed(0)} %`;
      list.append(li);
    });
    const select = document.getElementById("diagnosis-label");
    if (select.options.length !== r.labels.length) {
      select.replaceChildren(...r.labels.map((label) => new Option(label, label)));
    }
    select.disabled = false;
    document.getElementById("diagnosis-confirm").disabled = false;
  },

  // The "compute" and "confirm" buttons of consultation `cid` (API at `base`).
  setup({ base, cid, patient }) {
    const status = document.getElementById("relevance-status");
    document.getElementById("relevance-ask").addEventListener("click", async () => {
      status.textContent = "Computing…";
      try {
        const r = await Api.call("POST", `${base}/relevance`, { where: "auto" });
        status.textContent = r.status === "computing"
          ? "The appliance is computing; the chart updates when it is done."
          : "Computed on the server (the appliance is offline).";
      } catch (e) { status.textContent = e.message; }
    });
    document.getElementById("diagnosis-confirm").addEventListener("click", async () => {
      const label = document.getElementById("diagnosis-label").value;
      try {
        const grant = await Api.call("POST", "/api/access", {
          patient, operations: ["view", "edit"], reason: "confirm a diagnosis in the room",
        });
        if (grant.status !== "granted") { status.textContent = grant.message; return; }
        await Api.call("POST", `/api/patients/${grant.patient_id}/diagnosis`, { label, consultation: cid });
        status.textContent = `Diagnosis "${label}" recorded: it labels this patient's data for retraining (if consent allows).`;
      } catch (e) { status.textContent = e.message; }
    });
  },
};
