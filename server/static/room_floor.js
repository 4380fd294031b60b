// Floor control in the room (R4): who holds the camera, asking for it, giving it back, and
// the chair's answers to the experts who ask. The server decides; the page only asks.
import { $, el } from "./dom.js";
import { t } from "./i18n.js";

/**
 * @typedef {{holder: string, chair: string, pending: string[]}} Floor the room state's `floor`
 * @typedef {{label: string, message: {type: string, action: string}, id: string}} FloorAction
 */

/**
 * The line about who holds camera control.
 * @param {Floor} floor @param {string} you @param {(user: string) => string} nameOf
 */
export function holderText(floor, you, nameOf) {
  return floor.holder === you ? t("room.floor.you_hold") : t("room.floor.holder", { name: nameOf(floor.holder) });
}

/**
 * What this expert may do about the floor now: buttons, and a note while waiting for the chair.
 * @param {Floor} floor @param {string} you
 * @returns {(FloorAction | string)[]}
 */
export function floorActions(floor, you) {
  const mine = floor.holder === you;
  const chair = floor.chair === you;
  const asked = floor.pending.includes(you);
  /** @type {(FloorAction | string)[]} */
  const actions = [];
  /** @param {string} label @param {string} action @param {string} id */
  const add = (label, action, id) => actions.push({ label, message: { type: "floor", action }, id });
  if (!mine && !asked) add(t("room.floor.request"), "request", "floor-request");
  if (!mine && asked) actions.push(t("room.floor.waiting"));
  if (mine && !chair) add(t("room.floor.release"), "release", "floor-release");
  if (chair && !mine) add(t("room.floor.revoke"), "revoke", "floor-revoke");
  return actions;
}

/**
 * Show the floor of room state `room`; `send` puts a message on the room's WebSocket.
 * @param {any} room @param {(user: string) => string} nameOf @param {(message: object) => void} send
 */
export function renderFloor(room, nameOf, send) {
  const f = room.floor;
  $("control-holder").textContent = holderText(f, room.you, nameOf);
  /** @type {HTMLFieldSetElement} */ ($("camera-controls")).disabled = f.holder !== room.you;
  $("floor-actions").replaceChildren(...floorActions(f, room.you).map((a) => (typeof a === "string" ? a
    : el("button", { id: a.id, textContent: a.label, onclick: () => send(a.message) }))));
  const pending = $("floor-pending");
  pending.replaceChildren();
  if (f.chair !== room.you) return;
  for (const user of f.pending) {
    pending.append(el("li", {}, t("room.floor.asks", { name: nameOf(user) }), " ",
      ...[[t("room.floor.grant"), "grant"], [t("room.floor.refuse"), "deny"]].map(([label, action]) => el("button", {
        textContent: label, class: `floor-${action}`, dataset: { user },
        onclick: () => send({ type: "floor", action, user }),
      }))));
  }
}

/**
 * Which window of the composite is under a point of the (letterboxed) video element.
 * @param {{tiles: [string, number, number, number, number][], size: [number, number]}} room
 *   the room state: tiles [window, x, y, w, h] in composite pixels, and the composite's size
 * @param {{width: number, height: number}} shown the video's intrinsic size (videoWidth/Height)
 * @param {{left: number, top: number, width: number, height: number}} rect the element on screen
 * @param {number} clientX @param {number} clientY
 * @returns {string | null}
 */
export function windowAt(room, shown, rect, clientX, clientY) {
  if (!room || !shown.width) return null;
  const scale = Math.min(rect.width / shown.width, rect.height / shown.height);
  const offX = (rect.width - shown.width * scale) / 2, offY = (rect.height - shown.height * scale) / 2;
  const x = ((clientX - rect.left - offX) / scale) * room.size[0] / shown.width;
  const y = ((clientY - rect.top - offY) / scale) * room.size[1] / shown.height;
  for (const [w, tx, ty, tw, th] of room.tiles) {
    if (x >= tx && x < tx + tw && y >= ty && y < ty + th) return w;
  }
  return null;
}
