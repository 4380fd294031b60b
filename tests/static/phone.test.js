// node --test: the screen shape a room tells the server with its offer (webrtc.js).
import test from "node:test";
import assert from "node:assert/strict";
import { PORTRAIT_QUERY, screenShape } from "../../server/static/webrtc.js";

test("a phone held upright asks for a portrait composite, anything else for landscape", () => {
  assert.equal(screenShape(375, 812), "portrait");
  assert.equal(screenShape(360, 640), "portrait");
  assert.equal(screenShape(600, 900), "portrait");
  assert.equal(screenShape(812, 375), "landscape"); // the phone turned
  assert.equal(screenShape(768, 1024), "landscape"); // a tablet: the desktop composite fits
  assert.equal(screenShape(1280, 720), "landscape");
  assert.equal(screenShape(500, 400), "landscape"); // narrow but wide: a small window
  assert.match(PORTRAIT_QUERY, /max-width: 600px/); // the same bound as screenShape's
  assert.match(PORTRAIT_QUERY, /orientation: portrait/);
});
