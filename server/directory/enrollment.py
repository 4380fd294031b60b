"""Appliances enrolled from /admin: a one-time provisioning bundle, revocation, rotation.

Enrolling names the appliance (name, clinic, room), gives it a device id made from its
name, a device token (:mod:`server.device_tokens`) and a broker password, and returns the
``clinicam.toml`` that ``clinicam appliance provision`` applies from the SD card's boot
partition. Only the hashes are kept (the token's under the server's key, the broker
password as mosquitto's ``$7$``): the bundle is shown once. Revoking ends the device's
token at once, removes its broker account and takes it off the directory; rotating gives
it a new token and broker password in a new bundle, and the old ones stop working.

Every change commits with its audit entry (``device.enroll``, ``device.revoke``,
``device.rotate``), then the directory is read again, the broker's files are rewritten
and the media hub is told (a new appliance can stream at once, a revoked one cannot).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam import broker_files, tomlwrite
from clinicam.i18n import _, message_of, translate
from clinicam.mqtt_config import is_loopback
from server.audit.trail import AuditTrail
from server.config import ServerConfig
from server.db import Database
from server.device_tokens import issue_device_token
from server.directory.book import Directory
from server.directory.broker_accounts import BrokerAccounts, BrokerNotUpdated
from server.directory.models import ApplianceRow
from server.domain_errors import Conflict, Invalid, NotFound

_LOGGER = logging.getLogger(__name__)

BUNDLE_FILE = "clinicam.toml"
BROKER_PASSWORD_BYTES = 24
MAX_NAME = 80
BrokerState = Literal["updated", "manual", "failed"]


class ApplianceWatcher(Protocol):
    """What else must know at once (the media hub: its live feeds and stream sessions)."""

    def enrolled(self, device_id: str) -> None: ...

    async def cut_off(self, device_id: str) -> None:
        """Its credentials ended (revoked or rotated): end its stream session."""
        ...


@dataclass(frozen=True)
class BrokerOutcome:
    """Whether the broker's files follow: updated, to be done by hand, or failed (why)."""

    state: BrokerState
    problem: str | None = None


@dataclass(frozen=True)
class Enrolment:
    """An enrolled (or rotated) appliance and its one-time bundle."""

    device_id: str
    name: str
    clinic: str
    room: str | None
    bundle: str = ""  # the clinicam.toml text: secrets inside, shown once
    broker: BrokerOutcome = BrokerOutcome("manual")


@dataclass(frozen=True)
class EnrolledAppliance:
    """A listing row (no secrets)."""

    device_id: str
    name: str
    clinic: str
    room: str | None
    enrolled_at: datetime
    enrolled_by: str


