// Photos and scanned records as thumbnails (PDFs as tiles), and the overlay that shows
// a photo large.
import { $, el } from "./dom.js";
import { fmtSize, fmtTime } from "./format.js";
import { t } from "./i18n.js";

const BROWSER_IMAGES = new Set(["image/jpeg", "image/png", "image/webp", "image/gif"]);

/** @param {import("./records_page.js").RecordsPage} page */
export function photoGallery(page) {
  /** @type {HTMLElement | null} */
  let overlayOpener = null;

  /**
   * @param {string} containerId photos or scans @param {import("./records_page.js").RecordItem[]} items
   * @param {string} kind photo or scan
   */
  function render(containerId, items, kind) {
    const box = $(containerId);
    box.replaceChildren();
    $(`${containerId}-empty`).hidden = items.length > 0;
    const heading = kind === "photo" ? t("records.photos.title") : t("records.scans.title");
    $(`${containerId}-title`).textContent =
      items.length ? t("common.with_count", { title: heading, count: items.length }) : heading;
    for (const item of [...items].reverse()) {
      const title = item.title ||
        (kind === "photo" ? t("records.photos.photo_n", { id: item.id }) : t("records.scans.scan_n", { id: item.id }));
      const isImage = String(item.media_type).startsWith("image/");
      const figure = el("figure", { class: "thumb", dataset: { id: String(item.id), category: item.category } });
      if (isImage) {
        const img = el("img", { src: page.recordUrl(item, "thumbnail"), alt: title, loading: "lazy" });  // i18n: not for people (a URL part)
        img.addEventListener("error", () => {
          img.replaceWith(el("span", { class: "no-preview" }, t("records.photos.no_preview")));
          page.access.checkStillValid();
        });
        const full = BROWSER_IMAGES.has(item.media_type)
          ? page.recordUrl(item, "content") : page.recordUrl(item, "thumbnail");
        figure.append(el("button", {
          type: "button", class: "thumb-open", "aria-label": t("records.photos.open_large", { title }),
          onclick: (ev) => openOverlay(full, title, ev.currentTarget),
        }, img));
      } else {
        const pages = item.page_count ? t("records.scans.pages", { count: item.page_count }) : t("records.scans.document");
        figure.append(el("a", {
          class: "doc-tile", href: page.recordUrl(item, "content"), target: "_blank", rel: "noopener",
          "aria-label": t("records.scans.open_pdf", { title, pages }),
        }, el("span", { class: "doc-icon", "aria-hidden": "true" }, "PDF"), el("span", {}, pages)));  // i18n: not for people (a format name)
      }
      const when = item.taken_at || item.created_at;
      const caption = el("figcaption", {}, el("span", { class: "thumb-title" }, title),
        el("span", { class: "muted" }, fmtTime(when)));
      if (item.source === "appliance snapshot") {  // i18n: not for people (the server's source value)
        caption.append(el("span", { class: "muted" },
          item.requested_by ? t("records.photos.snapshot_by", { name: item.requested_by }) : t("records.photos.snapshot")));
      } else if (item.created_by) {
        caption.append(el("span", { class: "muted" }, t("records.photos.added_by", { name: item.created_by })));
      }
      caption.append(el("a", { href: page.recordUrl(item, "content"), download: "", class: "small-link" },  // i18n: not for people (a URL part)
        t("records.photos.download", { size: fmtSize(item.size) })));
      figure.append(caption);
      const shareIt = page.view.shareButton(item);
      if (shareIt) figure.append(shareIt);
      box.append(figure);
    }
  }

  /** @param {string} src @param {string} caption @param {HTMLElement} [opener] gets the focus back */
  function openOverlay(src, caption, opener) {
    overlayOpener = opener || null;
    $("overlay-image").src = src;
    $("overlay-image").alt = caption;
    $("overlay-caption").textContent = caption;
    $("overlay").hidden = false;
    $("overlay-close").focus();
  }

  function closeOverlay() {
    if ($("overlay").hidden) return;
    $("overlay").hidden = true;
    $("overlay-image").removeAttribute("src");
    if (overlayOpener && document.contains(overlayOpener)) overlayOpener.focus();
    overlayOpener = null;
  }

  function setup() {
    $("overlay-close").addEventListener("click", closeOverlay);
    $("overlay").addEventListener("click", (/** @type {MouseEvent} */ ev) => { if (ev.target === $("overlay")) closeOverlay(); });
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && !$("overlay").hidden) { ev.preventDefault(); closeOverlay(); }
    });
  }

  return { setup, render, closeOverlay };
}
