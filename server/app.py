"""Build and run the aiohttp application."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from sqlalchemy import select

from clinicam import sdnotify
from clinicam.ice import restrict_ice_to_loopback
from clinicam.protocol import ApplianceState
from clinicam.realtime import favour_the_event_loop
from server.access.grants import AccessControl
from server.archive.call_store import CallStore, referenced_recording_blobs
from server.archive.recorder import ArchiveRecorder
from server.archive.segment_store import SegmentBlobs, referenced_archive_blobs
from server.audit.trail import AuditTrail, Checkpointer
from server.auth import LoginThrottle, SessionStore
from server.cluster_node import attach_cluster
from server.config import ServerConfig
from server.db import Database, default_database_url, open_database
from server.device_tokens import DeviceTokens
from server.directory.book import Directory
from server.directory.second_factor import TotpDesk
from server.directory.seed import import_config
from server.errors import error_middleware
from server.fleet.adoption import OLD_FOLDER, adopt_release_folder
from server.fleet.models import referenced_release_blobs
from server.login import LoginService
from server.media_hub import MediaHub
from server.mqtt_link import ApplianceLink
from server.recording.recorder import CallRecorder
from server.records import staging
from server.records.blob_stores import open_blob_store
from server.records.models import Patient
from server.records.store import RecordStore
from server.relevance.learning import LearningLoop
from server.relevance.retrain import Retrainer, champion, training_available
from server.relevance.service import RelevanceService
from server.room import ConsultationRoom, RoomRegistry
from server.room_links import watch_links
from server.services import provide_services
from server.slow_checks import SlowChecks
from server.state import STATE, ServerState
from server.web.access import add_access_routes
from server.web.accounts import TOTP_DESK, add_account_routes
from server.web.api_docs import add_api_doc_routes
from server.web.archive import add_archive_routes
from server.web.backfill import add_backfill_routes
from server.web.consultation import add_routes
from server.web.consultations import CONSULTATION_DESK, add_consultation_routes
from server.web.enrollment import ENROLLMENT, add_enrollment_routes
from server.web.fleet import RELEASE_DESK, add_fleet_routes
from server.web.locale import add_routes as add_locale_routes
from server.web.locale import locale_middleware
from server.web.metrics import add_metrics_routes, metrics_middleware
from server.web.notes import add_notes_routes
from server.web.patients import add_patient_routes
from server.web.present import add_present_routes
from server.web.recordings import add_recording_routes
from server.web.records import add_record_routes
from server.web.records_import import add_import_routes
from server.web.relevance import add_relevance_routes
from server.web.reports import add_report_routes
from server.web.security import auth_middleware
from server.web.snapshots import add_snapshot_routes
from server.web.station import add_station_routes

_LOGGER = logging.getLogger(__name__)


SECURITY_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response as it is sent: pages, redirects, errors raised as HTTPException
    and aiohttp's own 404/405/500 alike (a view may set a stricter value of its own)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _seed_patients(config: ServerConfig, database: Database) -> None:
    """Patients named in the configuration (and by consultations) exist in the database."""
    named = {p.id: p for p in config.patients}
    with database.session() as session, session.begin():
        store = RecordStore  # ensure_patient needs no instance state
        for p in config.patients:
            patient = store.ensure_patient(session, p.id, p.name, p.group)
            patient.display_name, patient.patient_group = p.name, p.group
        for c in config.consultations:
            if c.patient_id not in named:
                store.ensure_patient(session, c.patient_id, c.patient_id)


HOUSEKEEPING = web.AppKey("clinicam_housekeeping", asyncio.Task[None])
LEARNING = web.AppKey("clinicam_learning", asyncio.Task[None])
LOOP_LAG = web.AppKey("clinicam_loop_lag", asyncio.Task[None])
LOAD = web.AppKey("clinicam_load", asyncio.Task[None])
LINKS = web.AppKey("clinicam_links", asyncio.Task[None])
NO_SHOWS = web.AppKey("clinicam_no_shows", asyncio.Task[None])
HOUSEKEEPING_INTERVAL_S = 3600.0
_BACKGROUND: set[asyncio.Task[Any]] = set()


async def _housekeeping(state: ServerState) -> None:
    """Upload leftovers every few minutes, audit checkpoints, and hourly: archive
    retention and orphan blobs."""
    async with asyncio.TaskGroup() as group:  # cancelled together on shutdown
        group.create_task(staging.sweep_forever(state.config.state_dir, state.archive.root))
        group.create_task(state.audit.checkpoint_forever())
        group.create_task(_hourly(state))


async def _hourly(state: ServerState) -> None:
    while True:
        try:
            await asyncio.to_thread(state.archive.apply_retention)
            await asyncio.to_thread(state.archive.tidy_store)
            if state.recorder is not None:
                await asyncio.to_thread(state.recorder.apply_retention)
            await asyncio.to_thread(
                state.records.collect_orphans, state.config.records.orphan_grace_s
            )
        except Exception:
            _LOGGER.exception("housekeeping failed; retrying in an hour")
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)


async def _show_latest_relevance(state: ServerState, room: ConsultationRoom) -> None:
    """A room opens with the patient's latest stored relevance in its chart."""

    def latest() -> dict[str, Any] | None:
        with state.database.session() as session:
            patient = session.scalar(
                select(Patient).where(Patient.external_id == room.consultation.patient_id)
            )
            found = None if patient is None else state.relevance.latest(session, patient.id)
            return None if found is None else found.to_json()

    result = await asyncio.to_thread(latest)
    if result is not None and room.show_relevance(result):
        await room.broadcast()


