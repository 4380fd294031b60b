// The one API client of the pages (ES module): JSON in and out, the CSRF header of a signed-in
// session (or a device's bearer token), one error shape, and the way to the sign-in page
// when the session has ended (401). Each page makes its own client with createApi().
import { t } from "./i18n.js";

/** What the server answers when it refuses: {error: what a person reads, code: what code reads}. */
export class ApiError extends Error {
  /**
   * @param {string} message the server's `error`, or "HTTP <status>"
   * @param {number} status the HTTP status
   * @param {string | null} code the server's machine-readable `code`, if any
   * @param {any} data the whole JSON answer (null when it was not JSON)
   */
  constructor(message, status, code, data) {
    super(message);
    this.status = status;
    this.code = code;
    this.data = data;
  }
}

/**
 * The error for a refused request.
 * @param {number} status
 * @param {any} data the JSON answer, or null
 * @returns {ApiError}
 */
export function apiError(status, data) {
  const body = data && typeof data === "object" ? data : {};
  const message = typeof body.error === "string" && body.error ? body.error : `HTTP ${status}`;
  return new ApiError(message, status, typeof body.code === "string" ? body.code : null, data);
}

/**
 * A response text as JSON, or null when it is not JSON.
 * @param {string} text
 * @returns {any}
 */
export function parseJson(text) {
  try { return JSON.parse(text); } catch (e) { return null; }
}

/**
 * The sign-in page that comes back to `path` afterwards.
 * @param {string} path the page's path and query
 */
export function signInUrl(path) {
  return `/login?next=${encodeURIComponent(path)}`;
}

/**
 * Where to go after signing in: `next` when it is a path on this server, else "/" (never
 * "//host" or "/\\host", which browsers treat as other hosts).
 * @param {string | null} next
 */
export function safeNext(next) {
  if (!next) return "/";
  const local = next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\");
  return local ? next : "/";
}

/**
 * @typedef {object} Api
 * @property {(method: string, url: string, body?: any) => Promise<any>} call a JSON request
 * @property {(url: string) => Promise<Response>} fetchOk a GET whose answer is not JSON
 *   (a download, an image): the response when it is OK, else an ApiError
 * @property {(method: string, contentType?: string) => Record<string, string>} headers
 *   the headers every request of this client carries
 * @property {(status: number, data: any, url?: string) => any} check the answer's data, or
 *   the ApiError (and the way to the sign-in page on 401; not for the sign-in request `url`)
 * @property {() => Promise<any>} session the signed-in session (keeps its CSRF token)
 * @property {() => void} forgetSession drop the CSRF token (a restarted server)
 * @property {() => Promise<void>} logout sign out and go to the sign-in page
 * @property {string | null} csrf the session's CSRF token (read only)
 */

/**
 * A client for one page.
 * @param {{token?: string, signIn?: boolean}} [options] `token`: a device's bearer token
 *   (the clinic station); `signIn`: go to the sign-in page on 401 (default true).
 * @returns {Api}
 */
export function createApi(options = {}) {
  const token = options.token || "";
  const signIn = options.signIn !== false;
  /** @type {string | null} */
  let csrf = null;

  /** @param {string} method @param {string} [contentType] */
  function headers(method, contentType) {
    /** @type {Record<string, string>} */
    const h = { "Accept": "application/json" };
    if (contentType) h["Content-Type"] = contentType;
    if (token) h["Authorization"] = `Bearer ${token}`;
    else if (method !== "GET" && csrf) h["X-CSRF-Token"] = csrf;
    return h;
  }

  /** @param {number} status @param {any} data @param {string} [url] */
  function check(status, data, url) {
    if (status === 401 && signIn && !(url || "").endsWith("/api/login")) {
      location.href = signInUrl(location.pathname + location.search);
      throw new ApiError(t("common.not_signed_in"), 401, null, data);
    }
    if (status < 200 || status >= 300) throw apiError(status, data);
    return data;
  }

  /** @param {string} method @param {string} url @param {any} [body] */
  async function call(method, url, body) {
    const resp = await fetch(url, {
      method, headers: headers(method, body === undefined ? undefined : "application/json"),
      credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return check(resp.status, data, url);
  }

  /** @param {string} url */
  async function fetchOk(url) {
    const resp = await fetch(url, { credentials: "same-origin", headers: token ? headers("GET") : {} });
    if (resp.ok) return resp;
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return check(resp.status, data, url);
  }

  async function session() {
    const s = await call("GET", "/api/session");
    csrf = s.csrf;
    return s;
  }

  async function logout() {
    try { await call("POST", "/api/logout", {}); } finally { location.href = "/login"; }
  }

  return {
    call, fetchOk, headers, check, session, logout,
    forgetSession() { csrf = null; },
    get csrf() { return csrf; },
  };
}
