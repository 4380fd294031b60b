"""Entries still in the configuration file move into the database on start (O1).

The file's ``[[experts]]``, ``[[devices]]`` and ``[[consultations]]`` tables are imported
once: an entry the database lacks is added (with an audit entry), one it holds the same
is left alone, and one it holds *differently* stops the start with a message naming it,
and nothing at all is imported: the database is now where these live, and the file must
not silently undo a change made in ``/admin``.

Each imported entry's fingerprint is kept (``config_imports``): an entry the file still
holds exactly as it was imported is settled and never compared again, so a bootstrap
admin who later changes their password in the database does not stop the next start.
An entry edited in the file after its import is a conflict like any other.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.config import ConsultationConfig, DeviceAccount, ExpertAccount, ServerConfig
from server.db import Database, default_database_url, open_database
from server.directory.models import (
    SCHEDULED,
    AccountRow,
    ApplianceRow,
    ConfigImportRow,
    ConsultationRow,
    InvitationRow,
)
from server.domain_errors import Invalid

_LOGGER = logging.getLogger(__name__)

ACTOR = "config"


class ConfigConflict(Invalid):
    """A configuration entry differs from the database's entry of the same name."""


def _account_fields(a: ExpertAccount | AccountRow) -> dict[str, Any]:
    return {
        "display_name": a.display_name,
        "password_hash": a.password_hash,
        "role": a.role,
        "clinic": a.clinic,
    }


def _device_fields(d: DeviceAccount | ApplianceRow) -> dict[str, Any]:
    return {"clinic": d.clinic, "token_hash": d.token_hash}


def _consultation_fields(c: ConsultationConfig) -> dict[str, Any]:
    return {
        "title": c.title,
        "patient_id": c.patient_id,
        "appliance": c.appliance,
        "chair": c.chair,
        "experts": sorted(c.experts),
    }


def _stored_consultation(session: Session, row: ConsultationRow) -> dict[str, Any]:
    invited = session.scalars(select(InvitationRow.username).where(InvitationRow.cid == row.cid))
    return {
        "title": row.title,
        "patient_id": row.patient_id,
        "appliance": row.appliance,
        "chair": row.chair,
        "experts": sorted(invited),
    }


def _conflict(kind: str, name: str, fields: list[str]) -> ConfigConflict:
    return ConfigConflict(
        _(
            "the configuration's {kind} '{name}' differs from the database's ({fields}): the "
            "database is where it lives now; remove it from the configuration file, or make "
            "the change in /admin. Nothing was imported.",
            kind=kind,
            name=name,
            fields=", ".join(fields),
        )
    )


def import_config(
    config: ServerConfig, database: Database, audit: AuditTrail, *, replace: bool = False
) -> int:
    """Import the file's directory entries in one transaction; returns how many changed.

    Raises :class:`ConfigConflict` (and changes nothing) on the first differing entry,
    unless ``replace``: then the file's version wins, audited as an update (the demo,
    which makes fresh credentials on every run, seeds its directory this way).
    """
    with database.session() as session, session.begin():
        changed = _Import(session, audit.write, replace).run(config)
    if changed:
        _LOGGER.info("imported %d directory entries from the configuration file", changed)
    return changed


def seed_directory(config: ServerConfig) -> int:
    """Write the file's directory into its database, the file winning (the demo's seed)."""
    database = open_database(config.database_url or default_database_url(config.state_dir))
    try:
        return import_config(config, database, AuditTrail(database), replace=True)
    finally:
        database.close()