def device_id_for(name: str, taken: set[str]) -> str:
    """A device id from ``name`` (DEVICE_ID_PATTERN) not in ``taken``: ``xray-room-1``,
    ``xray-room-1-2``…; a name with no Latin letters or digits gives ``appliance-N``."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    base = re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:48].strip("-") or "appliance"
    if base != "appliance" and base not in taken:
        return base
    number = 1 if base == "appliance" else 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def _clean(value: str | None, *, missing: str | None) -> str | None:
    """One of name, clinic, room with its spaces tidied; ``missing``: refuse it empty."""
    text = " ".join((value or "").split())
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        raise Invalid(_("the name, clinic and room may not contain control characters"))
    if len(text) > MAX_NAME:
        raise Invalid(
            _("the name, clinic and room may have at most {most} characters", most=MAX_NAME)
        )
    if not text and missing is not None:
        raise Invalid(missing)
    return text or None


class EnrollmentDesk:
    """Enrols, revokes and rotates appliances; the service behind /admin's Appliances."""

    def __init__(
        self,
        config: ServerConfig,
        database: Database,
        audit: AuditTrail,
        directory: Directory,
        *,
        broker: BrokerAccounts | None = None,
        watcher: ApplianceWatcher | None = None,
    ) -> None:
        self._config = config
        self._database = database
        self._audit = audit
        self._directory = directory
        self._broker = broker
        self._watcher = watcher
        self._lock = asyncio.Lock()  # one change at a time: the broker's files follow in order

    @property
    def broker_managed(self) -> bool:
        return self._broker is not None

    # ------------------------------------------------------------------ reading
    def listing(self) -> list[EnrolledAppliance]:
        """The appliances not revoked (blocking: call it in a thread)."""
        with self._database.session() as session:
            rows = session.scalars(
                select(ApplianceRow)
                .where(ApplianceRow.revoked.is_(False))
                .order_by(ApplianceRow.clinic, ApplianceRow.name)
            )
            return [
                EnrolledAppliance(
                    r.device_id, r.name, r.clinic, r.room, r.enrolled_at, r.enrolled_by
                )
                for r in rows
            ]

    # ------------------------------------------------------------------ changes
    async def enrol(
        self, actor: str, name: str, clinic: str, room: str | None, *, seen_url: str
    ) -> Enrolment:
        """A new appliance and its bundle; ``seen_url`` is this server's address as the
        admin reached it (used unless ``[enrollment] server_url`` says otherwise)."""
        clean_name = _clean(name, missing=_("give the appliance a name"))
        clean_clinic = _clean(clinic, missing=_("say at which clinic the appliance stands"))
        clean_room = _clean(room, missing=None)
        assert clean_name is not None and clean_clinic is not None
        token_secret, password = "", secrets.token_urlsafe(BROKER_PASSWORD_BYTES)

        def work() -> str:
            nonlocal token_secret
            with self._database.session() as session, session.begin():
                taken = set(session.scalars(select(ApplianceRow.device_id)))
                device_id = device_id_for(clean_name, taken)
                issued = issue_device_token(self._config.state_dir, device_id)
                token_secret = issued.token
                session.add(
                    ApplianceRow(
                        device_id=device_id,
                        name=clean_name,
                        clinic=clean_clinic,
                        room=clean_room,
                        token_hash=issued.token_hash,
                        broker_password_hash=broker_files.hash_password(password),
                        enrolled_by=actor,
                    )
                )
                self._audit.write(
                    session,
                    actor,
                    "device.enroll",
                    f"device:{device_id}",
                    {"name": clean_name, "clinic": clean_clinic, "room": clean_room},
                )
            return device_id

        async with self._lock:
            device_id = await asyncio.to_thread(work)
            if self._watcher is not None:  # its feed exists before the directory lists it
                self._watcher.enrolled(device_id)
            broker = await self._after_change(device_id)
        _LOGGER.info("appliance %s enrolled by %s", device_id, actor)
        enrolment = Enrolment(device_id, clean_name, clean_clinic, clean_room, broker=broker)
        return self._with_bundle(enrolment, token_secret, password, seen_url)

    async def revoke(self, actor: str, device_id: str) -> BrokerOutcome:
        """Its token stops working at once; its broker account goes; it leaves the directory."""

        def work() -> None:
            with self._database.session() as session, session.begin():
                row = self._current(session, device_id)
                row.revoked = True
                row.broker_password_hash = None
                self._audit.write(
                    session,
                    actor,
                    "device.revoke",
                    f"device:{device_id}",
                    {"name": row.name, "clinic": row.clinic},
                )

        async with self._lock:
            await asyncio.to_thread(work)
            broker = await self._after_change(device_id)
        if self._watcher is not None:
            await self._watcher.cut_off(device_id)
        _LOGGER.info("appliance %s revoked by %s", device_id, actor)
        return broker

    async def rotate(self, actor: str, device_id: str, *, seen_url: str) -> Enrolment:
        """A new token and broker password in a new bundle; the old ones stop working."""
        password = secrets.token_urlsafe(BROKER_PASSWORD_BYTES)
        token = ""

        def work() -> Enrolment:
            nonlocal token
            with self._database.session() as session, session.begin():
                row = self._current(session, device_id)
                issued = issue_device_token(self._config.state_dir, device_id)
                token = issued.token
                row.token_hash = issued.token_hash
                row.broker_password_hash = broker_files.hash_password(password)
                self._audit.write(
                    session,
                    actor,
                    "device.rotate",
                    f"device:{device_id}",
                    {"name": row.name, "clinic": row.clinic},
                )
                return Enrolment(device_id, row.name, row.clinic, row.room)

        async with self._lock:
            enrolment = await asyncio.to_thread(work)
            broker = await self._after_change(device_id)
        if self._watcher is not None:
            await self._watcher.cut_off(device_id)
        _LOGGER.info("appliance %s credentials rotated by %s", device_id, actor)
        enrolment = Enrolment(
            device_id, enrolment.name, enrolment.clinic, enrolment.room, broker=broker
        )
        return self._with_bundle(enrolment, token, password, seen_url)

    async def sync_broker(self) -> BrokerOutcome:
        """Write the broker's files from the table (at start: repairs a failed write)."""
        async with self._lock:
            return await self._after_change(None)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _current(session: Session, device_id: str) -> ApplianceRow:
        row = session.get(ApplianceRow, device_id)
        if row is None:
            raise NotFound(_("no appliance {device} is enrolled", device=device_id))
        if row.revoked:
            raise Conflict(_("appliance {device} is already revoked", device=device_id))
        return row

    async def _after_change(self, device_id: str | None) -> BrokerOutcome:
        """Read the directory again, then bring the broker's files in step."""
        await asyncio.to_thread(self._directory.reload)
        if self._broker is None:
            return BrokerOutcome("manual")
        try:
            await asyncio.to_thread(self._broker.apply, await asyncio.to_thread(self._accounts))
        except BrokerNotUpdated as exc:
            _LOGGER.error("broker not updated after a change to %s: %s", device_id, exc)
            return BrokerOutcome("failed", message_of(exc))
        return BrokerOutcome("updated")

    def _accounts(self) -> dict[str, str | None]:
        """Device id → broker hash for every appliance the server gave an account, None
        for revoked ones (those from the configuration file keep what the file has)."""
        with self._database.session() as session:
            rows = session.execute(
                select(
                    ApplianceRow.device_id,
                    ApplianceRow.broker_password_hash,
                    ApplianceRow.revoked,
                )
            ).all()
        return {
            device_id: (None if revoked else password_hash)
            for device_id, password_hash, revoked in rows
            if revoked or password_hash is not None
        }

    def _with_bundle(
        self, enrolment: Enrolment, token: str, password: str, seen_url: str
    ) -> Enrolment:
        text = bundle_text(self._config, enrolment, token, password, seen_url)
        return Enrolment(
            enrolment.device_id,
            enrolment.name,
            enrolment.clinic,
            enrolment.room,
            bundle=text,
            broker=enrolment.broker,
        )


