// The REST API's readable page (issue 21, O8): the OpenAPI 3.1 document the server builds
// from its own routes and models (/api/openapi.json), grouped by the first part of the
// path. The page's words are in the reader's language; the summaries and field names are
// the developers' (English), as in the document itself.
import { createApi } from "./api.js";
import { $, el, problem, say } from "./dom.js";
import { mountSwitch, t } from "./i18n.js";

/** @typedef {{name: string, in: string, required?: boolean, schema?: Record<string, any>}} Parameter */
/**
 * @typedef {{summary?: string, tags?: string[], parameters?: Parameter[],
 *   requestBody?: {content: Record<string, {schema: Record<string, any>}>},
 *   responses?: Record<string, {description?: string}>, security?: Record<string, string[]>[]}} Operation
 */
/** @typedef {{method: string, path: string, op: Operation}} Entry */

const METHODS = ["get", "post", "put", "patch", "delete"];

/** @type {Record<string, () => string>} */
const WHERE = {
  path: () => t("apidocs.in.path"),
  query: () => t("apidocs.in.query"),
  header: () => t("apidocs.in.header"),
  cookie: () => t("apidocs.in.cookie"),
};

/**
 * Every operation of the document, grouped by its first tag, groups and paths sorted
 * (pure: node tests call it).
 * @param {Record<string, any>} doc
 * @returns {[string, Entry[]][]}
 */
export function groups(doc) {
  /** @type {Map<string, Entry[]>} */
  const out = new Map();
  for (const [path, item] of Object.entries(doc.paths || {}).sort(([a], [b]) => a.localeCompare(b))) {
    for (const method of METHODS) {
      /** @type {Operation | undefined} */ const op = item[method];
      if (!op) continue;
      const tag = (op.tags || [])[0] || "api";
      if (!out.has(tag)) out.set(tag, []);
      /** @type {Entry[]} */ (out.get(tag)).push({ method, path, op });
    }
  }
  return [...out.entries()].sort(([a], [b]) => a.localeCompare(b));
}

/**
 * The body's fields as rows [name, type, required] from its schema (a $ref into the
 * document's components is followed).
 * @param {Record<string, any>} doc @param {Record<string, any> | undefined} schema
 * @returns {string[][]}
 */
export function fieldRows(doc, schema) {
  const resolved = resolve(doc, schema);
  const required = new Set(resolved.required || []);
  return Object.entries(resolved.properties || {}).map(([name, prop]) => [
    name, typeName(doc, prop), required.has(name) ? t("apidocs.required") : t("apidocs.optional"),
  ]);
}

/** @param {Record<string, any>} doc @param {Record<string, any> | undefined} schema @returns {Record<string, any>} */
function resolve(doc, schema) {
  const ref = schema && schema.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/components/schemas/")) return schema || {};
  return ((doc.components || {}).schemas || {})[ref.slice("#/components/schemas/".length)] || {};
}

/**
 * A short type: "string", "integer[]", "string | null", a model's name.
 * @param {Record<string, any>} doc @param {Record<string, any>} prop @returns {string}
 */
export function typeName(doc, prop) {
  if (typeof prop.$ref === "string") return prop.$ref.split("/").pop() || "";
  if (Array.isArray(prop.anyOf)) return prop.anyOf.map((p) => typeName(doc, p)).join(" | ");
  if (prop.type === "array") return `${typeName(doc, prop.items || {})}[]`;
  if (Array.isArray(prop.enum)) return prop.enum.map(String).join(" | ");
  return String(prop.type || (prop.const !== undefined ? JSON.stringify(prop.const) : "any"));
}

/** @param {Record<string, any>} doc @param {Entry} entry */
function operation(doc, entry) {
  const { method, path, op } = entry;
  const params = (op.parameters || []).map((p) => el("li", null,
    el("code", { translate: "no" }, p.name), ` (${(WHERE[p.in] || (() => p.in))()})`,
    p.schema && p.schema.pattern ? el("code", { translate: "no", class: "muted" }, ` ${p.schema.pattern}`) : null));
  const body = op.requestBody ? (op.requestBody.content["application/json"] || {}).schema : undefined;
  const rows = body ? fieldRows(doc, body) : [];
  const codes = Object.entries(op.responses || {}).map(([code, r]) => `${code} ${r.description || ""}`);
  return el("article", { class: "panel api-operation", id: `${method}-${path}` },
    el("h4", null, el("span", { class: `api-method api-${method}`, translate: "no" }, method.toUpperCase()), " ",
      el("code", { translate: "no" }, path)),
    el("p", { translate: "no" }, op.summary || ""),
    op.security ? null : el("p", { class: "muted" }, t("apidocs.public")),
    params.length ? el("div", null, el("h5", null, t("apidocs.parameters")), el("ul", null, ...params)) : null,
    rows.length ? el("table", { class: "api-fields" },
      el("caption", null, t("apidocs.body")),
      el("thead", null, el("tr", null, ...[t("apidocs.col.field"), t("apidocs.col.type"), t("apidocs.col.required")]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", null, ...rows.map((r) => el("tr", null, el("th", { scope: "row", translate: "no" }, r[0]),
        el("td", { translate: "no" }, r[1]), el("td", null, r[2]))))) : null,
    el("p", null, t("apidocs.responses"), " ", el("span", { translate: "no" }, codes.join(" · "))),
  );
}

/** @param {Record<string, any>} doc */
function render(doc) {
  $("version").textContent = t("apidocs.version", { openapi: String(doc.openapi), version: String((doc.info || {}).version || "") });
  const all = groups(doc);
  $("groups").replaceChildren(...all.map(([tag, entries]) => el("li", null,
    el("a", { href: `#group-${tag}`, translate: "no" }, tag), ` (${t("apidocs.count", { count: entries.length })})`)));
  $("operations").replaceChildren(...all.map(([tag, entries]) => el("section", { id: `group-${tag}` },
    el("h3", { translate: "no" }, tag), ...entries.map((e) => operation(doc, e)))));
}

if (typeof document !== "undefined" && $("operations")) {
  const api = createApi();
  mountSwitch($("language-slot"), api);
  (async () => {
    try {
      render(await api.call("GET", "/api/openapi.json"));
      say("");
    } catch (e) {
      say(problem(e), "error");
    }
  })();
}
