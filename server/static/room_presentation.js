// The room's presentation line (R10, R16): who shared what, and whether the clinic sees it.
// A shared record item is the experts' only until an expert shows it to the clinic.
import { $ } from "./dom.js";
import { t } from "./i18n.js";

/**
 * @typedef {{by: string, caption?: string | null, category: string, clinic: boolean}} Presentation
 *   the room state's `presentation`
 */

export const RoomPresentation = {
  /**
   * The line's text for the room state's `presentation` (null: nothing shared).
   * @param {Presentation | null} p @param {(user: string) => string} nameOf
   */
  text(p, nameOf) {
    if (!p) return "";
    const suffix = ` — shared by ${p.by}`; // i18n: not for people (the server's caption, matched to drop it)
    const what = p.caption && p.caption.endsWith(suffix) ? p.caption.slice(0, -suffix.length) : (p.caption || p.category);
    const where = p.clinic ? t("room.presentation.at_clinic") : t("room.presentation.experts_only");
    return t("room.presentation.line", { what, name: nameOf(p.by), where });
  },

  /** @param {Presentation | null} p */
  buttonText(p) {
    return p && p.clinic ? t("room.presentation.stop") : t("room.presentation.show");
  },

  /** @param {Presentation | null} p @param {(user: string) => string} nameOf */
  render(p, nameOf) {
    const line = $("presentation-info");
    const button = $("presentation-clinic");
    line.hidden = !p;
    button.hidden = !p;
    line.textContent = RoomPresentation.text(p, nameOf);
    button.textContent = RoomPresentation.buttonText(p);
    button.setAttribute("aria-pressed", String(Boolean(p && p.clinic)));
  },

  /**
   * The button toggles sharing with the clinic; `current()` is the room's presentation.
   * @param {{api: import("./api.js").Api, base: string, current: () => Presentation | null,
   *   say: (text: string) => void}} room
   */
  setup({ api, base, current, say }) {
    $("presentation-clinic").addEventListener("click", async () => {
      const p = current();
      if (!p) return;
      try { await api.call("PATCH", `${base}/presentation`, { clinic: !p.clinic }); }
      catch (e) { say(t("room.presentation.failed", { message: e.message })); }
    });
  },
};
