// Photos and scanned records as thumbnails (PDFs as tiles), and the overlay that shows
// a photo large.
import { $, el } from "./dom.js";
import { fmtSize, fmtTime } from "./format.js";

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
    $(`${containerId}-title`).textContent =
      `${kind === "photo" ? "Photos" : "Scanned records"}${items.length ? ` (${items.length})` : ""}`;
    for (const item of [...items].reverse()) {
      const title = item.title || (kind === "photo" ? `Photo ${item.id}` : `Scan ${item.id}`);
      const isImage = String(item.media_type).startsWith("image/");
      const figure = el("figure", { class: "thumb", dataset: { id: String(item.id), category: item.category } });
      if (isImage) {
        const img = el("img", { src: page.recordUrl(item, "thumbnail"), alt: title, loading: "lazy" });
        img.addEventListener("error", () => {
          img.replaceWith(el("span", { class: "no-preview" }, "No preview"));
          page.access.checkStillValid();
        });
        const full = BROWSER_IMAGES.has(item.media_type)
          ? page.recordUrl(item, "content") : page.recordUrl(item, "thumbnail");
        figure.append(el("button", {
          type: "button", class: "thumb-open", "aria-label": `Open ${title} large`,
          onclick: (ev) => openOverlay(full, title, ev.currentTarget),
        }, img));
      } else {
        const pages = item.page_count ? `${item.page_count} page${item.page_count === 1 ? "" : "s"}` : "document";
        figure.append(el("a", {
          class: "doc-tile", href: page.recordUrl(item, "content"), target: "_blank", rel: "noopener",
          "aria-label": `Open ${title} (PDF, ${pages}) in a new tab`,
        }, el("span", { class: "doc-icon", "aria-hidden": "true" }, "PDF"), el("span", {}, pages)));
      }
      const when = item.taken_at || item.created_at;
      const caption = el("figcaption", {}, el("span", { class: "thumb-title" }, title),
        el("span", { class: "muted" }, fmtTime(when)));
      if (item.source === "appliance snapshot") {
        caption.append(el("span", { class: "muted" },
          `Camera snapshot${item.requested_by ? ` by ${item.requested_by}` : ""}`));
      } else if (item.created_by) {
        caption.append(el("span", { class: "muted" }, `Added by ${item.created_by}`));
      }
      caption.append(el("a", { href: page.recordUrl(item, "content"), download: "", class: "small-link" },
        `Download (${fmtSize(item.size)})`));
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
