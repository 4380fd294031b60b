// True colour (issue 22): the expert holding control asks the appliance to calibrate on the
// 24-patch colour card held in view; everyone sees whether the view is colour-calibrated
// and how well (mean ΔE2000 over the card's patches: under 2 is hard to see, under 3 good).
import { $ } from "./dom.js";
import { t } from "./i18n.js";

/** The reasons the appliance gives (its ack's `result.code`) that this page can say. */
/** @type {Record<string, () => string>} */
const REASONS = {
  no_card: () => t("room.colour.error.no_card"),
  card_lost: () => t("room.colour.error.card_lost"),
  not_better: () => t("room.colour.error.not_better"),
  bad_fit: () => t("room.colour.error.bad_fit"),
};

/**
 * @typedef {{lighting: string, delta_e: number, delta_e_before: number, at?: string}} Calibration
 */

/**
 * The indicator's text for the room state's `colour` (null: not calibrated).
 * @param {Calibration | null | undefined} colour
 */
export function colourText(colour) {
  if (!colour) return t("room.colour.not_calibrated");
  return t("room.colour.calibrated", { delta_e: colour.delta_e.toFixed(1) });
}

/**
 * The indicator's tooltip: for which light, and how far off the colour was before.
 * @param {Calibration | null | undefined} colour
 */
export function colourDetail(colour) {
  if (!colour) return t("room.colour.not_calibrated_title");
  return t("room.colour.calibrated_title", {
    lighting: t(`room.awb.${colour.lighting}`),
    before: colour.delta_e_before.toFixed(1),
    after: colour.delta_e.toFixed(1),
  });
}

/**
 * What to say after a calibration command: its ack, or the error it was refused with.
 * @param {any} ack the appliance's acknowledgement when it succeeded
 * @param {any} [error] the ApiError when it did not
 */
export function calibrationOutcome(ack, error) {
  if (error) {
    const data = error.data;
    const code = data && data.result && data.result.code;
    return Object.hasOwn(REASONS, code) ? REASONS[code]() : String(error.message);
  }
  const r = (ack && ack.result) || {};
  return t("room.colour.done", {
    before: Number(r.delta_e_before).toFixed(1),
    after: Number(r.delta_e_after).toFixed(1),
  });
}

export const RoomColour = {
  /**
   * Wire the "calibrate colour" button (inside the camera controls: only the holder can).
   * @param {{api: import("./api.js").Api, base: string, say: (text: string) => void}} room
   */
  setup({ api, base, say }) {
    const button = /** @type {HTMLButtonElement} */ ($("colour-calibrate"));
    button.onclick = async () => {
      button.disabled = true;
      say(t("room.colour.calibrating"));
      try {
        const ack = await api.call("POST", `${base}/camera`, { op: "colour.calibrate" });
        say(calibrationOutcome(ack));
      } catch (e) {
        say(calibrationOutcome(null, e));
      } finally {
        button.disabled = false;
      }
    };
  },

  /** @param {Calibration | null | undefined} colour the room state's `colour` */
  render(colour) {
    const indicator = $("colour-state");
    indicator.textContent = colourText(colour);
    indicator.title = colourDetail(colour);
    indicator.classList.toggle("colour-calibrated", Boolean(colour));
  },
};
