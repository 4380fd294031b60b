// Link health in the room (R17): for the clinic, the station and every expert, what their
// link carries both ways, what it loses, its round trip and the live view's delay (measured
// by the expert's page when it can say, room_latency.js; else the server's estimate).
import { $ } from "./dom.js";
import { t } from "./i18n.js";

export const RoomLinks = {
  /**
   * One row's cells for a party's figures (missing figures show as "–").
   * @param {any} f the party's figures (links message's `parties[party]`)
   */
  cells(f) {
    /** @param {unknown} x @param {string} unit */
    const v = (x, unit) => (x === undefined || x === null ? "–" : `${x}${unit}`);
    if (!f || !f.connected) return [t("room.links.not_connected"), "–", "–", "–", "–"];
    return [
      t("room.links.rates", { up: v(f.up_kbps, ""), down: v(f.down_kbps, "") }),
      `${v(f.up_loss_pct, " %")} / ${v(f.down_loss_pct, " %")}`,
      v(f.rtt_ms, " ms"),
      f.target_kbps !== undefined ? t("room.links.encoder", { kbps: f.target_kbps, rung: f.rung }) : "–",
      f.g2g_measured ? t("room.links.g2g_measured", { ms: f.g2g_ms }) : v(f.g2g_ms, " ms"),
    ];
  },

  /**
   * "Clinic link lost — reconnecting…" while the appliance does not stream.
   * @param {any} msg the links message
   */
  clinicLost(msg) {
    const c = msg && msg.parties && msg.parties.clinic;
    return Boolean(c && c.streaming === false);
  },

  /**
   * What this expert's picture is now.
   * @param {{audio_only?: boolean, stills?: boolean, size: [number, number]} | null} video room state's `video`
   */
  modeText(video) {
    if (!video) return "";
    if (video.audio_only) return t("room.mode.audio_only");
    if (video.stills) return t("room.mode.too_slow");
    return t("room.mode.video", { width: video.size[0], height: video.size[1] });
  },

  /**
   * The "audio only" switch and the line about this expert's picture.
   * @param {{audio_only?: boolean, stills?: boolean, size: [number, number]} | null} video
   */
  renderMode(video) {
    const button = $("audio-only");
    const on = Boolean(video && video.audio_only);
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? t("room.back_to_video") : t("room.audio_only");
    $("video-mode").textContent = RoomLinks.modeText(video);
  },

  /** @param {(message: object) => void} send puts a message on the room's WebSocket */
  setupMode(send) {
    const button = $("audio-only");
    button.addEventListener("click", () => {
      send({ type: "audio_only", on: button.getAttribute("aria-pressed") !== "true" });
    });
  },

  /**
   * The link-health table and the clinic-link banner.
   * @param {{parties: Record<string, any>}} msg @param {(user: string) => string} nameOf
   */
  render(msg, nameOf) {
    const table = $("links");
    const head = ["", t("room.links.in_out"), t("room.links.loss"), t("room.links.rtt"),
      t("room.links.encoder_head"), t("room.links.live_view")];
    const rows = [head.map((h) => { const th = document.createElement("th"); th.textContent = h; return th; })];
    for (const [party, f] of Object.entries(msg.parties)) {
      const name = party === "clinic" ? t("room.links.clinic") : party === "station" ? t("room.links.station") : nameOf(party);
      rows.push([name, ...RoomLinks.cells(f)].map((text) => {
        const td = document.createElement("td"); td.textContent = text; return td;
      }));
    }
    table.replaceChildren(...rows.map((cells) => { const tr = document.createElement("tr"); tr.append(...cells); return tr; }));
    const lost = $("clinic-link");
    lost.hidden = !RoomLinks.clinicLost(msg);
    lost.textContent = lost.hidden ? "" : t("room.links.clinic_lost");
  },
};
