// The CT viewer: series and slices in slice order, window centre/width (sliders and
// presets), mouse wheel and keyboard paging, and sharing the slice as it is shown.
import { $, el, problem } from "./dom.js";
import { t } from "./i18n.js";

/**
 * Slice order: by position along the axis (slices without one last), then by record id.
 * @param {{id: number, slice_position?: number | null}} a @param {{id: number, slice_position?: number | null}} b
 */
export function bySlice(a, b) {
  const pa = a.slice_position, pb = b.slice_position;
  if (pa === null || pa === undefined) return (pb === null || pb === undefined) ? a.id - b.id : 1;
  if (pb === null || pb === undefined) return -1;
  return pa - pb || a.id - b.id;
}

/** @typedef {import("./records_page.js").RecordItem & {slice_position?: number | null}} CtItem */

/** @param {import("./records_page.js").RecordsPage} page */
export function ctViewer(page) {
  /**
   * @type {{all: CtItem[], series: CtItem[], groups: Map<string, CtItem[]>, index: number,
   *   center: number | null, width: number | null, loading: boolean, queued: string | null}}
   */
  const ct = { all: [], series: [], groups: new Map(), index: 0, center: null, width: null, loading: false, queued: null };

  // A new patient: no series, no slice, nothing loading (the window stays as chosen).
  function reset() {
    ct.series = []; ct.all = []; ct.index = 0; ct.loading = false; ct.queued = null;
  }

  /** @param {CtItem[]} items the patient's CT images */
  function render(items) {
    ct.all = items;
    $("ct-empty").hidden = items.length > 0;
    $("ct-viewer").hidden = items.length === 0;
    const title = t("records.ct.title");
    $("ct-title").textContent = items.length ? t("common.with_count", { title, count: items.length }) : title;
    const select = $("ct-series");
    const groups = new Map();
    for (const item of items) {
      const key = item.series_uid || "unknown";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(item);
    }
    const previous = select.value;
    select.replaceChildren();
    let n = 0;
    for (const [uid, slices] of groups) {
      n += 1;
      const modality = slices[0].modality || "CT";
      const option = new Option(t("records.ct.series_option", { n, modality, count: slices.length }), uid);
      option.title = t("records.ct.series_title", { uid });
      select.append(option);
    }
    $("ct-series-field").hidden = groups.size < 2;
    if (groups.has(previous)) select.value = previous;
    if (!items.length) return;
    const keepId = ct.series[ct.index] ? ct.series[ct.index].id : null;
    ct.groups = groups;
    chooseSeries(select.value, keepId);
  }

  /** @param {string} uid the series @param {number | null} keepId the slice to stay on */
  function chooseSeries(uid, keepId) {
    ct.series = [...(ct.groups.get(uid) || [])].sort(bySlice);
    const list = $("ct-slices");
    list.replaceChildren();
    ct.series.forEach((item, i) => {
      const pos = item.slice_position === null || item.slice_position === undefined ? "" : ` · ${item.slice_position} mm`;  // i18n: not for people (a unit)
      list.append(el("li", {}, el("button", {
        type: "button", class: "ct-slice-button", dataset: { index: String(i) },
        textContent: t("records.ct.slice_n", { n: i + 1 }) + pos, onclick: () => showSlice(i),
      })));
    });
    const slider = $("ct-slice");
    slider.max = String(Math.max(0, ct.series.length - 1));
    const keep = keepId === null ? -1 : ct.series.findIndex((s) => s.id === keepId);
    showSlice(keep >= 0 ? keep : 0);
  }

  /** @param {CtItem} item */
  function ctRenderUrl(item) {
    const base = page.recordUrl(item, "render");
    if (ct.center === null || ct.width === null) return base;
    return `${base}?center=${encodeURIComponent(ct.center)}&width=${encodeURIComponent(ct.width)}`;
  }

  // Newest wins: while a slice loads, only the latest wanted picture is kept waiting.
  function requestCtImage() {
    const item = ct.series[ct.index];
    if (!item) return;
    const src = new URL(ctRenderUrl(item), location.href).href;
    const img = $("ct-image");
    if (ct.loading) { ct.queued = src; return; }
    ct.queued = null;
    if (img.src === src && img.complete) return;  // already showing it
    ct.loading = true;
    img.alt = t("records.ct.image_alt", { n: ct.index + 1, total: ct.series.length });
    img.src = src;
  }

  /** @param {boolean} ok */
  function ctImageDone(ok) {
    ct.loading = false;
    if (ct.queued && ct.queued !== $("ct-image").src) {
      const next = ct.queued;
      ct.queued = null;
      ct.loading = true;
      $("ct-image").src = next;
      return;
    }
    ct.queued = null;
    if (!ok) ctImageProblem();
  }

  async function ctImageProblem() {
    const src = $("ct-image").getAttribute("src");
    if (!src) return;
    try {
      await page.api.fetchOk(src);
    } catch (e) {
      $("ct-info").textContent = t("records.ct.cannot_show", { problem: problem(e) });
      if (e.status === 404) page.access.checkStillValid();
    }
  }

  /** @param {number} i */
  function showSlice(i) {
    if (!ct.series.length) return;
    ct.index = Math.max(0, Math.min(ct.series.length - 1, i));
    $("ct-slice").value = String(ct.index);
    $("ct-slice-value").textContent = t("records.ct.n_of_total", { n: ct.index + 1, total: ct.series.length });
    for (const b of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll(".ct-slice-button"))) {
      if (Number(b.dataset.index) === ct.index) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
    $("ct-prev").disabled = ct.index === 0;
    $("ct-next").disabled = ct.index === ct.series.length - 1;
    showCtInfo();
    requestCtImage();
  }

  function showCtInfo() {
    const item = ct.series[ct.index];
    if (!item) return;
    const parts = [t("records.ct.slice_of", { n: ct.index + 1, total: ct.series.length })];
    if (item.slice_position !== null && item.slice_position !== undefined) {
      parts.push(t("records.ct.position", { mm: item.slice_position }));
    }
    if (item.modality) parts.push(item.modality);
    parts.push(ct.center === null ? t("records.ct.own_window") : t("records.ct.window", { center: ct.center, width: String(ct.width) }));
    if (item.title) parts.push(item.title);
    $("ct-info").textContent = parts.join(" · ");
    $("ct-center-value").textContent = ct.center === null ? t("records.ct.from_file") : String(ct.center);
    $("ct-width-value").textContent = ct.width === null ? t("records.ct.from_file") : String(ct.width);
  }

  /** @param {number | null} center @param {number | null} width null: the file's own window */
  function setWindow(center, width) {
    ct.center = center;
    ct.width = width;
    if (center !== null) $("ct-center").value = String(center);
    if (width !== null) $("ct-width").value = String(width);
    showCtInfo();
    requestCtImage();
  }

  function setup() {
    const img = $("ct-image");
    img.addEventListener("load", () => ctImageDone(true));
    img.addEventListener("error", () => ctImageDone(false));
    $("ct-prev").addEventListener("click", () => showSlice(ct.index - 1));
    $("ct-next").addEventListener("click", () => showSlice(ct.index + 1));
    $("ct-slice").addEventListener("input", () => showSlice(Number($("ct-slice").value)));
    $("ct-series").addEventListener("change", () => chooseSeries($("ct-series").value, null));
    const fromSliders = () => setWindow(Number($("ct-center").value), Number($("ct-width").value));
    $("ct-center").addEventListener("input", fromSliders);
    $("ct-width").addEventListener("input", fromSliders);
    for (const b of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll(".ct-preset"))) {
      b.addEventListener("click", () => {
        if (b.dataset.center === "") setWindow(null, null);
        else setWindow(Number(b.dataset.center), Number(b.dataset.width));
      });
    }
    const stage = $("ct-stage");
    let wheel = 0;
    stage.addEventListener("wheel", (/** @type {WheelEvent} */ ev) => {
      if (!ct.series.length) return;
      ev.preventDefault();
      wheel += ev.deltaY;
      if (Math.abs(wheel) >= 40) {
        showSlice(ct.index + Math.sign(wheel));
        wheel = 0;
      }
    }, { passive: false });
    stage.addEventListener("keydown", (/** @type {KeyboardEvent} */ ev) => {
      /** @type {Record<string, number>} */
      const moves = { ArrowUp: -1, ArrowLeft: -1, PageUp: -5, ArrowDown: 1, ArrowRight: 1, PageDown: 5 };
      if (ev.key in moves) { ev.preventDefault(); showSlice(ct.index + moves[ev.key]); }
      else if (ev.key === "Home") { ev.preventDefault(); showSlice(0); }
      else if (ev.key === "End") { ev.preventDefault(); showSlice(ct.series.length - 1); }
    });
    $("ct-share").addEventListener("click", () => {
      const item = ct.series[ct.index];
      if (!item) return;
      const extra = ct.center === null ? {} : { center: ct.center, width: ct.width };
      page.view.share(item, extra);
    });
  }

  return { setup, reset, render };
}
