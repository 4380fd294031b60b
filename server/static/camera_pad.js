// The camera pad of the room (R3, R4): pan and tilt (a click is one step, a held button moves
// until released, with a dead-man refresh), the arrow keys, zoom, focus, colour, presets and
// the snapshot. Every command goes to the server, which passes it on to whoever holds the floor.
import { $ } from "./dom.js";
import { t } from "./i18n.js";

/** How long a button must be held before it moves continuously (ms). */
export const HOLD_MS = 350;
/** How often a continuous move is renewed; the appliance stops it after `timeout_s`. */
export const REFRESH_MS = 300;

/**
 * @typedef {Record<string, any> & {op: string}} CameraCommand
 */

/**
 * One step of pan/tilt in direction (dx, dy), `step` degrees.
 * @param {number} dx @param {number} dy @param {number} step
 * @returns {CameraCommand}
 */
export function stepCommand(dx, dy, step) {
  return { op: "ptz.relative", pan: dx * step, tilt: dy * step };
}

/**
 * The continuous move while a button is held (renewed every REFRESH_MS).
 * @param {number} dx @param {number} dy
 * @returns {CameraCommand}
 */
export function holdCommand(dx, dy) {
  return { op: "ptz.continuous", pan_speed: dx * 30, tilt_speed: dy * 30, timeout_s: 0.6 };
}

/** @type {Record<string, [number, number]>} */
const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };

/**
 * The step an arrow key asks for, or null for any other key.
 * @param {string} key @param {number} step
 * @returns {CameraCommand | null}
 */
export function arrowCommand(key, step) {
  const d = ARROWS[key];
  return d ? stepCommand(d[0], d[1], step) : null;
}

/**
 * The status line after a command: where the camera points now, or "Done".
 * @param {any} ack the server's acknowledgement
 */
export function ackText(ack) {
  const ptz = ack && ack.state && ack.state.ptz;
  return ptz ? t("room.pad.ack", { pan: ptz.pan.toFixed(1), tilt: ptz.tilt.toFixed(1) }) : t("room.pad.done");
}

/**
 * Wire the pad to consultation `base`'s camera; `status` shows the outcome of each command.
 * @param {{api: import("./api.js").Api, base: string, status: HTMLElement}} room
 */
export function cameraPad({ api, base, status }) {
  /**
   * Send one command; the acknowledgement, or null when it was refused (the reason is shown).
   * @param {CameraCommand} command @param {boolean} [quiet] leave the status line alone
   */
  async function camera(command, quiet) {
    try {
      const ack = await api.call("POST", `${base}/camera`, command);
      if (!quiet) status.textContent = ackText(ack);
      return ack;
    } catch (e) {
      status.textContent = e.message;
      return null;
    }
  }

  const step = /** @type {HTMLSelectElement} */ ($("step"));

  /** @param {HTMLButtonElement} btn */
  function wireButton(btn) {
    if (btn.hasAttribute("data-home")) { btn.onclick = () => camera({ op: "ptz.home" }); return; }
    const dx = Number(btn.dataset.pan), dy = Number(btn.dataset.tilt);
    /** @type {ReturnType<typeof setTimeout> | null} */
    let holdTimer = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    let refresh = null;
    let holding = false;
    /** @param {PointerEvent} ev */
    const start = (ev) => {
      if (ev.button !== 0 || holdTimer || refresh) return; // the main button, finger or pen
      btn.setPointerCapture(ev.pointerId); // a finger that slides a little still holds
      holding = false;
      holdTimer = setTimeout(() => {       // held: continuous move with a dead-man refresh
        holding = true;
        const go = () => camera(holdCommand(dx, dy), true);
        go(); refresh = setInterval(go, REFRESH_MS);
      }, HOLD_MS);
    };
    const end = () => {
      if (holdTimer) clearTimeout(holdTimer);
      holdTimer = null;
      if (refresh) { clearInterval(refresh); refresh = null; camera({ op: "ptz.stop" }); return; }
      if (!holding) camera(stepCommand(dx, dy, Number(step.value)));
    };
    // The browser took the touch over (or the pointer went away): stop, but take no step.
    const cancel = () => {
      holding = true;
      if (holdTimer || refresh) end();
    };
    btn.addEventListener("pointerdown", start);
    btn.addEventListener("pointerup", end);
    btn.addEventListener("pointerleave", () => { if (holdTimer || refresh) end(); });
    btn.addEventListener("pointercancel", cancel);
    btn.addEventListener("lostpointercapture", () => { if (holdTimer || refresh) cancel(); });
    btn.addEventListener("contextmenu", (ev) => ev.preventDefault()); // a long press holds
    btn.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); camera(stepCommand(dx, dy, Number(step.value))); }
    });
  }

  const buttons = document.querySelectorAll(".pad button"); // i18n: not for people (a CSS selector)
  for (const btn of buttons) wireButton(/** @type {HTMLButtonElement} */ (btn));
  document.addEventListener("keydown", (ev) => {
    if (/** @type {HTMLFieldSetElement} */ ($("camera-controls")).disabled) return;
    const target = /** @type {HTMLElement} */ (ev.target);
    if (["INPUT", "SELECT", "BUTTON"].includes(target.tagName)) return;
    const command = arrowCommand(ev.key, Number(step.value));
    if (command) { ev.preventDefault(); camera(command); }
  });
  const zoom = /** @type {HTMLInputElement} */ ($("zoom"));
  zoom.onchange = () => { $("zoom-value").textContent = `${zoom.value}×`; camera({ op: "zoom", level: Number(zoom.value) }); };
  /** @param {Event} ev */
  const value = (ev) => /** @type {HTMLInputElement} */ (ev.target).value;
  $("focus-auto").onclick = () => camera({ op: "focus", mode: "auto" });
  $("focus").onchange = (/** @type {Event} */ ev) => camera({ op: "focus", mode: "manual", lens_position: Number(value(ev)) });
  $("awb").onchange = (/** @type {Event} */ ev) => camera({ op: "colour", awb: value(ev) });
  for (const id of ["brightness", "contrast", "saturation"]) {
    $(id).onchange = (/** @type {Event} */ ev) => camera({ op: "colour", [id]: Number(value(ev)) });
  }
  const preset = /** @type {HTMLSelectElement} */ ($("preset"));
  for (let i = 1; i <= 16; i++) preset.append(new Option(t("room.pad.preset", { slot: i }), String(i)));
  $("preset-go").onclick = () => camera({ op: "preset.goto", slot: Number(preset.value) });
  $("preset-save").onclick = () => camera({ op: "preset.save", slot: Number(preset.value) });
  $("snapshot").onclick = async () => {
    const ack = await camera({ op: "snapshot" }, true);
    if (ack && ack.result) status.textContent = t("room.pad.snapshot_taken", { width: ack.result.width, height: ack.result.height });
  };
  return { camera };
}
