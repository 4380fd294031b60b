// Aiming the camera on the live view (issue 22): a click (or tap) on the patient's picture
// centres that point, a box dragged on it becomes the view (centre, then digital zoom), a
// double click (or double tap) zooms back out to the whole picture. Only for the expert who
// holds the floor; the appliance works the angles out from its own lens, crop and position,
// so the page sends only where in the picture the expert pointed (fractions 0..1).

/** Pointer travel (CSS px) below which a press is a click, not a box. */
export const DRAG_PX = 8;
/** Two taps within this time (ms) and distance (CSS px) are a double tap. */
export const DOUBLE_MS = 400;
export const DOUBLE_PX = 24;

/**
 * @typedef {{x: number, y: number, w: number, h: number}} Rect
 * @typedef {{tiles: [string, number, number, number, number][], size: [number, number],
 *   live_size?: [number, number] | null}} RoomLayout the room state's layout fields
 */

/**
 * Where the live picture is in the composite (composite pixels): its tile, with the
 * picture letterboxed inside as the compositor does it (aspect kept, centred, even).
 * @param {RoomLayout | null} room
 * @returns {Rect | null}
 */
export function livePicture(room) {
  const tile = room && room.tiles.find(([w]) => w === "live");
  if (!tile) return null;
  const [, x, y, w, h] = tile;
  const [sw, sh] = (room && room.live_size) || [16, 9];
  const scale = Math.min(w / sw, h / sh);
  const pw = Math.min(w, Math.max(2, 2 * Math.round((sw * scale) / 2)));
  const ph = Math.min(h, Math.max(2, 2 * Math.round((sh * scale) / 2)));
  return { x: x + Math.floor((w - pw) / 4) * 2, y: y + Math.floor((h - ph) / 4) * 2, w: pw, h: ph };
}

/**
 * How composite pixels map to the (letterboxed) video element on screen.
 * @param {[number, number]} size the composite's size
 * @param {{width: number, height: number}} shown the video's intrinsic size
 * @param {{left: number, top: number, width: number, height: number}} box the element on screen
 */
export function screenMapping(size, shown, box) {
  const scale = Math.min(box.width / shown.width, box.height / shown.height);
  const offX = (box.width - shown.width * scale) / 2, offY = (box.height - shown.height * scale) / 2;
  const kx = (scale * shown.width) / size[0], ky = (scale * shown.height) / size[1];
  return {
    /** @param {number} cx @param {number} cy client coordinates → composite pixels */
    toComposite: (cx, cy) => ({ x: (cx - box.left - offX) / kx, y: (cy - box.top - offY) / ky }),
    /** @param {Rect} r composite rect → client rect */
    toClient: (r) => ({ x: box.left + offX + r.x * kx, y: box.top + offY + r.y * ky, w: r.w * kx, h: r.h * ky }),
  };
}

/**
 * A composite point as fractions of the live picture (outside it: below 0 or above 1).
 * @param {Rect} pic @param {{x: number, y: number}} p
 */
export function fraction(pic, p) {
  return { x: (p.x - pic.x) / pic.w, y: (p.y - pic.y) / pic.h };
}

/**
 * A composite point as fractions of the live picture, or null when outside it.
 * @param {Rect} pic @param {{x: number, y: number}} p
 */
export function inPicture(pic, p) {
  const f = fraction(pic, p);
  return f.x >= 0 && f.x <= 1 && f.y >= 0 && f.y <= 1 ? f : null;
}

/** @param {number} v */
const unit = (v) => Math.min(Math.max(v, 0), 1);
/** @param {number} v rounded to 1/10000: short commands, no float noise */
const r4 = (v) => Math.round(v * 1e4) / 1e4;

/**
 * The command for a press at `a` released at `b` (fractions of the picture; `b` may lie
 * outside it, the box is cut at the picture's edges). `moved` is the travel in CSS px.
 * @param {{x: number, y: number}} a @param {{x: number, y: number}} b @param {number} moved
 * @returns {{op: string, [k: string]: any} | null}
 */
export function aimCommand(a, b, moved) {
  if (moved < DRAG_PX) return { op: "ptz.look_at", x: r4(unit(a.x)), y: r4(unit(a.y)) };
  const x0 = unit(Math.min(a.x, b.x)), x1 = unit(Math.max(a.x, b.x));
  const y0 = unit(Math.min(a.y, b.y)), y1 = unit(Math.max(a.y, b.y));
  if (x1 - x0 < 0.005 || y1 - y0 < 0.005) return null; // a sliver along an edge: nothing
  const x = r4(x0), y = r4(y0);
  return { op: "ptz.frame", x, y, width: r4(Math.min(x1 - x0, 1 - x)), height: r4(Math.min(y1 - y0, 1 - y)) };
}

