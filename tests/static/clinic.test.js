// node --test: the pure parts of the clinic staff's patients page and the import summary.
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { importPatientsText } from "../../server/static/admin_import.js";
import { registrationBody, resultsSummary, searchUrl } from "../../server/static/clinic_patients.js";

test("clinic page: the registration asks every consent, and leaves empty optional texts out", () => {
  const body = registrationBody({
    identifier: " H-1 ", name: " 王芳 ", sex: "female", birthDate: "1958-07-01",
    clinic: "", group: "  ", training: false, export: true,
  });
  assert.deepEqual(body, {
    identifier: "H-1", name: "王芳", sex: "female", birth_date: "1958-07-01",
    consent: { training: false, export: true, recording: false },
  });
  assert.equal(registrationBody({ identifier: "a", name: "b", sex: "male", birthDate: "2000-01-01",
    clinic: "Vale Clinic", group: "vale", training: true, export: false }).clinic, "Vale Clinic");
  assert.equal(registrationBody({ identifier: "a", name: "b", sex: "male", birthDate: "2000-01-01",
    training: false, export: false, recording: true }).consent.recording, true);
});

test("clinic page: search URLs and the page summary", () => {
  assert.equal(searchUrl(" 王 ", 2), "/api/patients?q=%E7%8E%8B&page=2&per_page=20");
  assert.equal(resultsSummary({ total: 0, page: 1, per_page: 20, patients: [] }), "");
  assert.equal(resultsSummary({ total: 45, page: 3, per_page: 20, patients: [1, 2, 3, 4, 5] }),
    "45 patients: 41–45 shown");
});

test("import summary: which patients were matched by identifier, which created", () => {
  assert.equal(importPatientsText({ state: "done", patients: ["P-1", "H-9"], matched: ["P-1"], created: ["H-9"] }),
    "Matched to registered patients by identifier: P-1. New patients created: H-9.");
  assert.equal(importPatientsText({ state: "done", patients: [] }), "No patients in this bundle.");
  assert.equal(importPatientsText({ state: "failed", patients: [] }), "");
});
