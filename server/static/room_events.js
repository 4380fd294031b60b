// The room's events (R4, R10, R17): one WebSocket that brings the room state, link health,
// the clinic's calls and refusals, and takes this expert's requests. It reconnects by itself
// (with back-off) and then reconnects the media too, since the server may have restarted.
import { nextRetryMs } from "./webrtc.js";
import { t } from "./i18n.js";

/** @typedef {{type: string} & Record<string, any>} RoomMessage */

/**
 * A message from the server, or null when it is not one (not JSON, or no `type`).
 * @param {string} text
 * @returns {RoomMessage | null}
 */
export function readMessage(text) {
  let msg;
  try { msg = JSON.parse(text); } catch (e) { return null; }
  return msg && typeof msg === "object" && typeof msg.type === "string" ? msg : null;
}

/**
 * @param {{base: string, say: (text: string) => void, onMessage: (msg: RoomMessage) => void,
 *   reconnected: () => void}} room `reconnected`: after the socket came back (reconnect media)
 */
export function roomEvents({ base, say, onMessage, reconnected }) {
  /** @type {WebSocket | null} */
  let ws = null;
  let retryMs = 1000;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  let stopped = false;

  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${proto}://${location.host}${base}/ws`);
    ws = socket;
    socket.onopen = () => { retryMs = 1000; };
    socket.onmessage = (ev) => {
      const msg = readMessage(ev.data);
      if (msg) onMessage(msg);
    };
    socket.onclose = () => {
      if (ws !== socket || stopped) return;
      say(t("room.server_lost"));
      if (!timer) timer = setTimeout(() => { timer = null; connect(); reconnected(); }, retryMs);
      retryMs = nextRetryMs(retryMs);
    };
  }

  /**
   * Send a request to the room (dropped while the socket is down).
   * @param {object} message
   */
  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  /** The consultation ended: no more reconnecting. */
  function stop() {
    stopped = true;
    if (timer) clearTimeout(timer);
    if (ws) ws.close();
  }

  return { connect, send, stop };
}
