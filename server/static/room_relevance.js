// The room's decision-support panel (R7, R9, issue 18): the latest relevance with its
// basis (which branches and records, their own probabilities and weights, real or
// synthetic training data, skipped records and imputed fields, the producing model),
// always marked "decision support — not a diagnosis"; computing it; and recording the
// expert's own diagnosis in a separate confirm step that shows the model only as context.
import { $, el } from "./dom.js";
import { t } from "./i18n.js";

/** @typedef {{probabilities: number[], weight: number, data: string}} Branch */
/** @typedef {{category: string, id: number, probabilities?: number[], imputed?: string[], code?: string, reason?: string}} Item */
/**
 * @typedef {{caption: string, labels: string[], values: number[], model_version?: string,
 *   produced_by?: string, basis?: {branches?: Record<string, Branch>, items?: Item[],
 *   skipped?: Item[], synthetic_capped?: boolean,
 *   model?: {version: string, card_known: boolean}}}} Result
 */

/** @param {number} p */
const percent = (p) => `${(100 * p).toFixed(0)} %`;

/** @type {Record<string, () => string>} */
const CATEGORY = {
  clinical_photo: () => t("relevance.category.clinical_photo"),
  record_scan: () => t("relevance.category.record_scan"),
  ct_image: () => t("relevance.category.ct_image"),
  voice_note: () => t("relevance.category.voice_note"),
  emr_entry: () => t("relevance.category.emr_entry"),
};

/**
 * Why a record was not used, by the runtime's reason code.
 * @type {Record<string, () => string>}
 */
const SKIP = {
  out_of_scope: () => t("relevance.skip.out_of_scope"),
  too_few_fields: () => t("relevance.skip.too_few_fields"),
  synthetic: () => t("relevance.skip.synthetic"),
  not_reported: () => t("relevance.skip.not_reported"),
  unreadable: () => t("relevance.skip.unreadable"),
};

/** @param {string} category */
const branchName = (category) => (CATEGORY[category] || (() => category))();

/**
 * "benign 8 % · malignant 92 %" for `values` over `labels`.
 * @param {string[]} labels @param {number[]} values
 */
export function summary(labels, values) {
  return labels.map((label, i) => `${label} ${percent(values[i] ?? 0)}`).join(" · ");
}

/**
 * The basis as lines of text (pure: node tests call it).
 * @param {Result} r
 * @returns {{model: string, branches: string[], imputed: string[], skipped: string[], capped: string}}
 */
export function basisLines(r) {
  const basis = r.basis || {};
  const where = (r.produced_by || "").startsWith("appliance") ? t("relevance.where.appliance") : t("relevance.where.server");
  const version = (basis.model && basis.model.version) || r.model_version || "";
  const model = basis.model && !basis.model.card_known
    ? t("relevance.model_unknown", { version, where })
    : t("relevance.model", { version, where });
  const items = basis.items || [];
  const branches = Object.entries(basis.branches || {}).map(([category, b]) => t("relevance.basis.branch", {
    branch: branchName(category),
    data: b.data === "synthetic" ? t("relevance.data.synthetic") : t("relevance.data.real"),
    probabilities: summary(r.labels, b.probabilities),
    weight: b.weight.toFixed(2),
    items: t("relevance.basis.items", { count: items.filter((i) => i.category === category).length }),
  }));
  const imputed = items.filter((i) => i.imputed && i.imputed.length).map((i) => t("relevance.basis.imputed", {
    branch: branchName(i.category), id: i.id, fields: (i.imputed || []).join(", "),
  }));
  const skipped = (basis.skipped || []).map((i) => t("relevance.basis.skipped", {
    branch: branchName(i.category), id: i.id ?? "?", reason: (SKIP[i.code || "unreadable"] || SKIP.unreadable)(),
  }));
  return { model, branches, imputed, skipped, capped: basis.synthetic_capped ? t("relevance.basis.capped") : "" };
}

/**
 * The model card page of a model version (every relevance view links to it).
 * @param {string} version
 */
export const cardHref = (version) => `/models/${encodeURIComponent(version)}/card`;

/**
 * The confirm step's words: the expert's own finding first, the model only as context.
 * @param {string} label @param {Result | null} r
 */
