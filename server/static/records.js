// Patient records: pick a patient, get access (rule, admin approval or break-glass), then
// see and add photos, scans, CT slices, voice notes and record entries.
// Everything the server or a user typed is put in the page as text (never as HTML).
// This module starts the page; each part of it lives in its own records_*.js module.
import { createApi } from "./api.js";
import { $, inspectable, problem, say } from "./dom.js";
import { mountSwitch, t } from "./i18n.js";
import { accessPanel } from "./records_access.js";
import { videoArchive } from "./records_archive.js";
import { consentAndExport } from "./records_consent.js";
import { ctViewer } from "./records_ct.js";
import { emrEntries } from "./records_emr.js";
import { fhirDownloads } from "./records_fhir.js";
import { RecordsPage } from "./records_page.js";
import { callRecordings } from "./records_recordings.js";
import { patientChooser } from "./records_patients.js";
import { photoGallery } from "./records_photos.js";
import { uploadQueue } from "./records_uploads.js";
import { consultationReports } from "./records_reports.js";
import { recordsView } from "./records_view.js";
import { voiceNotes } from "./records_voice.js";

const params = new URLSearchParams(location.search);
const page = new RecordsPage(createApi());
Object.assign(page, {
  chooser: patientChooser(page),
  access: accessPanel(page),
  view: recordsView(page),
  photos: photoGallery(page),
  ct: ctViewer(page),
  voice: voiceNotes(page),
  emr: emrEntries(page),
  reports: consultationReports(page),
  consent: consentAndExport(page),
  fhir: fhirDownloads(page),
  archive: videoArchive(page),
  recordings: callRecordings(page),
  uploads: uploadQueue(page),
});

function setup() {
  $("logout").addEventListener("click", () => page.api.logout());
  mountSwitch(/** @type {HTMLElement} */ (document.querySelector("header")), page.api);
  for (const part of [page.chooser, page.access, page.view, page.photos, page.emr, page.consent,
    page.fhir, page.ct, page.archive, page.uploads]) {
    part.setup();
  }
  page.emr.resetForm();
}

// The browser tests send requests with the page's session (its CSRF token).
inspectable({ Api: () => page.api });

(async () => {
  setup();
  try {
    page.session = await page.api.session();
  } catch (e) {
    say(t("common.cannot_reach", { problem: problem(e) }), "error");
    return;
  }
  const session = page.session;
  $("who").textContent = session.display_name;
  $("admin-link").hidden = session.role !== "admin";
  const cid = params.get("consultation");
  if (cid) {
    page.consultation = session.consultations.find((/** @type {{id: string}} */ c) => c.id === cid) || null;
    if (!page.consultation) say(t("records.not_invited"), "error");
  }
  const wanted = params.get("patient");
  if (wanted) {
    await page.chooser.openPatient(wanted);
    return;
  }
  try {
    await page.chooser.loadPatients();
    say(page.patients.length ? t("records.choose_to_open") : t("records.type_to_ask"));
  } catch (e) {
    say(t("records.list_failed", { problem: problem(e) }), "error");
  }
})();
