// Sending one file as a request's body, with its progress (ES module): record files on the
// records page, release wheels and FHIR Bundles on the admin page. The answer and its errors
// take the API client's shape (api.js), so a refused upload reads like any refused call.
import { parseJson } from "./api.js";
import { t } from "./i18n.js";

/**
 * The fraction of an upload sent so far, or null while it cannot be known.
 * @param {{lengthComputable: boolean, loaded: number, total: number}} ev
 * @returns {number | null}
 */
export function sentFraction(ev) {
  return ev.lengthComputable && ev.total ? Math.min(1, ev.loaded / ev.total) : null;
}

/** The error of an upload that never got an answer (no `status`, unlike an ApiError). */
export const BROKE_OFF = t("common.upload.broke_off");

/**
 * What a person reads when an upload did not go through: the server's words, or that the
 * upload broke off.
 * @param {any} e what uploadFile rejected with
 */
export function uploadProblem(e) {
  if (!e || !e.status) return BROKE_OFF;
  return (e.data && e.data.error) || t("common.upload.answered", { status: e.status });
}

/**
 * Send `file` to `url`; resolves with the answer's status and JSON data when the server
 * accepts it, rejects with an ApiError when it refuses, or with an Error without status
 * when the upload broke off.
 * @param {import("./api.js").Api} api
 * @param {{method: string, url: string, file: Blob, contentType?: string,
 *   onProgress?: (fraction: number) => void}} request
 * @returns {Promise<{status: number, data: any}>}
 */
export function uploadFile(api, request) {
  const { method, url, file, onProgress } = request;
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    const headers = api.headers(method, request.contentType || "application/octet-stream");
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (ev) => {
      const fraction = sentFraction(ev);
      if (fraction !== null && onProgress) onProgress(fraction);
    });
    xhr.addEventListener("load", () => {
      const data = parseJson(xhr.responseText);
      try {
        resolve({ status: xhr.status, data: api.check(xhr.status, data, url) });
      } catch (e) {
        reject(e);
      }
    });
    xhr.addEventListener("error", () => reject(new Error(BROKE_OFF)));
    xhr.send(file);
  });
}
