// The records page's state: who is signed in, the open patient, the consultation the page
// was opened from. One instance, made by records.js and handed to every part of the page;
// the parts (chooser, access, view, photos, ct, voice, emr, consent, archive, uploads)
// are set on it there, so that they can call each other.
/* global Api */  // api.js, a classic script shared with the other pages

export class RecordsPage {
  constructor() {
    this.session = null;
    this.patients = [];          // GET /api/patients
    this.current = null;         // {identifier, pid, data, canEdit}
    this.consultation = null;    // {id, patient, ...} when opened from a consultation
    this.openSeq = 0;            // the newest openPatient call; older ones drop their results
  }

  recordUrl(item, what) {
    return `/api/patients/${this.current.pid}/records/${item.category}/${item.id}/${what}`;
  }

  pendingKey(identifier) {
    return `clinicam.pending.${this.session.user}.${identifier}`;
  }

  // Is the open patient the consultation's patient (so things can be shared to it)?
  sharingHere() {
    return Boolean(this.consultation && this.current && this.consultation.patient === this.current.identifier);
  }

  // A request under /api/patients/<pid>/. A 404 there means the record is gone, or (far
  // more often) that our grant has ended: the access check tells which.
  async patientCall(method, path, body) {
    const pid = this.current.pid;
    try {
      return await Api.call(method, `/api/patients/${pid}${path}`, body);
    } catch (e) {
      if (e.status === 404) await this.access.checkStillValid();
      throw e;
    }
  }
}

export function opsText(ops) {
  return ops.includes("edit") ? "view and edit" : "view";
}
