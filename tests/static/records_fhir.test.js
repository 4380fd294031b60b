// node --test: the records page's FHIR downloads: the file name the server gives, and
// the de-identified download offered only with the patient's export consent.
import test from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { setCatalogue } from "../../server/static/i18n.js";
import { downloadName } from "../../server/static/dom.js";
import { fhirDownloads } from "../../server/static/records_fhir.js";

const read = (path) => JSON.parse(readFileSync(new URL(path, import.meta.url), "utf8"));

test("the download keeps the server's file name, else a neutral one", () => {
  assert.equal(downloadName('attachment; filename="P-1.fhir.json"', "x.json"), "P-1.fhir.json");
  assert.equal(downloadName(null, "record.fhir.json"), "record.fhir.json");
  assert.equal(downloadName("attachment", "record.fhir.json"), "record.fhir.json");
});

test("the de-identified download waits for export consent, in both languages", () => {
  const buttons = { "fhir-export-deid": { disabled: false, title: "" } };
  globalThis.document = /** @type {any} */ ({ getElementById: (id) => buttons[id] });
  const page = /** @type {any} */ ({ open: { data: { consent: { export: false } } } });
  const part = fhirDownloads(page);
  for (const [lang, file] of [["en", "en.json"], ["zh-CN", "zh-CN.json"]]) {
    const catalogue = read(`../../server/static/i18n/${file}`);
    setCatalogue(lang, catalogue);
    part.render();
    assert.equal(buttons["fhir-export-deid"].disabled, true);
    assert.equal(buttons["fhir-export-deid"].title, catalogue["records.consent.no_export_consent"]);
    for (const key of ["download", "download_deid", "downloaded", "failed", "note", "preparing"]) {
      assert.ok(catalogue[`records.fhir.${key}`], `${lang} records.fhir.${key}`);
    }
  }
  page.open.data.consent.export = true;
  part.render();
  assert.equal(buttons["fhir-export-deid"].disabled, false);
  delete globalThis.document;
});
