// What the experts see of the clinic station in the room (R16) (ES module, pure).

export const StationStatus = {
  /**
   * The room's line about the station (room state's `station`).
   * @param {{connected?: boolean, muted?: boolean, level_dbfs?: number | null} | null} station
   */
  text(station) {
    if (!station || !station.connected) {
      return "Clinic station: not connected (you hear the appliance's microphone).";
    }
    const parts = ["Clinic station: connected"];
    if (station.muted) parts.push("microphone muted");
    else if (typeof station.level_dbfs === "number" && station.level_dbfs > -45) parts.push("speaking");
    return parts.join(" · ");
  },
};
