// What the clinic station's page says (ES module, pure): the privacy button, the recording
// mark, the waiting line, and why the station cannot connect.
import { formatDateTime, t } from "./i18n.js";

/** @param {boolean} privacy */
export function privacyButtonText(privacy) {
  return privacy ? t("station.privacy_end") : t("station.privacy");
}

/** @param {boolean} muted */
export function muteButtonText(muted) {
  return muted ? t("station.unmute") : t("station.mute");
}

/**
 * Is the "recording" mark shown? Only while the call is live, recorded, and not private.
 * @param {{recording?: boolean, state?: string}} s the station's state @param {boolean} privacy
 */
export function recordingShown(s, privacy) {
  return Boolean(s.recording && !privacy && s.state === "live");
}

/** @param {string | null | undefined} shown what the experts show the clinic */
export function shownText(shown) {
  return shown ? t("station.shown", { what: shown }) : "";
}

/** @param {boolean} left the staff left the call */
export function waitingText(left) {
  return left ? t("station.left") : t("station.waiting");
}

/**
 * Why the station is not in the call, from the error of its last poll.
 * @param {{status?: number, message?: string}} e @param {boolean} hasToken the kiosk's device token
 */
export function pollProblemText(e, hasToken) {
  if (e.status === 401 && !hasToken) return t("station.sign_in_needed");
  if (e.status === 401) return t("station.not_allowed");
  if (e.status === 403) return e.message || "";
  return t("station.unreachable");
}

/**
 * The appliance's next consultation (or the one under way), in this screen's time zone.
 * @param {{title: string, start: string, state: string} | null | undefined} next
 */
export function nextText(next) {
  if (!next) return "";
  const time = formatDateTime(next.start);
  return next.state === "live"
    ? t("station.now", { title: next.title, time })
    : t("station.next", { title: next.title, time });
}
