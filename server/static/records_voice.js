// Voice notes: one player per note, newest first.
import { $, el } from "./dom.js";
import { fmtSeconds, fmtTime } from "./format.js";
import { t } from "./i18n.js";

/** @param {import("./records_page.js").RecordsPage} page */
export function voiceNotes(page) {
  /** @param {import("./records_page.js").RecordItem[]} items */
  function render(items) {
    const list = $("voice");
    list.replaceChildren();
    $("voice-empty").hidden = items.length > 0;
    const heading = t("records.voice.title");
    $("voice-title").textContent = items.length ? t("common.with_count", { title: heading, count: items.length }) : heading;
    for (const item of [...items].reverse()) {
      const title = item.title || t("records.voice.note_n", { id: item.id });
      const meta = [fmtTime(item.created_at), fmtSeconds(item.duration_s), item.created_by && t("records.voice.by", { name: item.created_by })]
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
