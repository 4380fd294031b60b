// The pages' two languages (ES module): one JSON catalogue per language (/static/i18n/),
// `t(key, params)` for text made in code, `data-i18n` attributes for text in the HTML, and
// the switch every page shows. The server picks the language (the person's choice, else
// the browser's, else the site's) and writes it into <html lang>; loading this module loads
// that catalogue (top-level await), so a page's own modules run with their words ready.

/** The languages offered, each named in itself. */
export const OFFERED = [
  { code: "zh-CN", name: "中文" }, // i18n: not for people (each language named in itself)
  { code: "en", name: "English" },
];

let current = "en";
/** @type {Record<string, any>} */
let strings = {};
/** @type {Record<string, any>} */
let english = {};

/** The page's language: "zh-CN" or "en". */
export function lang() {
  return current;
}

/**
 * One of the offered codes for a language tag ("zh", "zh-Hans-CN", "en-GB"); else "en".
 * @param {string | null | undefined} tag
 */
export function normalize(tag) {
  const t = (tag || "").toLowerCase();
  return t.startsWith("zh") ? "zh-CN" : "en";
}

/**
 * Use `catalogue` for `code` (English for keys it lacks). Node tests call this directly.
 * @param {string} code @param {Record<string, any>} catalogue @param {Record<string, any>} [fallback]
 */
export function setCatalogue(code, catalogue, fallback = catalogue) {
  current = normalize(code);
  strings = catalogue;
  english = fallback;
}

/**
 * The text for `key` in the page's language, `{name}` placeholders filled from `params`.
 * A value may be {one, other} (chosen by `params.count`). An unknown key shows itself.
 * @param {string} key @param {Record<string, string | number>} [params]
 * @returns {string}
 */
export function t(key, params = {}) {
  let value = key in strings ? strings[key] : english[key];
  if (value === undefined) return key;
  if (typeof value === "object" && value !== null) {
    const form = new Intl.PluralRules(current).select(Number(params.count ?? 0));
    value = value[form] ?? value.other;
  }
  return String(value).replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/**
 * Fill the texts of `root`: `data-i18n="key"` sets the text, `data-i18n-attr="attr:key;…"`
 * sets attributes (title, placeholder, aria-label, alt).
 * @param {ParentNode} root
 */
export function applyTo(root) {
  for (const node of root.querySelectorAll("[data-i18n]")) {
    node.textContent = t(/** @type {HTMLElement} */ (node).dataset.i18n || "");
  }
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of (/** @type {HTMLElement} */ (node).dataset.i18nAttr || "").split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) node.setAttribute(attr, t(key));
    }
  }
}

/** @param {string} code */
async function fetchCatalogue(code) {
  const resp = await fetch(`/static/i18n/${code}.json`, { credentials: "same-origin" });
  if (!resp.ok) throw new Error(`catalogue ${code}: HTTP ${resp.status}`);
  return resp.json();
}

/**
 * Load the catalogue of the page's <html lang> and fill the page's texts.
 * @param {Document} doc
 */
export async function load(doc) {
  const code = normalize(doc.documentElement.lang);
  try {
    // Both at once: on a 3G link a second round trip costs as much as the first.
    const [en, own] = await Promise.all([
      fetchCatalogue("en"), code === "en" ? null : fetchCatalogue(code),
    ]);
    setCatalogue(code, own || en, en);
  } catch (e) {
    // Without a catalogue the keys would show; keep the HTML's own (English) words instead.
    console.error("clinicam i18n:", e);
    return;
  }
  doc.documentElement.lang = current;
  applyTo(doc);
}

/**
 * A date and time in the page's language and the viewer's time zone.
 * @param {string | number | Date} when @param {Intl.DateTimeFormatOptions} [options]
 */
export function formatDateTime(when, options = { dateStyle: "medium", timeStyle: "short" }) {
  return new Intl.DateTimeFormat(current, options).format(new Date(when));
}

/**
 * The language switch: a labelled <select> that stores the choice (for the signed-in person
 * and, by cookie, this browser) and reloads the page in the chosen language.
 * @param {HTMLElement} container where it goes
 * @param {{call: (method: string, url: string, body?: any) => Promise<any>,
 *   session?: () => Promise<any>}} api the page's client
 */
export function mountSwitch(container, api) {
  const select = document.createElement("select");
  select.id = "language";
  select.className = "language-switch";
  select.setAttribute("aria-label", t("common.language"));
  for (const { code, name } of OFFERED) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = name;
    option.lang = code;
    option.selected = code === current;
    select.append(option);
  }
  select.addEventListener("change", async () => {
    select.disabled = true;
    try {
      try {
        await api.call("POST", "/api/locale", { locale: select.value });
      } catch (e) {
        // Signed in, but this page has no CSRF token yet (the sign-in page): fetch it, retry.
        if (!e || e.status !== 403 || !api.session) throw e;
        await api.session();
        await api.call("POST", "/api/locale", { locale: select.value });
      }
      location.reload();
    } catch (e) {
      select.disabled = false;
      select.value = current;
    }
  });
  container.append(select);
  return select;
}

if (typeof document !== "undefined") await load(document);
