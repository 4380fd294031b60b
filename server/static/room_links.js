// Link health in the room (R17): for the clinic, the station and every expert, what their
// link carries both ways, what it loses, its round trip and the live view's delay.
"use strict";
const RoomLinks = {
  // One row's cells for a party's figures (missing figures show as "–").
  cells(f) {
    const v = (x, unit) => (x === undefined || x === null ? "–" : `${x}${unit}`);
    if (!f || !f.connected) return ["not connected", "–", "–", "–", "–"];
    return [
      `${v(f.up_kbps, "")} / ${v(f.down_kbps, "")} kbit/s`,
      `${v(f.up_loss_pct, " %")} / ${v(f.down_loss_pct, " %")}`,
      v(f.rtt_ms, " ms"),
      f.target_kbps !== undefined ? `${f.target_kbps} kbit/s (rung ${f.rung})` : "–",
      v(f.g2g_ms, " ms"),
    ];
  },

  // "Clinic link lost — reconnecting…" while the appliance does not stream.
  clinicLost(msg) {
    const c = msg && msg.parties && msg.parties.clinic;
    return Boolean(c && c.streaming === false);
  },

  // The "audio only" switch and what this expert's picture is now (room state's `video`).
  modeText(video) {
    if (!video) return "";
    if (video.audio_only) return "Audio only: a still picture every few seconds (you chose it).";
    if (video.stills) return "Your connection is too slow for video: a still picture every few seconds.";
    return `Video ${video.size[0]}×${video.size[1]}`;
  },

  renderMode(video) {
    const button = document.getElementById("audio-only");
    const on = Boolean(video && video.audio_only);
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? "Back to video" : "Audio only (saves data)";
    document.getElementById("video-mode").textContent = RoomLinks.modeText(video);
  },

  setupMode(send) {
    const button = document.getElementById("audio-only");
    button.addEventListener("click", () => {
      send({ type: "audio_only", on: button.getAttribute("aria-pressed") !== "true" });
    });
  },

  render(msg, nameOf) {
    const table = document.getElementById("links");
    const head = ["", "in / out", "loss in / out", "round trip", "encoder", "live view"];
    const rows = [head.map((h) => { const th = document.createElement("th"); th.textContent = h; return th; })];
    for (const [party, f] of Object.entries(msg.parties)) {
      const name = party === "clinic" ? "Clinic (camera)" : party === "station" ? "Clinic station" : nameOf(party);
      rows.push([name, ...RoomLinks.cells(f)].map((text) => {
        const td = document.createElement("td"); td.textContent = text; return td;
      }));
    }
    table.replaceChildren(...rows.map((cells) => { const tr = document.createElement("tr"); tr.append(...cells); return tr; }));
    const lost = document.getElementById("clinic-link");
    lost.hidden = !RoomLinks.clinicLost(msg);
    lost.textContent = lost.hidden ? "" : "Clinic link lost — reconnecting…";
  },
};
if (typeof module !== "undefined") module.exports = { RoomLinks };
