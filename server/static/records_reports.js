// Consultation reports of the open patient: each signed version with its text, signer,
// version history and whether its signature checks out here; downloads of the signed
// envelope, the PDF (in the reader's language) and FHIR.
import { $, el, problem } from "./dom.js";
import { formatDateTime, t } from "./i18n.js";

/**
 * One labelled block of the report's text.
 * @param {string} label @param {string | null | undefined} text
 */
function block(label, text) {
  return el("div", { class: "report-block" }, el("h5", {}, label), el("p", { class: "report-text" }, text || "—"));
}

/** @param {any} c the signed content */
function diagnoses(c) {
  const list = c.diagnoses || [];
  if (!list.length) return t("records.report.no_diagnosis");
  return list.map((/** @type {any} */ d) => t("records.report.diagnosis_line", { label: d.label, who: d.confirmed_by })).join("; ");
}

/** @param {any} c the signed content @param {string} locale */
function relevance(c, locale) {
  const r = c.relevance || {};
  const notice = (r.notice && (r.notice[locale] || r.notice.en)) || "";
  if (!r.result) return notice;
  const values = Object.entries(r.result.values).map(([k, v]) => `${k} ${Math.round(Number(v) * 100)}%`).join(", ");
  const caption = r.result.caption[locale] || r.result.caption.en;
  return `${values} — ${caption}`;
}

/** @param {import("./records_page.js").RecordsPage} page */
export function consultationReports(page) {
  /** @param {number} rid @param {string} what */
  const url = (rid, what) => `/api/patients/${page.open.pid}/reports/${rid}${what ? `/${what}` : ""}`;

  /** @param {any} body GET the report @param {HTMLElement} into */
  function detail(body, into) {
    const c = body.content || {};
    const locale = document.documentElement.lang === "zh-CN" ? "zh-CN" : "en";  // i18n: not for people (locale codes)
    const look = body.valid ? "badge ok" : "badge error";  // i18n: not for people (CSS classes)
    const badge = el("span", { class: look, role: "status" },
      body.valid ? t("records.report.valid") : t("records.report.invalid", { problem: body.problem || "" }));
    const signer = body.signer || {};
    const history = el("ol", { class: "report-history" }, ...body.history.map((/** @type {any} */ v) => el("li", {},
      t("records.report.version_line", { version: v.version, who: v.signed_by, when: formatDateTime(v.signed_at) }),
      v.supersedes ? ` · ${t("records.report.replaces", { digest: v.supersedes.slice(0, 16) })}` : "")));
    const [pdf, envelope, fhir] = ["pdf", "envelope", "fhir"].map((what) => url(body.record.id, what));  // i18n: not for people (URL parts)
    const downloads = el("p", { class: "downloads" },
      el("a", { href: pdf, download: "" }, t("records.report.pdf")), " · ",
      el("a", { href: envelope, download: "" }, t("records.report.envelope")), " · ",
      el("a", { href: fhir, download: "" }, t("records.report.fhir")));
    into.replaceChildren(
      el("p", {}, badge, " ", t("records.report.signed_by", {
        name: signer.display_name || signer.username || "?", when: formatDateTime(body.signed_at) })),
      el("p", { class: "muted" }, t("records.report.key", { key: body.key_id || "?", digest: body.digest })),
      block(t("records.report.reason"), c.reason),
      block(t("records.report.findings"), c.findings),
      block(t("records.report.recommendation"), c.recommendation),
      block(t("records.report.notes"), c.notes),
      block(t("records.report.diagnosis"), diagnoses(c)),
      block(t("records.report.relevance"), relevance(c, locale)),
      el("h5", {}, t("records.report.history")), history, downloads);
  }

  /** @param {import("./records_page.js").RecordItem[]} items */
  function render(items) {
    const list = $("reports");
    list.replaceChildren();
    $("reports-empty").hidden = items.length > 0;
    for (const item of [...items].reverse()) {
      const into = el("div", { class: "report-detail" }, t("records.report.loading"));
      list.append(el("li", { class: "report-item", dataset: { id: String(item.id) } },
        el("strong", {}, t("records.report.title", { title: item.title || item.consultation, version: item.version })),
        " ", el("span", { class: "muted" }, formatDateTime(item.signed_at)), into));
      page.patientCall("GET", `/reports/${item.id}`)
        .then((body) => detail(body, into))
        .catch((e) => { into.textContent = t("records.report.failed", { problem: problem(e) }); });
    }
  }

  return { render };
}
