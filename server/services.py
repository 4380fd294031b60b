"""The services the views call, built once from the app state and passed what they need.

:mod:`server.app` calls :func:`provide_services` before it adds the routes; each service
goes under its app key (defined next to the views that use it), and the views only
look it up. Nothing here handles a request: this is the composition of the records,
access, relevance, archive, fleet and presentation services.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, web
from sqlalchemy.orm import Session

from server.access.consent import ConsentRegister, current_consents, has_consent
from server.access.desk import AccessDesk
from server.access.grants import holds_edit_grant
from server.access.models import CONSENT_EXPORT
from server.access.registry import PatientRegistry
from server.archive.call_reader import CallRecordings
from server.archive.service import ArchiveReader, ShowNote
from server.config import ConsultationConfig
from server.consultation_notes.service import NotesVersion, SharedNotes
from server.directory.accounts import AccountDesk
from server.directory.agenda import ConsultationAgenda
from server.directory.broker_accounts import BrokerAccounts
from server.directory.consultations import ConsultationDesk
from server.directory.enrollment import EnrollmentDesk
from server.directory.invitations import InvitationPost
from server.erasure import erase_patient
from server.fhir_export import bundle_builder
from server.fleet.desk import ReleaseDesk
from server.fleet.releases import ReleaseStore
from server.preferences import PreferenceDesk
from server.presenting import PresentationService, Stages
from server.records.appliance_snapshots import SnapshotService
from server.records.filing import RecordFiling
from server.records.importer import ImportService
from server.records.ingest import IngestLimits
from server.records.service import RecordsService
from server.records.staging import STAGING_FOLDER
from server.relevance.desk import Publish, RelevanceDesk
from server.relevance.service import StoredRelevance
from server.relevance.withdrawal import RetireOnWithdrawal
from server.reports.envelope import KEY_FILE as REPORT_KEY_FILE
from server.reports.service import ReportService
from server.state import ServerState
from server.web.accounts import ACCOUNT_DESK
from server.web.archive import ARCHIVE_READER
from server.web.consultations import AGENDA, CONSULTATION_DESK
from server.web.enrollment import ENROLLMENT
from server.web.fleet import RELEASE_DESK, RELEASES
from server.web.guard import ACCESS_DESK, CONSENTS
from server.web.locale import PREFERENCES
from server.web.notes import NOTES
from server.web.patients import PATIENT_REGISTRY
from server.web.present import PRESENTATION
from server.web.recordings import CALL_RECORDINGS
from server.web.records import RECORDS
from server.web.records_import import IMPORTS
from server.web.relevance import RELEVANCE_DESK
from server.web.reports import REPORTS
from server.web.snapshots import SNAPSHOTS

_TASKS: set[asyncio.Task[None]] = set()


class _AccessConsents:
    """The access domain's consent book, as :class:`RecordsService` asks it."""

    def current(self, session: Session, patient_id: int) -> dict[str, Any]:
        return current_consents(session, patient_id)

    def allows_export(self, session: Session, patient_id: int) -> bool:
        return has_consent(session, patient_id, CONSENT_EXPORT)


def records_service(state: ServerState) -> RecordsService:
    """The records service and its filing pipeline, wired from the server's state."""
    staging = state.config.state_dir / STAGING_FOLDER
    staging.mkdir(parents=True, exist_ok=True)
    limits = IngestLimits(max_image_pixels=state.config.records.max_image_megapixels * 1_000_000)
    filing = RecordFiling(
        state.database,
        state.records,
        state.audit,
        staging=staging,
        limits=limits,
        may_edit=holds_edit_grant,
    )
    return RecordsService(
        state.database,
        state.records,
        filing,
        state.audit,
        _AccessConsents(),
        export_folder=staging,
        archive_root=state.archive.root,
        erase=erase_patient,
        fhir=bundle_builder(state.records),
    )


def _publisher(state: ServerState) -> Publish:
    """Show a new result in every open room of that patient (their charts redraw)."""

    def publish(result: StoredRelevance, patient_external: str) -> None:
        for room in state.rooms.rooms_for_patient(patient_external):
            if room.show_relevance(result.to_json()):
                task = asyncio.get_running_loop().create_task(room.broadcast())
                _TASKS.add(task)
                task.add_done_callback(_TASKS.discard)

    return publish


def _note_shower(state: ServerState) -> ShowNote:
    """Put a note in the consultation's live window (the room exists, so experts who join
    later see it too)."""

    async def show(consultation: ConsultationConfig, note: str) -> None:
        state.rooms.get(consultation)
        for room in state.rooms.rooms_of(consultation.appliance):
            room.live_note = note
            await room.broadcast()

    return show


