// Voice notes: one player per note, newest first.
import { $, el } from "./dom.js";
import { fmtSeconds, fmtTime } from "./format.js";

/** @param {import("./records_page.js").RecordsPage} page */
export function voiceNotes(page) {
  /** @param {import("./records_page.js").RecordItem[]} items */
  function render(items) {
    const list = $("voice");
    list.replaceChildren();
    $("voice-empty").hidden = items.length > 0;
    $("voice-title").textContent = `Voice notes${items.length ? ` (${items.length})` : ""}`;
    for (const item of [...items].reverse()) {
      const title = item.title || `Voice note ${item.id}`;
      const meta = [fmtTime(item.created_at), fmtSeconds(item.duration_s), item.created_by && `by ${item.created_by}`]
        .filter(Boolean).join(" · ");
      const li = el("li", { class: "voice-item", dataset: { id: String(item.id) } },
        el("div", {}, el("span", { class: "thumb-title" }, title), " ", el("span", { class: "muted" }, meta)),
        el("audio", {
          controls: true, preload: "metadata", src: page.recordUrl(item, "content"), "aria-label": title,
          onerror: () => page.access.checkStillValid(),
        }));
      const shareIt = page.view.shareButton(item);
      if (shareIt) li.append(shareIt);
      list.append(li);
    }
  }

  return { render };
}