export function confirmText(label, r) {
  return {
    question: t("relevance.confirm.question", { label }),
    context: r ? t("relevance.confirm.context", { summary: summary(r.labels, r.values) }) : "",
  };
}

/** @param {string} id @param {string} tag @param {Element} after @param {any} [props] */
function ensure(id, tag, after, props) {
  let node = $(id);
  if (!node) {
    node = el(tag, { id, ...props });
    after.after(node);
  }
  return node;
}

/** @type {Result | null} */
let shown = null;

export const RoomRelevance = {
  /**
   * The latest relevance: notice, values, caption, basis; the diagnosis choice (no default).
   * @param {Result | null} r room state's `relevance`
   */
  render(r) {
    const caption = $("relevance-caption");
    const notice = ensure("relevance-notice", "p", caption, { class: "notice" });
    notice.textContent = t("relevance.notice");
    if (!r) return;
    shown = r;
    caption.textContent = r.caption;
    const list = $("relevance-values");
    list.replaceChildren(...r.labels.map((label, i) => el("li", null, `${label}: ${percent(r.values[i])}`)));
    const version = (r.basis && r.basis.model && r.basis.model.version) || r.model_version || "";
    const card = ensure("relevance-card", "a", list, { target: "_blank", rel: "noopener" });
    card.href = cardHref(version);
    card.textContent = t("modelcard.link", { version });
    const details = ensure("relevance-basis", "details", card);
    const lines = basisLines(r);
    const rows = [lines.model, ...lines.branches, lines.capped, ...lines.imputed, ...lines.skipped];
    details.replaceChildren(
      el("summary", null, t("relevance.basis.title")),
      el("ul", null, ...rows.filter(Boolean).map((line) => el("li", null, line))),
    );
    const select = $("diagnosis-label");
    if (select.options.length !== r.labels.length + 1) {
      select.replaceChildren(
        new Option(t("relevance.confirm.choose"), ""),
        ...r.labels.map((label) => new Option(label, label)),
      );
    }
    select.disabled = false;
    $("diagnosis-confirm").disabled = !select.value;
  },

  /**
   * The "compute" button and the two-step diagnosis of consultation `cid` (API at `base`).
   * @param {{api: import("./api.js").Api, base: string, cid: string, patient: string}} room
   */
  setup({ api, base, cid, patient }) {
    const status = $("relevance-status");
    const select = $("diagnosis-label");
    const confirm = $("diagnosis-confirm");
    $("relevance-ask").addEventListener("click", async () => {
      status.textContent = t("relevance.ask.computing");
      try {
        const r = await api.call("POST", `${base}/relevance`, { where: "auto" });
        status.textContent = r.status === "computing" ? t("relevance.ask.appliance") : t("relevance.ask.server");
      } catch (e) { status.textContent = e.message; }
    });
    const question = el("p", { id: "diagnosis-question" });
    const context = el("p", { id: "diagnosis-context", class: "muted" });
    const record = el("button", { id: "diagnosis-record" }, t("relevance.confirm.record"));
    const cancel = el("button", { id: "diagnosis-cancel", type: "button" }, t("relevance.confirm.cancel"));
    const step = el("div", { id: "diagnosis-step", hidden: true, role: "group" }, question, context, el("div", { class: "row" }, record, cancel));
    confirm.closest(".row").after(step);
    select.addEventListener("change", () => { confirm.disabled = !select.value; });
    confirm.addEventListener("click", () => {
      if (!select.value) { status.textContent = t("relevance.confirm.none"); return; }
      const words = confirmText(select.value, shown);
      question.textContent = words.question;
      context.textContent = words.context;
      step.hidden = false;
      record.focus();
    });
    cancel.addEventListener("click", () => { step.hidden = true; confirm.focus(); });
    record.addEventListener("click", async () => {
      const label = select.value;
      step.hidden = true;
      if (!label) return;
      try {
        const grant = await api.call("POST", "/api/access", {
          patient, operations: ["view", "edit"], reason: t("relevance.confirm.grant_reason"),
        });
        if (grant.status !== "granted") { status.textContent = grant.message; return; }
        await api.call("POST", `/api/patients/${grant.patient_id}/diagnosis`, { label, consultation: cid });
        status.textContent = t("relevance.confirm.done", { label });
      } catch (e) { status.textContent = e.message; }
    });
  },
};
