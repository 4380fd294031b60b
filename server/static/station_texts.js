// What the clinic station's page says (ES module, pure): the privacy button, the recording
// mark, the waiting line, and why the station cannot connect.

/** @param {boolean} privacy */
export function privacyButtonText(privacy) {
  return privacy ? "Privacy on — tap to end" : "Privacy";
}

/** @param {boolean} muted */
export function muteButtonText(muted) {
  return muted ? "Unmute microphone" : "Mute microphone";
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
  return shown ? `The experts are showing you: ${shown}` : "";
}

/** @param {boolean} left the staff left the call */
export function waitingText(left) {
  return left ? "You left the consultation. Press Leave again to rejoin." : "Waiting for the consultation…";
}

/**
 * Why the station is not in the call, from the error of its last poll.
 * @param {{status?: number, message?: string}} e @param {boolean} hasToken the kiosk's device token
 */
export function pollProblemText(e, hasToken) {
  if (e.status === 401 && !hasToken) return "Sign in as the clinic's staff to use this station.";
  if (e.status === 401) return "This station is not allowed to connect (unknown appliance or wrong token).";
  if (e.status === 403) return e.message || "";
  return "Server unreachable — trying again…";
}
