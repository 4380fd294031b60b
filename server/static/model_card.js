// The model card page (issue 18; Mitchell et al., "Model Cards for Model Reporting"):
// the card of one model version, as the server keeps it, in the reader's language. The
// headings, labels and numbers are the page's; the card's own prose (intended use when
// it has no Chinese variant, out-of-scope uses, factors, caveats) is the model maker's.
import { createApi } from "./api.js";
import { $, el, problem, say } from "./dom.js";
import { formatDateTime, lang, mountSwitch, t } from "./i18n.js";

/** @typedef {{source?: string, synthetic?: boolean, records?: Record<string, number>, split?: Record<string, number>}} Data */
/** @typedef {{n?: number, accuracy?: number, balanced_accuracy?: number, ece?: number}} Scores */
/**
 * @typedef {{version: string, in_use: boolean, status: string | null, decision: string,
 *   training_patients: number, card: Record<string, any>}} CardPage
 */

const CATEGORIES = ["clinical_photo", "record_scan", "ct_image", "voice_note", "emr_entry"];

/** @type {Record<string, () => string>} */
const CATEGORY = {
  clinical_photo: () => t("modelcard.category.clinical_photo"),
  record_scan: () => t("modelcard.category.record_scan"),
  ct_image: () => t("modelcard.category.ct_image"),
  voice_note: () => t("modelcard.category.voice_note"),
  emr_entry: () => t("modelcard.category.emr_entry"),
};

/** @type {Record<string, () => string>} */
const STATUS = {
  champion: () => t("modelcard.status.champion"),
  retired: () => t("modelcard.status.retired"),
  withdrawn: () => t("modelcard.status.withdrawn"),
  rejected: () => t("modelcard.status.rejected"),
};

/** @param {string} c */
const branchName = (c) => (CATEGORY[c] || (() => c))();
/** @param {number | undefined} v */
const pct = (v) => (typeof v === "number" ? `${(100 * v).toFixed(1)} %` : "—");
/** @param {number | undefined} v */
const num = (v) => (typeof v === "number" ? v.toFixed(3) : "—");
/** @param {any} v @returns {string[]} */
const texts = (v) => (Array.isArray(v) ? v.map(String) : typeof v === "string" && v ? [v] : []);

/**
 * The card's intended use in the page's language (its Chinese variant if it has one).
 * @param {Record<string, any>} card
 */
export function intendedUse(card) {
  if (lang() === "zh-CN" && typeof card.intended_use_zh === "string" && card.intended_use_zh) return card.intended_use_zh;
  return String(card.intended_use || "");
}

/**
 * Where the model stands on this server.
 * @param {CardPage} page
 */
export function statusText(page) {
  const registry = page.status ? (STATUS[page.status] || (() => page.status || ""))() : t("modelcard.status.none");
  return page.in_use ? t("modelcard.status.in_use_with", { status: registry }) : registry;
}

/**
 * One row per branch: its data, test n, int8 accuracy with its interval, balanced accuracy,
 * ECE, float32 accuracy, fusion weight (pure: node tests call it).
 * @param {Record<string, any>} card
 * @returns {string[][]}
 */
export function metricRows(card) {
  const branches = card.branches || {};
  const intervals = (card.evaluation || {}).test_accuracy_95 || {};
  const weights = (card.fusion || {}).weights || {};
  return CATEGORIES.filter((c) => c in branches).map((c) => {
    const test = ((branches[c].metrics || {}).test) || {};
    /** @type {Scores} */ const int8 = test.int8 || {};
    /** @type {Scores} */ const fp32 = test.float32 || {};
    /** @type {Data} */ const data = branches[c].training_data || (card.training_data || {})[c] || {};
    const ci = intervals[c];
    return [
      branchName(c),
      data.synthetic ? t("modelcard.data.synthetic") : t("modelcard.data.real"),
      String(int8.n ?? "—"),
      pct(int8.accuracy),
      Array.isArray(ci) ? t("modelcard.metrics.interval", { low: pct(ci[0]), high: pct(ci[1]) }) : "—",
      pct(int8.balanced_accuracy),
      num(int8.ece),
      pct(fp32.accuracy),
      num(weights[c]),
    ];
  });
}

/**
 * The logistic-regression baseline beside the EMR branch.
 * @param {Record<string, any>} card
 */
export function baselineText(card) {
  const baseline = (card.evaluation || {}).emr_baseline;
  if (!baseline || !baseline.test) return "";
  const test = baseline.test;
  const ci = Array.isArray(test.accuracy_95) ? test.accuracy_95 : [undefined, undefined];
  return t("modelcard.metrics.baseline", {
    model: String(baseline.model || ""), accuracy: pct(test.accuracy), low: pct(ci[0]), high: pct(ci[1]),
    balanced: pct(test.balanced_accuracy), n: test.n ?? "—",
  });
}

