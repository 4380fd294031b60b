// Record entries (EMR): the table of entries, and the form that adds one or edits one
// (an edited field keeps its kind: numbers stay numbers).
import { $, el, problem } from "./dom.js";
import { fmtTime, toLocalInput } from "./format.js";
import { t } from "./i18n.js";

/**
 * A field's value as the form shows it (text as it is, anything else as JSON).
 * @param {unknown} value
 */
export function fieldText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** @typedef {import("./records_page.js").RecordItem} RecordItem */

/** @param {import("./records_page.js").RecordsPage} page */
export function emrEntries(page) {
  /** @type {RecordItem | null} */
  let editingEntry = null;   // the entry being edited, or null when adding

  /** @param {RecordItem[]} items the patient's record entries */
  function render(items) {
    const body = $("emr-rows");
    body.replaceChildren();
    $("emr-empty").hidden = items.length > 0;
    $("emr-table").hidden = items.length === 0;
    const sorted = [...items].sort((a, b) =>
      new Date(b.recorded_at || b.created_at).getTime() - new Date(a.recorded_at || a.created_at).getTime() || b.id - a.id);
    for (const item of sorted) {
      const fields = el("dl", { class: "fields" });
      for (const [key, value] of Object.entries(item.fields || {})) {
        fields.append(el("div", {}, el("dt", {}, `${key}:`), el("dd", {}, fieldText(value))));
      }
      const actions = el("td", { class: "actions" });
      if (page.open.canEdit) {
        actions.append(el("button", {
          type: "button", textContent: t("records.emr.edit"),
          "aria-label": t("records.emr.edit_label", { time: fmtTime(item.recorded_at) }),
          onclick: () => startEditing(item),
        }));
      }
      const shareIt = page.view.shareButton({ ...item, title: t("records.emr.entry_of", { time: fmtTime(item.recorded_at) }) });
      if (shareIt) actions.append(shareIt);
      body.append(el("tr", { dataset: { id: String(item.id) } },
        el("td", { class: "nowrap" }, fmtTime(item.recorded_at || item.created_at)),
        el("td", {}, fields),
        el("td", { class: "muted" }, item.created_by || ""),
        actions));
    }
    $("emr-form").hidden = !page.open.canEdit;
    const editing = editingEntry;
    if (editing && !items.some((i) => i.id === editing.id)) resetForm();
  }

  /** @param {string} [key] @param {string} [value] */
  function addFieldRow(key, value) {
    const rows = $("emr-fields");
    const n = rows.children.length + 1;
    const keyInput = el("input", { class: "emr-key", value: key || "", maxLength: 200,
      "aria-label": t("records.emr.field_name", { n }), placeholder: t("records.emr.field_placeholder") });
    const valueInput = el("input", { class: "emr-value", value: value || "",
      "aria-label": t("records.emr.field_value", { n }), placeholder: t("records.emr.value_placeholder") });
    const row = el("div", { class: "row emr-row" }, keyInput, valueInput);
    row.append(el("button", {
      type: "button", textContent: "✕", "aria-label": t("records.emr.remove_field", { n }), title: t("records.emr.remove_this"),
      onclick: () => { row.remove(); if (!rows.children.length) addFieldRow(); },
    }));
    rows.append(row);
    return keyInput;
  }

  function resetForm() {
    editingEntry = null;
    $("emr-fields").replaceChildren();
    addFieldRow();
    $("emr-recorded-at").value = "";
    $("emr-recorded-at").disabled = false;
    $("emr-form-title").textContent = t("records.emr.add");
    $("emr-save").textContent = t("records.emr.save");
    $("emr-cancel").hidden = true;
  }

  /** @param {RecordItem} item */
  function startEditing(item) {
    editingEntry = item;
    $("emr-fields").replaceChildren();
    for (const [key, value] of Object.entries(item.fields || {})) addFieldRow(key, fieldText(value));
    $("emr-recorded-at").value = item.recorded_at ? toLocalInput(item.recorded_at).slice(0, 16) : "";
    $("emr-recorded-at").disabled = true;
    $("emr-form-title").textContent = t("records.emr.editing", { time: fmtTime(item.recorded_at) });
    $("emr-save").textContent = t("records.emr.save_changes");
    $("emr-cancel").hidden = false;
    $("emr-status").textContent = "";
    const first = $("emr-fields").querySelector(".emr-value");
    if (first) first.focus();
  }

  function collectFields() {
    /** @type {Record<string, unknown>} */
    const fields = {};
    for (const row of $("emr-fields").querySelectorAll(".emr-row")) {
      const key = row.querySelector(".emr-key").value.trim();
      const raw = row.querySelector(".emr-value").value;
      if (!key && !raw.trim()) continue;
      if (!key) throw new Error(t("records.emr.value_needs_name"));
      if (key in fields) throw new Error(t("records.emr.field_twice", { field: key }));
      let value = raw.trim();
      // An edited field keeps its kind: numbers stay numbers, text stays text.
      const before = editingEntry && editingEntry.fields ? editingEntry.fields[key] : undefined;
      if (before !== undefined && typeof before !== "string") {
        try { value = JSON.parse(value); } catch (e) { /* keep the text */ }
      }
      fields[key] = value;
    }
    if (!Object.keys(fields).length) throw new Error(t("records.emr.need_a_field"));
    return fields;
  }

  /** @param {Event} ev the form's submit */
  async function save(ev) {
    ev.preventDefault();
    const status = $("emr-status");
    status.classList.remove("error");
    let fields;
    try {
      fields = collectFields();
    } catch (e) {
      status.textContent = t("records.emr.not_saved_reason", { problem: e.message });
      status.classList.add("error");
      return;
    }
    const button = $("emr-save");
    button.disabled = true;
    try {
      if (editingEntry) {
        await page.patientCall("PATCH", `/records/emr_entry/${editingEntry.id}`, { fields });
        status.textContent = t("records.emr.changes_saved");
      } else {
        /** @type {{fields: Record<string, unknown>, recorded_at?: string}} */
        const body = { fields };
        const at = $("emr-recorded-at").value;
        if (at) body.recorded_at = new Date(at).toISOString();
        await page.patientCall("POST", "/emr", body);
        status.textContent = t("records.emr.saved");
      }
      resetForm();
      await page.chooser.refreshRecords();
    } catch (e) {
      status.textContent = t("records.emr.not_saved", { problem: problem(e) });
      status.classList.add("error");
    } finally {
      button.disabled = false;
    }
  }

  function setup() {
    $("emr-form").addEventListener("submit", save);
    $("emr-add-field").addEventListener("click", () => addFieldRow().focus());
    $("emr-cancel").addEventListener("click", () => { resetForm(); $("emr-status").textContent = ""; });
  }

  return { setup, render, resetForm };
}
