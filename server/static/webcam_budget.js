// What this expert's webcam may cost the server (ES module). Under CPU pressure the server
// asks for fewer webcam frames first (then fewer lines), so that the patient's live view keeps
// its latency; the browser's encoder then sends only that (RTCRtpSender.setParameters).

/** @typedef {{fps: number, max_height?: number | null}} Budget the room state's `webcam_budget` */

export const WebcamBudget = {
  /**
   * The encoding parameters for one budget, given the height the camera delivers.
   * @param {Budget} budget @param {number} trackHeight
   */
  encoding(budget, trackHeight) {
    const scale = budget.max_height && trackHeight > budget.max_height
      ? trackHeight / budget.max_height : 1;
    return { maxFramerate: budget.fps, scaleResolutionDownBy: scale };
  },

  /**
   * Apply the budget to every video sender of the peer connection (no-op before the
   * connection has negotiated its encodings; call again once it has).
   * @param {{getSenders(): any[]} | null} peer @param {Budget | null | undefined} budget
   */
  async apply(peer, budget) {
    if (!peer || !budget) return;
    for (const sender of peer.getSenders()) {
      if (!sender.track || sender.track.kind !== "video") continue;
      const params = sender.getParameters();
      if (!params.encodings || !params.encodings.length) continue;
      const want = WebcamBudget.encoding(budget, sender.track.getSettings().height || 0);
      const e = params.encodings[0];
      if (e.maxFramerate === want.maxFramerate && e.scaleResolutionDownBy === want.scaleResolutionDownBy) continue;
      Object.assign(e, want);
      try { await sender.setParameters(params); } catch (err) { console.warn("webcam budget", err); } // i18n: not for people (a log line)
    }
  },
};