/**
 * Wire the aiming gestures to the composite video.
 * @param {{video: HTMLVideoElement, stage: HTMLElement, hint: HTMLElement,
 *   room: () => (RoomLayout & {floor: {holder: string}, you: string}) | null,
 *   camera: (command: any) => Promise<any>}} deps
 */
export function setupAim({ video, stage, hint, room, camera }) {
  const box = document.createElement("div");
  box.className = "aim-box";
  box.hidden = true;
  stage.append(box);
  /** @type {{id: number, x: number, y: number, at: {x: number, y: number}, map: ReturnType<typeof screenMapping>, pic: Rect} | null} */
  let press = null;
  /** @type {{time: number, x: number, y: number} | null} */
  let lastTap = null;
  let swallowClick = false;

  const enabled = () => { const r = room(); return !!r && r.floor.holder === r.you; };

  /** The mapping and the live picture for a pointer at (cx, cy), or null off the picture. */
  function locate(/** @type {number} */ cx, /** @type {number} */ cy) {
    const r = room(), pic = livePicture(r);
    if (!r || !pic || !video.videoWidth || !enabled()) return null;
    const shown = { width: video.videoWidth, height: video.videoHeight };
    const map = screenMapping(r.size, shown, video.getBoundingClientRect());
    const at = inPicture(pic, map.toComposite(cx, cy));
    return at ? { map, pic, at } : null;
  }

  /** @param {PointerEvent} ev */
  function drawBox(ev) {
    if (!press) return;
    const s = stage.getBoundingClientRect();
    const pic = press.map.toClient(press.pic);
    const cx = Math.min(Math.max(ev.clientX, pic.x), pic.x + pic.w);
    const cy = Math.min(Math.max(ev.clientY, pic.y), pic.y + pic.h);
    box.style.left = `${Math.min(press.x, cx) - s.left}px`;
    box.style.top = `${Math.min(press.y, cy) - s.top}px`;
    box.style.width = `${Math.abs(cx - press.x)}px`;
    box.style.height = `${Math.abs(cy - press.y)}px`;
    box.hidden = Math.hypot(ev.clientX - press.x, ev.clientY - press.y) < DRAG_PX;
  }

  video.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 || press) return;
    const hit = locate(ev.clientX, ev.clientY);
    if (!hit) return; // another window, or not ours to steer: the click picks a main window
    ev.preventDefault();
    video.setPointerCapture(ev.pointerId);
    press = { id: ev.pointerId, x: ev.clientX, y: ev.clientY, ...hit };
  });
  video.addEventListener("pointermove", (ev) => { if (press && ev.pointerId === press.id) drawBox(ev); });
  video.addEventListener("pointerup", (ev) => {
    if (!press || ev.pointerId !== press.id) return;
    const p = press;
    press = null;
    box.hidden = true;
    swallowClick = true; // this press aimed the camera: it does not pick a main window
    const moved = Math.hypot(ev.clientX - p.x, ev.clientY - p.y);
    const now = performance.now();
    if (moved < DRAG_PX && lastTap && now - lastTap.time < DOUBLE_MS
        && Math.hypot(ev.clientX - lastTap.x, ev.clientY - lastTap.y) < DOUBLE_PX) {
      lastTap = null;
      camera({ op: "zoom", level: 1 }).then(() => showZoom(1));
      return;
    }
    lastTap = moved < DRAG_PX ? { time: now, x: ev.clientX, y: ev.clientY } : null;
    const command = aimCommand(p.at, fraction(p.pic, p.map.toComposite(ev.clientX, ev.clientY)), moved);
    if (command) camera(command).then((ack) => { if (ack && ack.result) showZoom(ack.result.zoom); });
  });
  video.addEventListener("pointercancel", () => { press = null; box.hidden = true; });
  // Registered before the page's own click handler: an aiming press is not a window pick.
  video.addEventListener("click", (ev) => {
    if (swallowClick) { swallowClick = false; ev.stopImmediatePropagation(); }
  }, { capture: true });

  /** @param {number} level the zoom the appliance reports, shown on the pad's slider */
  function showZoom(level) {
    const zoom = /** @type {HTMLInputElement | null} */ (document.getElementById("zoom"));
    const shown = document.getElementById("zoom-value");
    if (!zoom || !shown || typeof level !== "number") return;
    zoom.value = String(level);
    shown.textContent = `${Math.round(level * 10) / 10}×`;
  }

  return {
    /** Follow the floor: the gestures (and the hint) only for the expert who holds it. */
    render() {
      const on = enabled();
      hint.hidden = !on;
      video.style.touchAction = on ? "none" : ""; // a drag draws a box, it does not scroll
      video.classList.toggle("aiming", on);
    },
  };
}
