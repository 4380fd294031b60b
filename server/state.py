"""Typed application state shared by the views.

Built whole by :mod:`server.app` (every service passed in); only the views
(:mod:`server.web`), :mod:`server.services` and :mod:`server.app` import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from server.access.grants import AccessControl
from server.archive.recorder import ArchiveRecorder
from server.audit.trail import AuditTrail
from server.auth import LoginThrottle, SessionStore
from server.config import ServerConfig
from server.db import Database
from server.device_tokens import DeviceTokens
from server.directory.book import Directory
from server.login import LoginService
from server.media_hub import MediaHub
from server.mqtt_link import ApplianceLink
from server.recording.recorder import CallRecorder
from server.records.store import RecordStore
from server.relevance.learning import LearningLoop
from server.relevance.service import RelevanceService
from server.room import RoomRegistry


@dataclass
class ServerState:
    """Everything the request handlers need."""

    config: ServerConfig
    directory: Directory
    sessions: SessionStore
    throttle: LoginThrottle
    appliances: ApplianceLink
    media: MediaHub
    rooms: RoomRegistry
    database: Database
    audit: AuditTrail
    access: AccessControl
    records: RecordStore
    archive: ArchiveRecorder
    relevance: RelevanceService
    learning: LearningLoop
    login: LoginService
    device_tokens: DeviceTokens
    recorder: CallRecorder | None = None  # the whole call recorded with consent (O4)


STATE = web.AppKey("clinicam_state", ServerState)
