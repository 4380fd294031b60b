// node --test: the model card page (issue 18): Mitchell et al. sections from the shipped
// card, metrics with their intervals, the logistic-regression baseline, provenance per
// branch, the registry status; in both languages.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { setCatalogue } from "../../server/static/i18n.js";
import { baselineText, clinicCasesText, intendedUse, metricRows, statusText, trainingLines } from "../../server/static/model_card.js";
import { cardHref } from "../../server/static/room_relevance.js";

const read = (path) => JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8"));
const en = read("../../server/static/i18n/en.json");
const zh = read("../../server/static/i18n/zh-CN.json");
const card = read("../../models/demo/relevance-demo-1.card.json");
const page = { version: card.version, in_use: true, status: null, decision: "", training_patients: 0, card };

test("metrics per branch with their 95 % intervals, the EMR baseline beside them", () => {
  setCatalogue("en", en);
  const rows = metricRows(card);
  assert.equal(rows.length, 5);
  const emr = rows.find((r) => r[0] === "EMR entry");
  assert.deepEqual(emr.slice(1, 6), ["real data", "142", "98.6 %", "95.0 % – 99.6 %", "98.1 %"]);
  assert.equal(rows.find((r) => r[0] === "Clinical photo")[1], "synthetic data");
  const baseline = baselineText(card);
  assert.match(baseline, /LogisticRegression/);
  assert.match(baseline, /balanced accuracy 98\.5 %, on 142 test entries/);
});

test("training data with provenance, clinic cases, status; the intended use as written", () => {
  setCatalogue("en", en);
  const lines = trainingLines(card);
  assert.match(lines.find((l) => l.startsWith("EMR entry")), /real data: Wisconsin .*benign 357, malignant 212 \(train 341, validation 86, test 142\)/);
  assert.match(lines.find((l) => l.startsWith("Voice note")), /synthetic data/);
  assert.match(clinicCasesText(page), /: 0; patients this server recorded for the model: 0\./);
  assert.equal(statusText(page), "in use on this server (not in this server's registry (shipped or configured model))");
  assert.equal(statusText({ ...page, in_use: false, status: "withdrawn" }),
    "withdrawn: a patient it was trained on withdrew training consent");
  assert.equal(intendedUse(card), "demonstration model — not for clinical use");
  assert.equal(cardHref("relevance-demo-1"), "/models/relevance-demo-1/card");
});

test("in Chinese: headings and numbers translated, the card's Chinese intended use", () => {
  setCatalogue("zh-CN", zh, en);
  assert.equal(intendedUse(card), "演示模型——不用于临床");
  assert.equal(metricRows(card).find((r) => r[0] === "电子病历条目")[1], "真实数据");
  assert.match(baselineText(card), /^电子病历分支的对照基线/);
  assert.match(statusText({ ...page, in_use: false, status: "retired" }), /^已停用/);
  const ours = Object.keys(en).filter((k) => k.startsWith("modelcard."));
  assert.deepEqual(ours.filter((k) => !(k in zh)), []);
  setCatalogue("en", en);
});
