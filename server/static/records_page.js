// The records page's state: who is signed in, the open patient, the consultation the page
// was opened from. One instance, made by records.js and handed to every part of the page;
// the parts (chooser, access, view, photos, ct, voice, emr, consent, archive, uploads)
// are set on it there, so that they can call each other, and so is the page's API client.
import { t } from "./i18n.js";

/**
 * A record of the open patient, as GET /api/patients/<pid>/records lists it.
 * @typedef {{id: number, category: string, title?: string | null} & Record<string, any>} RecordItem
 * A patient of GET /api/patients: identifier, id, name (with access), grants, own request.
 * @typedef {{identifier: string, id: number, name?: string | null, grants: Grant[], request?: any}} Patient
 * @typedef {{operations: string[], expires_at: string, revoked_at?: string | null, break_glass?: boolean}} Grant
 */

export class RecordsPage {
  /** @param {import("./api.js").Api} api */
  constructor(api) {
    this.api = api;
    /** @type {any} */
    this.session = null;
    /** @type {Patient[]} */
    this.patients = [];          // GET /api/patients
    /** @type {{identifier: string, pid: number | null, data: any, canEdit: boolean} | null} */
    this.current = null;
    /** @type {any} */
    this.consultation = null;    // {id, patient, ...} when opened from a consultation
    this.openSeq = 0;            // the newest openPatient call; older ones drop their results
    // The parts of the page (records.js sets them right after making the page).
    /** @type {ReturnType<typeof import("./records_patients.js").patientChooser>} */
    this.chooser = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_access.js").accessPanel>} */
    this.access = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_view.js").recordsView>} */
    this.view = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_photos.js").photoGallery>} */
    this.photos = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_ct.js").ctViewer>} */
    this.ct = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_voice.js").voiceNotes>} */
    this.voice = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_emr.js").emrEntries>} */
    this.emr = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_reports.js").consultationReports>} */
    this.reports = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_consent.js").consentAndExport>} */
    this.consent = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_fhir.js").fhirDownloads>} */
    this.fhir = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_archive.js").videoArchive>} */
    this.archive = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_recordings.js").callRecordings>} */
    this.recordings = /** @type {any} */ (undefined);
    /** @type {ReturnType<typeof import("./records_uploads.js").uploadQueue>} */
    this.uploads = /** @type {any} */ (undefined);
  }

  /** The open patient: the parts that need one run only once a patient is open. */
  get open() {
    if (!this.current) throw new Error("no patient is open");  // i18n: not for people (a programming error)
    return this.current;
  }

  /** @param {RecordItem} item @param {string} what content, thumbnail, render, present */
  recordUrl(item, what) {
    return `/api/patients/${this.open.pid}/records/${item.category}/${item.id}/${what}`;
  }

  /**
   * Where this browser keeps the user's pending request for a patient (sessionStorage).
   * @param {string} identifier
   */
  pendingKey(identifier) {
    return `clinicam.pending.${this.session.user}.${identifier}`;
  }

  // Is the open patient the consultation's patient (so things can be shared to it)?
  sharingHere() {
    return Boolean(this.consultation && this.current && this.consultation.patient === this.current.identifier);
  }

  // A request under /api/patients/<pid>/. A 404 there means the record is gone, or (far
  // more often) that our grant has ended: the access check tells which.
  /** @param {string} method @param {string} path @param {any} [body] */
  async patientCall(method, path, body) {
    const pid = this.open.pid;
    try {
      return await this.api.call(method, `/api/patients/${pid}${path}`, body);
    } catch (e) {
      if (e.status === 404) await this.access.checkStillValid();
      throw e;
    }
  }
}

/** @param {string[]} ops */
export function opsText(ops) {
  return ops.includes("edit") ? t("records.ops.view_edit") : t("records.ops.view");
}