def _notes_poster(
    state: ServerState,
) -> Callable[[ConsultationConfig, NotesVersion], Awaitable[None]]:
    """Send a new version of the notes to every expert's page in that room (the clinic
    station is not a member: it never sees them)."""

    async def post(consultation: ConsultationConfig, notes: NotesVersion) -> None:
        event = {"type": "notes", **notes.to_json(), "saved": False}
        for room in state.rooms.live_rooms():
            if room.consultation.id == consultation.id:
                await room.notify(event)

    return post


def consultation_desk(state: ServerState, preferences: PreferenceDesk) -> ConsultationDesk:
    """The consultations' desk; after a change its invitees are mailed, and the room of one
    that ended or was called off closes."""
    config = state.config
    post = InvitationPost(
        state.database, state.directory, config.smtp, preferences.locale, config.language
    )

    def changed(cid: str, what: str) -> None:
        post.changed(cid, what)
        if what in ("end", "cancel", "no_show"):
            task = asyncio.get_running_loop().create_task(state.rooms.retire(cid))
            _TASKS.add(task)
            task.add_done_callback(_TASKS.discard)

    return ConsultationDesk(state.database, state.audit, state.directory, changed=changed)


def _live_ender(state: ServerState) -> Callable[[str], Awaitable[None]]:
    """Close a signed-out person's room connections (events and video) at once."""

    async def end(username: str) -> None:
        for room in state.rooms.live_rooms():
            member = room.members.get(username)
            for ws in list(member.sockets if member is not None else ()):
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"signed out")
            pc = state.media.viewer_pc(room.consultation.id, username)
            if pc is not None:
                await pc.close()

    return end


def provide_services(app: web.Application, state: ServerState) -> None:
    """Every service the views call, under its app key."""
    records = records_service(state)
    app[RECORDS] = records
    app[SNAPSHOTS] = SnapshotService(records.filing, lambda: state.directory.consultations)
    stages: Stages = state.rooms
    app[PRESENTATION] = PresentationService(
        records, state.records.blobs, stages, state.audit, state.config.live
    )
    app[IMPORTS] = ImportService(records.filing, state.audit)
    app[ACCESS_DESK] = AccessDesk(state.directory, state.database, state.audit, state.access)
    models = state.config.models
    app[CONSENTS] = ConsentRegister(
        state.database,
        state.audit,
        RetireOnWithdrawal(state.audit, state.relevance, (models.tflite, models.card)),
    )
    app[PREFERENCES] = PreferenceDesk(state.database, state.audit)
    directory = state.directory
    app[PATIENT_REGISTRY] = PatientRegistry(
        state.database,
        state.audit,
        directory,
        lambda: {*directory.clinics, *(a.clinic for a in directory.all_accounts if a.clinic)},
        state.access,
    )
    app[CONSULTATION_DESK] = consultation_desk(state, app[PREFERENCES])
    app[AGENDA] = ConsultationAgenda(state.database, state.directory)
    app[NOTES] = SharedNotes(
        state.database, state.audit, state.directory, published=_notes_poster(state)
    )
    app[ACCOUNT_DESK] = AccountDesk(
        state.database,
        state.audit,
        state.directory,
        state.sessions,
        state.config.accounts,
        end_live=_live_ender(state),
    )
    app[ARCHIVE_READER] = ArchiveReader(
        state.config.archive,
        state.database,
        state.audit,
        state.archive,
        state.media,
        _note_shower(state),
    )
    if state.recorder is not None:
        app[CALL_RECORDINGS] = CallRecordings(state.database, state.audit, state.recorder.store)
    app[RELEVANCE_DESK] = RelevanceDesk(
        state.config,
        state.database,
        state.audit,
        state.relevance,
        access=app[ACCESS_DESK],
        control=state.access,
        records=state.records,
        learning=state.learning,
        appliances=state.appliances,
        publish=_publisher(state),
    )
    app[REPORTS] = ReportService(
        state.database,
        state.records,
        state.audit,
        state.relevance,
        app[NOTES],  # the consultation's shared notes go into its report
        key_file=state.config.state_dir / REPORT_KEY_FILE,
    )
    # The site's releases: rows in its database, wheels in its blob store (every front sees them).
    app[RELEASES] = ReleaseStore(
        state.database, state.records.blobs, drop=state.records.drop_unreferenced
    )
    app[RELEASE_DESK] = ReleaseDesk(app[RELEASES], state.audit)
    broker_admin = state.config.broker_admin
    app[ENROLLMENT] = EnrollmentDesk(
        state.config,
        state.database,
        state.audit,
        state.directory,
        broker=None if broker_admin is None else BrokerAccounts(broker_admin, state.config.mqtt),
        watcher=state.media,
    )
