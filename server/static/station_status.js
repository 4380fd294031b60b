// What the experts see of the clinic station in the room (R16) (ES module, pure).
import { t } from "./i18n.js";

export const StationStatus = {
  /**
   * The room's line about the station (room state's `station`).
   * @param {{connected?: boolean, muted?: boolean, level_dbfs?: number | null} | null} station
   */
  text(station) {
    if (!station || !station.connected) {
      return t("room.station.not_connected");
    }
    const parts = [t("room.station.connected")];
    if (station.muted) parts.push(t("room.station.muted"));
    else if (typeof station.level_dbfs === "number" && station.level_dbfs > -45) parts.push(t("room.station.speaking"));
    return parts.join(t("room.station.separator"));
  },
};

/**
 * The room's line about the call's own recording (O4, room state's `call_recording`):
 * "recording", "no_consent" (nothing recorded), "off" (not on this site), "checking".
 * @param {string | undefined} status
 */
export function callRecordingText(status) {
  if (status === "recording") return t("room.recording.on");
  if (status === "no_consent") return t("room.recording.no_consent");
  if (status === "checking") return t("room.recording.checking");
  return "";
}
