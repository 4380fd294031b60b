// Times, durations and sizes as the pages show them (ES module, pure).

/** @param {string | null | undefined} iso */
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** @param {string} iso */
export function fmtSecondsClock(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** @param {string} iso */
export function fmtClock(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/**
 * How long until `iso`, in words ("12 min left").
 * @param {string} iso
 * @param {number} [now] milliseconds since the epoch (default: now)
 */
export function fmtLeft(iso, now = Date.now()) {
  const minutes = Math.round((new Date(iso).getTime() - now) / 60000);
  if (minutes < 1) return "less than a minute left";
  if (minutes < 60) return `${minutes} min left`;
  const h = Math.floor(minutes / 60), m = minutes % 60;
  if (h >= 48) return `${Math.round(h / 24)} days left`;
  return m ? `${h} h ${m} min left` : `${h} h left`;
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
  if (!minutes) return "default";
  if (minutes < 60) return `${minutes} min`;
  if (minutes % 60 === 0) return `${minutes / 60} h`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/**
 * A record file's size (B, KB, MB).
 * @param {number | null | undefined} bytes
 */
export function fmtSize(bytes) {
  if (!bytes && bytes !== 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * A release wheel's size (at least 1 kB, then MB).
 * @param {number} n bytes
 */
export function fmtBytes(n) {
  if (n >= 1048576) return `${(n / 1048576).toFixed(1)} MB`;
  return `${Math.max(1, Math.ceil(n / 1024))} kB`;
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
