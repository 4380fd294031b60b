// node --test: the room's decision-support panel (issue 18): the basis as text, in both
// languages, and the confirm step's words.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { setCatalogue } from "../../server/static/i18n.js";
import { basisLines, confirmText, summary } from "../../server/static/room_relevance.js";

const catalogue = (code) => JSON.parse(readFileSync(new URL(`../../server/static/i18n/${code}.json`, import.meta.url), "utf8"));
const en = catalogue("en");

const RESULT = {
  caption: "model relevance-demo-1 · demonstration model — not for clinical use",
  labels: ["benign", "malignant"],
  values: [0.08, 0.92],
  model_version: "relevance-demo-1",
  produced_by: "server",
  basis: {
    model: { version: "relevance-demo-1", card_known: true },
    branches: {
      emr_entry: { probabilities: [0.0, 1.0], weight: 0.8, data: "real" },
      clinical_photo: { probabilities: [0.97, 0.03], weight: 0.2, data: "synthetic" },
    },
    items: [
      { category: "emr_entry", id: 3, probabilities: [0, 1], imputed: ["worst area", "mean area"] },
      { category: "clinical_photo", id: 4, probabilities: [0.97, 0.03], imputed: [] },
    ],
    skipped: [{ category: "record_scan", id: 5, code: "out_of_scope", reason: "…" }],
    synthetic_capped: true,
  },
};

test("the basis names the model, each branch with its data, weight and records, and what was left out", () => {
  setCatalogue("en", en);
  const lines = basisLines(RESULT);
  assert.equal(lines.model, "Model relevance-demo-1, computed on the server");
  assert.deepEqual(lines.branches, [
    "EMR entry (real data): benign 0 % · malignant 100 %; weight 0.80; 1 record used",
    "Clinical photo (synthetic data): benign 97 % · malignant 3 %; weight 0.20; 1 record used",
  ]);
  assert.deepEqual(lines.imputed, ["EMR entry #3: missing fields filled with training means: worst area, mean area"]);
  assert.deepEqual(lines.skipped, ["Record scan #5 not used: out of scope: unlike the inputs this branch was trained on"]);
  assert.match(lines.capped, /at most 20 %/);
});

test("an unknown card and an appliance result say so", () => {
  setCatalogue("en", en);
  const lines = basisLines({ ...RESULT, produced_by: "appliance:cam-1", basis: { model: { version: "v9", card_known: false } } });
  assert.equal(lines.model, "Model v9, computed on the appliance; its card is not on this server");
  assert.deepEqual(lines.branches, []);
});

test("the confirm step asks for the expert's own finding and shows the model as context", () => {
  setCatalogue("en", en);
  const words = confirmText("malignant", RESULT);
  assert.equal(words.question, "Record “malignant” as your own diagnosis for this patient?");
  assert.equal(words.context, "The model's output is context only, not the finding: benign 8 % · malignant 92 %");
  assert.equal(summary(["a", "b"], [0.5, 0.5]), "a 50 % · b 50 %");
});

test("in Chinese: not a diagnosis, and every key the panel uses is translated", () => {
  const zh = catalogue("zh-CN");
  setCatalogue("zh-CN", zh, en);
  assert.equal(zh["relevance.notice"], "辅助决策，非诊断");
  const lines = basisLines(RESULT);
  assert.equal(lines.model, "模型 relevance-demo-1，在服务器上计算");
  assert.match(lines.branches[0], /^电子病历条目（真实数据）/);
  const ours = Object.keys(en).filter((k) => k.startsWith("relevance."));
  assert.deepEqual(ours.filter((k) => !(k in zh)), []);
});
