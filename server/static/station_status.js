// What the experts see of the clinic station in the room (R16).
"use strict";
const StationStatus = {
  text(station) {
    if (!station || !station.connected) {
      return "Clinic station: not connected (you hear the appliance's microphone).";
    }
    const parts = ["Clinic station: connected"];
    if (station.muted) parts.push("microphone muted");
    else if (station.level_dbfs !== null && station.level_dbfs > -45) parts.push("speaking");
    return parts.join(" · ");
  },
};
if (typeof module !== "undefined") module.exports = { StationStatus };
