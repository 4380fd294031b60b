// node --test: the pure parts of aiming the camera on the live view (server/static/room_aim.js).
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { DRAG_PX, aimCommand, fraction, inPicture, livePicture, screenMapping } from "../../server/static/room_aim.js";

const room = { size: [1280, 720], tiles: [["live", 0, 0, 960, 720], ["relevance", 960, 0, 320, 180]], live_size: [1280, 720] };

test("the live picture is letterboxed in its tile as the compositor does it", () => {
  assert.deepEqual(livePicture(room), { x: 0, y: 90, w: 960, h: 540 });
  assert.deepEqual(livePicture({ ...room, live_size: [640, 480] }), { x: 0, y: 0, w: 960, h: 720 });
  assert.deepEqual(livePicture({ ...room, live_size: null }), { x: 0, y: 90, w: 960, h: 540 }); // 16:9 until known
  assert.equal(livePicture({ ...room, tiles: [["relevance", 0, 0, 10, 10]] }), null);
  assert.equal(livePicture(null), null);
});

test("screen ↔ composite follows the element's own letterbox", () => {
  // a 1280×720 composite in a 640×480 element: 640×360, 60 px bands above and below
  const map = screenMapping([1280, 720], { width: 1280, height: 720 }, { left: 10, top: 20, width: 640, height: 480 });
  assert.deepEqual(map.toComposite(10, 80), { x: 0, y: 0 });
  assert.deepEqual(map.toComposite(650, 440), { x: 1280, y: 720 });
  assert.deepEqual(map.toClient({ x: 0, y: 90, w: 960, h: 540 }), { x: 10, y: 125, w: 480, h: 270 });
  // the composite arrives smaller than its layout (a lower rung): same layout coordinates
  const small = screenMapping([1280, 720], { width: 640, height: 360 }, { left: 0, top: 0, width: 640, height: 360 });
  assert.deepEqual(small.toComposite(320, 180), { x: 640, y: 360 });
});

test("a point of the picture in fractions, and nothing outside it", () => {
  const pic = { x: 0, y: 90, w: 960, h: 540 };
  assert.deepEqual(inPicture(pic, { x: 480, y: 360 }), { x: 0.5, y: 0.5 });
  assert.equal(inPicture(pic, { x: 480, y: 60 }), null); // the letterbox band
  assert.equal(inPicture(pic, { x: 1000, y: 360 }), null); // another window
  assert.deepEqual(fraction(pic, { x: 1200, y: 90 }), { x: 1.25, y: 0 });
});

test("a click centres, a drag frames, and the box is cut at the picture's edges", () => {
  assert.deepEqual(aimCommand({ x: 0.25, y: 0.75 }, { x: 0.26, y: 0.75 }, DRAG_PX - 1), { op: "ptz.look_at", x: 0.25, y: 0.75 });
  assert.deepEqual(aimCommand({ x: 0.6, y: 0.7 }, { x: 0.4, y: 0.5 }, 50), { op: "ptz.frame", x: 0.4, y: 0.5, width: 0.2, height: 0.2 });
  assert.deepEqual(aimCommand({ x: 0.8, y: 0.5 }, { x: 1.3, y: 0.9 }, 50), { op: "ptz.frame", x: 0.8, y: 0.5, width: 0.2, height: 0.4 });
  assert.equal(aimCommand({ x: 1, y: 0.5 }, { x: 1.4, y: 0.9 }, 50), null); // all outside: no box
  const c = aimCommand({ x: 0.1 / 3, y: 0.2 / 3 }, { x: 0.5, y: 0.5 }, 50);
  assert.ok(c && c.x + c.width <= 1 && c.y + c.height <= 1 && c.x === 0.0333);
});
