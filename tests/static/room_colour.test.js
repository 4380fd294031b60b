// node --test: the room's true-colour indicator and the calibration's outcome (room_colour.js).
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { ApiError } from "../../server/static/api.js";
import { calibrationOutcome, colourDetail, colourText } from "../../server/static/room_colour.js";

const calibrated = { lighting: "tungsten", delta_e: 1.834, delta_e_before: 11.2 };

test("the indicator says whether the view is calibrated, and how well", () => {
  assert.equal(colourText(null), "colour not calibrated");
  assert.equal(colourText(undefined), "colour not calibrated");
  assert.equal(colourText(calibrated), "colour calibrated, ΔE 1.8");
  assert.match(colourDetail(calibrated), /tungsten.*11\.2 before, 1\.8 after/);
});

test("a calibration's outcome: ΔE before and after, or the appliance's reason in words", () => {
  assert.equal(
    calibrationOutcome({ ok: true, result: { delta_e_before: 9.81, delta_e_after: 1.2 } }),
    "Colour calibrated: ΔE 9.8 → 1.2",
  );
  const noCard = new ApiError("no colour card found: …", 422, null,
    { ok: false, error: "no colour card found: …", result: { code: "no_card" } });
  assert.equal(calibrationOutcome(null, noCard),
    "No colour card found: hold the 24-patch card flat in view and try again");
  const held = new ApiError("camera control is held by bob", 403, null, { error: "camera control is held by bob" });
  assert.equal(calibrationOutcome(null, held), "camera control is held by bob");
  const odd = new ApiError("something new", 422, null, { result: { code: "unheard_of" } });
  assert.equal(calibrationOutcome(null, odd), "something new");
});