class _Import:
    """One import: each entry added, left alone, replaced or refused."""

    def __init__(self, session: Session, write: Callable[..., None], replace: bool) -> None:
        self._session = session
        self._write = write
        self._replace = replace
        self.changed = 0

    def _settled(self, kind: str, name: str, fields: dict[str, Any]) -> bool:
        """True if the file holds this entry exactly as it was imported (nothing to do);
        otherwise its fingerprint is (re)recorded for the import about to happen."""
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        row = self._session.get(ConfigImportRow, (kind, name))
        if row is not None and row.fingerprint == digest:
            return True
        if row is None:
            self._session.add(ConfigImportRow(kind=kind, name=name, fingerprint=digest))
        else:
            row.fingerprint = digest
        return False

    def _audit(self, action: str, target: str, detail: dict[str, Any]) -> None:
        self._write(self._session, ACTOR, action, target, {**detail, "from": "config"})
        self.changed += 1

    def _differs(
        self, kind: str, name: str, mine: dict[str, Any], theirs: dict[str, Any]
    ) -> list[str]:
        diff = sorted(k for k in mine if mine[k] != theirs.get(k))
        if diff and not self._replace:
            raise _conflict(kind, name, diff)
        return diff

    def run(self, config: ServerConfig) -> int:
        for account in config.experts:
            self._account(account)
        for device in config.devices:
            self._device(device)
        self._session.flush()
        for consultation in config.consultations:
            self._consultation(consultation)
        return self.changed

    def _account(self, account: ExpertAccount) -> None:
        target, fields = f"user:{account.username}", _account_fields(account)
        if self._settled("account", account.username, fields):
            return
        row = self._session.get(AccountRow, account.username)
        if row is None:
            self._session.add(
                AccountRow(
                    username=account.username,
                    created_by=ACTOR,
                    disabled=False,
                    session_epoch=0,
                    **fields,
                )
            )
            self._audit("account.create", target, {"role": account.role, "clinic": account.clinic})
        elif diff := self._differs(
            _("user account"), account.username, fields, _account_fields(row)
        ):
            for name, value in fields.items():
                setattr(row, name, value)
            self._audit("account.update", target, {"fields": diff})

    def _device(self, device: DeviceAccount) -> None:
        target, fields = f"device:{device.device_id}", _device_fields(device)
        if self._settled("device", device.device_id, fields):
            return
        row = self._session.get(ApplianceRow, device.device_id)
        if row is None:
            self._session.add(
                ApplianceRow(
                    device_id=device.device_id,
                    name=device.device_id,
                    enrolled_by=ACTOR,
                    revoked=False,
                    **fields,
                )
            )
            self._audit("device.enroll", target, {"clinic": device.clinic})
        elif diff := self._differs(_("appliance"), device.device_id, fields, _device_fields(row)):
            row.clinic, row.token_hash, row.revoked = device.clinic, device.token_hash, False
            self._audit("device.update", target, {"fields": diff})

    def _consultation(self, c: ConsultationConfig) -> None:
        target = f"consultation:{c.id}"
        if self._settled("consultation", c.id, _consultation_fields(c)):
            return
        row = self._session.get(ConsultationRow, c.id)
        if row is None:
            row = ConsultationRow(cid=c.id, reason="", urgency="routine", preferred_times=[])
            self._session.add(row)
            self._fill(row, c)
            self._audit(
                "consultation.schedule", target, {"chair": c.chair, "experts": list(c.experts)}
            )
        elif diff := self._differs(
            _("consultation"),
            c.id,
            _consultation_fields(c),
            _stored_consultation(self._session, row),
        ):
            for invitation in self._session.scalars(
                select(InvitationRow).where(InvitationRow.cid == c.id)
            ):
                self._session.delete(invitation)
            self._session.flush()
            self._fill(row, c)
            self._audit("consultation.update", target, {"fields": diff})

    def _fill(self, row: ConsultationRow, c: ConsultationConfig) -> None:
        row.title, row.patient_id, row.appliance, row.chair = (
            c.title,
            c.patient_id,
            c.appliance,
            c.chair,
        )
        row.state = SCHEDULED
        self._session.flush()
        for username in c.experts:
            self._session.add(InvitationRow(cid=c.id, username=username, invited_by=ACTOR))
