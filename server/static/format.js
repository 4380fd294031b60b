// Times, durations and sizes as the pages show them (ES module, pure): in the page's
// language (i18n.js) and the browser's time zone.
import { lang, t } from "./i18n.js";

/** @param {string | null | undefined} iso */
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(lang(), { dateStyle: "medium", timeStyle: "short" });
}

/** @param {string} iso */
export function fmtSecondsClock(iso) {
  return new Date(iso).toLocaleTimeString(lang(), { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** @param {string} iso */
export function fmtClock(iso) {
  return new Date(iso).toLocaleTimeString(lang(), { hour: "2-digit", minute: "2-digit" });
}

/**
 * How long until `iso`, in words ("12 min left", "剩余 12 分钟").
 * @param {string} iso
 * @param {number} [now] milliseconds since the epoch (default: now)
 */
export function fmtLeft(iso, now = Date.now()) {
  const minutes = Math.round((new Date(iso).getTime() - now) / 60000);
  if (minutes < 1) return t("common.left.under_a_minute");
  if (minutes < 60) return t("common.left.minutes", { count: minutes });
  const h = Math.floor(minutes / 60), m = minutes % 60;
  if (h >= 48) return t("common.left.days", { count: Math.round(h / 24) });
  return m ? t("common.left.hours_minutes", { h, m }) : t("common.left.hours", { count: h });
}

/**
 * A duration as m:ss.
 * @param {number | null | undefined} s seconds
 */
export function fmtSeconds(s) {
  if (s === null || s === undefined) return "";
  const total = Math.round(s);
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}

/**
 * A duration in minutes as an access request asks for it ("default" for none).
 * @param {number | null | undefined} minutes
 */
export function fmtMinutes(minutes) {
  if (!minutes) return t("common.duration.default");
  if (minutes < 60) return t("common.duration.minutes", { count: minutes });
  if (minutes % 60 === 0) return t("common.duration.hours", { count: minutes / 60 });
  return t("common.duration.hours_minutes", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

/**
 * A record file's size (B, KB, MB).
 * @param {number | null | undefined} bytes
 */
export function fmtSize(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024) return t("common.size.bytes", { n: bytes });
  if (bytes < 1024 * 1024) return t("common.size.kib", { n: (bytes / 1024).toFixed(0) });
  return t("common.size.mb", { n: (bytes / 1024 / 1024).toFixed(1) });
}

/**
 * A release wheel's size (at least 1 kB, then MB).
 * @param {number} n bytes
 */
export function fmtBytes(n) {
  if (n >= 1048576) return t("common.size.mb", { n: (n / 1048576).toFixed(1) });
  return t("common.size.kb", { n: Math.max(1, Math.ceil(n / 1024)) });
}

/**
 * A time as the value a datetime-local input shows (local time, seconds).
 * @param {string | number | Date} when
 */
export function toLocalInput(when) {
  const d = new Date(when);
  /** @param {number} n */
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