def _segment_blobs(config: ServerConfig, records: RecordStore) -> SegmentBlobs:
    """Archive segments follow the records' content into the object store (O8)."""
    records.also_referenced.append(referenced_archive_blobs)
    return SegmentBlobs(
        config.state_dir / "archive",
        records.blobs,
        records.drop_unreferenced,
        offload=config.blobs.backend == "s3",
    )


def _call_recorder(
    config: ServerConfig, database: Database, records: RecordStore, audit: AuditTrail
) -> CallRecorder:
    """The whole call recorded (O4); its segments' blobs are kept from the orphan collector."""
    records.also_referenced.append(referenced_recording_blobs)
    store = CallStore(database, records, config.recording.retention_days)
    return CallRecorder(config.recording, database, store, audit, config.state_dir / "recordings")


def _record_calls(state: ServerState, room: ConsultationRoom) -> None:
    """A room opened: once its call starts (someone's media attached), record it if its
    patient consents then; the room and the station say which."""
    consultation, device_id = room.consultation, room.consultation.appliance
    recorder = state.recorder
    if recorder is None:
        room.recording = lambda: state.archive.recording(device_id)
        return
    cid = consultation.id
    room.recording = lambda: state.archive.recording(device_id) or recorder.recording(cid)
    room.call_recording = lambda: recorder.status(cid)

    def in_call() -> bool:
        return room.station.connected or any(m.track is not None for m in room.members.values())

    def alive() -> bool:
        return room in state.rooms.rooms_of(device_id)

    async def begin() -> None:
        while not in_call():  # the call starts with its first media: consent is read then
            if not alive():
                return
            await asyncio.sleep(0.2)
        await recorder.begin(
            consultation,
            room.sources,
            room.audio,
            in_call=in_call,
            alive=alive,
            locale=state.config.language,
        )
        await room.broadcast()

    _in_background(begin())


def _colour_calibration(appliance: ApplianceState) -> dict[str, Any] | None:
    """The colour calibration the appliance uses now (issue 22), as the room shows it."""
    calibration = appliance.colour.calibration if appliance.colour is not None else None
    return calibration.model_dump(mode="json") if calibration is not None else None


