// The room's presentation line (R10, R16): who shared what, and whether the clinic sees it.
// A shared record item is the experts' only until an expert shows it to the clinic.
"use strict";
const RoomPresentation = {
  // The line's text for the room state's `presentation` (null: nothing shared).
  text(p, nameOf) {
    if (!p) return "";
    const suffix = ` — shared by ${p.by}`;
    const what = p.caption && p.caption.endsWith(suffix) ? p.caption.slice(0, -suffix.length) : (p.caption || p.category);
    const where = p.clinic ? " · shown at the clinic" : " · experts only";
    return `Presentation: ${what} — shared by ${nameOf(p.by)}${where}`;
  },

  buttonText(p) {
    return p && p.clinic ? "Stop showing it at the clinic" : "Show it at the clinic";
  },

  render(p, nameOf) {
    const line = document.getElementById("presentation-info");
    const button = document.getElementById("presentation-clinic");
    line.hidden = !p;
    button.hidden = !p;
    line.textContent = RoomPresentation.text(p, nameOf);
    button.textContent = RoomPresentation.buttonText(p);
    button.setAttribute("aria-pressed", String(Boolean(p && p.clinic)));
  },

  // The button toggles sharing with the clinic; `current()` is the room's presentation.
  setup({ base, current, say }) {
    document.getElementById("presentation-clinic").addEventListener("click", async () => {
      const p = current();
      if (!p) return;
      try { await Api.call("PATCH", `${base}/presentation`, { clinic: !p.clinic }); }
      catch (e) { say(`Could not change what the clinic sees: ${e.message}`); }
    });
  },
};
if (typeof module !== "undefined") module.exports = { RoomPresentation };