def server_url_for(config: ServerConfig, seen_url: str) -> str:
    return (config.enrollment.server_url or seen_url).rstrip("/")


def broker_address(config: ServerConfig, server_url: str) -> tuple[str, int]:
    """Where the appliance finds the broker: configured, else the server's own broker
    address unless that is loopback-only (then the server URL's host)."""
    host = config.enrollment.broker_host or config.mqtt.host
    if config.enrollment.broker_host is None and is_loopback(host):
        host = urlsplit(server_url).hostname or host
    return host, config.enrollment.broker_port or config.mqtt.port


def bundle_text(
    config: ServerConfig, enrolment: Enrolment, token: str, password: str, seen_url: str
) -> str:
    """The ``clinicam.toml`` for the appliance's boot partition."""
    url = server_url_for(config, seen_url)
    host, port = broker_address(config, url)
    mqtt: dict[str, Any] = {
        "host": host,
        "port": port,
        "username": enrolment.device_id,
        "password": password,
    }
    if config.mqtt.tls:
        mqtt["tls"] = True
        if config.mqtt.ca_file is not None and Path(config.mqtt.ca_file).is_file():
            mqtt["ca_cert_pem"] = Path(config.mqtt.ca_file).read_text()
    data = {
        "device": {"id": enrolment.device_id, "language": config.language},
        "server": {"url": url, "token": token},
        "mqtt": mqtt,
    }
    where = enrolment.clinic + (f", {enrolment.room}" if enrolment.room else "")
    header = translate(
        _(
            "Clinicam provisioning file for {name} ({place}).\n"
            "Copy it to the boot partition of the appliance's SD card as clinicam.toml.\n"
            "It holds the appliance's secrets: the server keeps no copy; delete it once used.\n"
            "Wi-Fi ([[wifi]] ssid, psk) and a time zone ([device] timezone) may be added.",
            name=enrolment.name,
            place=where,
        ),
        config.language,
    )
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    return comment + tomlwrite.dumps(data)