async def _adopt_old_releases(app: web.Application, state: ServerState) -> None:
    """Wheels an older server kept in ``state_dir/releases`` join the site's releases."""
    desk = app[RELEASE_DESK]
    folder = state.config.state_dir / OLD_FOLDER
    try:
        await asyncio.to_thread(adopt_release_folder, desk.store, state.audit, folder)
    except Exception:  # never stops the start; the next start tries again
        _LOGGER.exception("adopting the old release folder failed")


def _in_background(work: Coroutine[Any, Any, Any]) -> None:
    """Run ``work`` on the loop, keeping a reference until it is done."""
    task = asyncio.get_running_loop().create_task(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


def build_app(config: ServerConfig, loop: asyncio.AbstractEventLoop) -> web.Application:
    """The application with its state; MQTT starts and media closes with the app."""
    if config.ice.loopback_only:
        restrict_ice_to_loopback()
    app = web.Application(
        middlewares=[metrics_middleware, locale_middleware, error_middleware, auth_middleware],
        client_max_size=1024 * 1024,
    )
    app.on_response_prepare.append(security_headers)
    database = open_database(config.database_url or default_database_url(config.state_dir))
    audit = AuditTrail(database, checkpoints=Checkpointer.in_folder(config.state_dir))
    import_config(config, database, audit)
    directory = Directory(database)
    media = MediaHub(
        config.ice, [d.device_id for d in directory.devices], low_latency=config.live.low_latency
    )
    totp = TotpDesk(database, audit, directory, config.accounts)
    sessions = SessionStore(
        idle_s=config.http.session_idle_minutes * 60.0,
        # A media worker holds only sessions a web front vouches for, again on each request.
        path=None
        if config.cluster and config.cluster.worker_id
        else config.state_dir / "sessions.json",
        admits=totp.may_hold_session,  # not disabled, no second factor missing
    )
    throttle = LoginThrottle(max_failures=config.http.max_failed_logins)
    appliances = ApplianceLink(config.mqtt, loop)
    rooms = RoomRegistry(config, directory, media.feeds, media.patient_audio)
    records = RecordStore(
        database,
        open_blob_store(config.blobs, config.state_dir),
        max_bytes=config.records.max_upload_mb * 1024 * 1024,
    )
    records.also_referenced.append(referenced_release_blobs)  # appliance release wheels
    checks = SlowChecks()
    login = LoginService(directory, throttle, checks, sessions, audit, second_factor=totp)
    device_tokens = DeviceTokens(
        config, directory, checks, LoginThrottle(max_failures=config.http.max_failed_logins)
    )
    _seed_patients(config, database)
    archive = ArchiveRecorder(
        config.archive,
        database,
        config.state_dir / "archive",
        rooms.serving,
        audit=audit,
        blobs=_segment_blobs(config, records),
    )
    media.archive = archive  # the hub exists first: the rooms are built on its feeds
    promoted = champion(database)  # a model the learning loop promoted earlier wins
    in_use = Path(promoted.path) if promoted and Path(promoted.path).is_file() else None
    relevance = RelevanceService(
        database,
        records,
        tflite=in_use or config.models.tflite,
        card=None if in_use else config.models.card,
        threads=config.models.threads,
        demonstration_branches=config.models.demonstration_branches,
    )
    retrainer = None
    if config.models.retrain and training_available():
        retrainer = Retrainer(config, database, records, relevance, audit)
    state = ServerState(
        config=config,
        directory=directory,
        sessions=sessions,
        throttle=throttle,
        appliances=appliances,
        media=media,
        rooms=rooms,
        database=database,
        audit=audit,
        access=AccessControl(config, directory),
        records=records,
        archive=archive,
        relevance=relevance,
        learning=LearningLoop(database, config.models.retrain_after, retrainer),
        login=login,
        device_tokens=device_tokens,
        recorder=_call_recorder(config, database, records, audit),
    )

    def live_again(device_id: str) -> None:
        for room in state.rooms.rooms_of(device_id):
            room.live_note = None
            _in_background(room.broadcast())

    media.on_live_again = live_again

    def appliance_state(device_id: str, appliance: ApplianceState) -> None:
        colour = _colour_calibration(appliance)
        for room in state.rooms.rooms_of(device_id):
            changed = room.colour != colour
            room.colour = colour
            if room.station.private != appliance.privacy:
                room.station.set_privacy(appliance.privacy)
                changed = True
            if changed:
                _in_background(room.broadcast())

    state.appliances.on_state = appliance_state

    def room_created(room: ConsultationRoom) -> None:
        _record_calls(state, room)
        appliance = state.appliances.states.get(room.consultation.appliance)
        if appliance is not None:
            room.station.set_privacy(appliance.privacy)
            room.colour = _colour_calibration(appliance)
        _in_background(_show_latest_relevance(state, room))

    state.rooms.on_created = room_created
    app[STATE] = state
    app[TOTP_DESK] = totp
    provide_services(app, state)
    add_routes(app)
    add_locale_routes(app)
    add_access_routes(app)
    add_patient_routes(app)
    add_record_routes(app)
    add_snapshot_routes(app)
    add_present_routes(app)
    add_import_routes(app)
    add_archive_routes(app)
    add_recording_routes(app)
    add_backfill_routes(app)
    add_relevance_routes(app)
    add_report_routes(app)
    add_fleet_routes(app)
    add_enrollment_routes(app)
    add_station_routes(app)
    add_consultation_routes(app)
    add_notes_routes(app)
    add_account_routes(app)
    add_api_doc_routes(app)
    add_metrics_routes(app, state)
    attach_cluster(app, state)

    async def on_startup(app: web.Application) -> None:
        await _adopt_old_releases(app, state)
        state.appliances.start()
        if config.broker_admin is not None:  # repairs a broker update that failed before
            await app[ENROLLMENT].sync_broker()
        app[HOUSEKEEPING] = asyncio.create_task(_housekeeping(state), name="housekeeping")
        app[LEARNING] = asyncio.create_task(state.learning.run(), name="learning")
        app[LOOP_LAG] = asyncio.create_task(state.media.loop_lag.run(), name="loop-lag")
        app[LOAD] = asyncio.create_task(state.rooms.watch_load(state.media.loop_lag), name="load")
        app[LINKS] = asyncio.create_task(watch_links(state), name="links")
        no_shows = app[CONSULTATION_DESK].check_forever()
        app[NO_SHOWS] = asyncio.create_task(no_shows, name="no-shows")

    async def on_cleanup(app: web.Application) -> None:
        app[HOUSEKEEPING].cancel()
        app[LEARNING].cancel()
        app[LOOP_LAG].cancel()
        app[LOAD].cancel()
        app[LINKS].cancel()
        app[NO_SHOWS].cancel()
        if state.recorder is not None:
            await state.recorder.close()
        await state.rooms.close()
        await state.media.close()
        database.close()
        state.appliances.stop()
        checks.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def run_server(config: ServerConfig) -> None:
    """Serve until SIGINT/SIGTERM."""
    favour_the_event_loop()
    loop = asyncio.get_running_loop()
    app = build_app(config, loop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.http.host, config.http.port)
    await site.start()
    _LOGGER.info("server started on http://%s:%d", config.http.host, config.http.port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sdnotify.ready(f"serving on http://{config.http.host}:{config.http.port}")
    watchdog = sdnotify.start_watchdog()  # fed from this loop: a stalled loop stops it
    try:
        await stop.wait()
    finally:
        sdnotify.stopping("server stopping")
        sdnotify.stop_watchdog(watchdog)
        _LOGGER.info("server stopping")
        await runner.cleanup()
        _LOGGER.info("server stopped")