/**
 * Per branch: where its training data came from, real or synthetic, records per label.
 * @param {Record<string, any>} card @returns {string[]}
 */
export function trainingLines(card) {
  const sources = card.training_data || {};
  const branches = card.branches || {};
  return CATEGORIES.filter((c) => c in sources || c in branches).map((c) => {
    /** @type {Data} */ const data = (branches[c] || {}).training_data || sources[c] || {};
    const records = Object.entries(data.records || {}).map(([label, n]) => `${label} ${n}`).join(t("common.list_separator"));
    const split = data.split ? t("modelcard.training.split", { train: data.split.train ?? 0, val: data.split.val ?? 0, test: data.split.test ?? 0 }) : "";
    return t("modelcard.training.line", {
      branch: branchName(c),
      data: data.synthetic ? t("modelcard.data.synthetic") : t("modelcard.data.real"),
      source: String(data.source || "—"),
      records: records || "—",
      split,
    });
  });
}

/**
 * How many clinic cases trained it.
 * @param {CardPage} page
 */
export function clinicCasesText(page) {
  const cases = Number(page.card.clinic_cases || 0);
  return t("modelcard.training.clinic_cases", { count: cases, patients: page.training_patients });
}

/** @param {string} id @param {string[]} lines */
function fillList(id, lines) {
  const items = lines.length ? lines : [t("modelcard.none")];
  $(id).replaceChildren(...items.map((line) => el("li", null, line)));
}

/** @param {CardPage} page */
function render(page) {
  const card = page.card;
  const model = card.model || {};
  const training = card.training || {};
  $("version").textContent = page.version;
  /** @type {[string, string][]} */
  const details = [
    [t("modelcard.details.version"), page.version],
    [t("modelcard.details.status"), statusText(page)],
    [t("modelcard.details.decision"), page.decision || "—"],
    [t("modelcard.details.created"), card.created ? formatDateTime(card.created) : "—"],
    [t("modelcard.details.disease_area"), String(card.disease_area || "—")],
    [t("modelcard.details.labels"), texts(card.labels).join(t("common.list_separator"))],
    [t("modelcard.details.file"), String(model.file || "—")],
    [t("modelcard.details.sha256"), String(model.sha256 || "—")],
    [t("modelcard.details.format"), String(model.format || "—")],
    [t("modelcard.details.quantization"), String((card.quantization || {}).method || "—")],
    [t("modelcard.details.framework"), String(training.framework || "—")],
  ];
  $("details").replaceChildren(...details.flatMap(([k, v]) => [el("dt", null, k), el("dd", null, v)]));
  $("intended").textContent = intendedUse(card);
  fillList("out-of-scope", texts(card.out_of_scope_use));
  fillList("factors", texts(card.factors));
  const head = [
    t("modelcard.metrics.col.branch"), t("modelcard.metrics.col.data"), t("modelcard.metrics.col.n"),
    t("modelcard.metrics.col.accuracy"), t("modelcard.metrics.col.interval"), t("modelcard.metrics.col.balanced"),
    t("modelcard.metrics.col.ece"), t("modelcard.metrics.col.float32"), t("modelcard.metrics.col.weight"),
  ];
  $("metrics").replaceChildren(el("table", { class: "metrics" },
    el("caption", null, t("modelcard.metrics.caption")),
    el("thead", null, el("tr", null, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", null, ...metricRows(card).map((row) => el("tr", null,
      el("th", { scope: "row" }, row[0]), ...row.slice(1).map((cell) => el("td", null, cell))))),
  ));
  $("baseline").textContent = baselineText(card);
  const evaluation = card.evaluation || {};
  $("protocol").textContent = String(evaluation.protocol || "");
  const frozen = evaluation.frozen_test || {};
  fillList("frozen", Object.entries(frozen).map(([c, keys]) => t("modelcard.evaluation.frozen", {
    branch: branchName(c), count: Array.isArray(keys) ? keys.length : 0,
  })));
  $("clinic-cases").textContent = clinicCasesText(page);
  fillList("training", trainingLines(card));
  fillList("ethics", texts(card.ethical_considerations));
  fillList("caveats", [...texts(card.caveats), ...texts(card.notes)]);
  $("card").hidden = false;
}

if (typeof document !== "undefined" && $("card")) {
  const api = createApi();
  mountSwitch($("language-slot"), api);
  const version = decodeURIComponent(location.pathname.split("/")[2] || "");
  (async () => {
    try {
      render(await api.call("GET", `/api/models/${encodeURIComponent(version)}/card`));
      say("");
    } catch (e) {
      say(problem(e), "error");
    }
  })();
}
