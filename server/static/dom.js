// Small DOM helpers shared by the pages (ES module): elements are built with text content
// only (record titles and EMR fields are user input).
import { t } from "./i18n.js";

/**
 * The page's element with this id. Typed loosely (`any`): each page knows what its ids are,
 * and the browser tests check that they are there.
 * @param {string} id
 * @returns {any}
 */
export const $ = (id) => document.getElementById(id);

/**
 * An element's properties for el(); listeners get the element as `currentTarget`.
 * @typedef {{[key: string]: any, onclick?: (ev: MouseEvent & {currentTarget: any}) => void,
 *   onchange?: (ev: Event & {currentTarget: any}) => void, onerror?: (ev: Event) => void}} Props
 */

/**
 * A new element: `props` are its properties (`class`, `dataset`, `on<event>` listeners,
 * attributes for names with a dash), `children` its nodes or texts (null ones left out).
 * @param {string} tag
 * @param {Props | null} [props]
 * @param {...(Node | string | null | undefined)} children
 * @returns {any}
 */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && !key.includes("-")) /** @type {any} */ (node)[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/**
 * What went wrong, for a person: the server's words, or that it cannot be reached.
 * @param {any} e
 */
export function problem(e) {
  if (e && e.status) return e.message;
  return t("common.unreachable");
}

/**
 * The page's status line (#status); kind "error" shows it as an error.
 * @param {string} text @param {string} [kind]
 */
export function say(text, kind) {
  const status = $("status");
  status.textContent = text || "";
  status.classList.toggle("error", kind === "error");
}

/**
 * The emptied <tbody id=id> of a list shown as table #id-table, or as the note #id-empty
 * when there are no rows.
 * @param {string} id @param {unknown[]} rows
 */
export function emptiedTable(id, rows) {
  const body = $(id);
  body.replaceChildren();
  $(`${id}-empty`).hidden = rows.length > 0;
  $(`${id}-table`).hidden = rows.length === 0;
  return body;
}

/**
 * Hand the browser tests (tests/e2e) and a person at the console the page's live objects
 * by name, read only: the one deliberate way a page module shows anything on `window`.
 * @param {Record<string, () => any>} handles
 */
export function inspectable(handles) {
  for (const [name, get] of Object.entries(handles)) {
    Object.defineProperty(window, name, { get, configurable: true });
  }
}

/** The file name the server gave (Content-Disposition), else ``fallback``.
 * @param {string | null} disposition @param {string} fallback */
export function downloadName(disposition, fallback) {
  const match = /filename="([^"]+)"/.exec(disposition || "");
  return match ? match[1] : fallback;
}

/**
 * Save a download's answer as a file under the name the server gave (else ``fallback``);
 * resolves to its size in bytes.
 * @param {Response} resp @param {string} fallback @returns {Promise<number>}
 */
export async function saveDownload(resp, fallback) {
  const blob = await resp.blob();
  const name = downloadName(resp.headers.get("Content-Disposition"), fallback);
  const link = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  return blob.size;
}
