"""Entries still in the configuration file move into the database on start (O1).

The file's ``[[experts]]``, ``[[devices]]`` and ``[[consultations]]`` tables are imported
once: an entry the database lacks is added (with an audit entry), one it holds the same
is left alone, and one it holds *differently* stops the start with a message naming it,
and nothing at all is imported: the database is now where these live, and the file must
not silently undo a change made in ``/admin``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.audit.trail import AuditTrail
from server.config import ConsultationConfig, DeviceAccount, ExpertAccount, ServerConfig
from server.db import Database
from server.directory.models import (
    SCHEDULED,
    AccountRow,
    ApplianceRow,
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


def _differs(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    return sorted(k for k in mine if mine[k] != theirs.get(k))


def import_config(config: ServerConfig, database: Database, audit: AuditTrail) -> int:
    """Import the file's directory entries in one transaction; returns how many were added.

    Raises :class:`ConfigConflict` (and changes nothing) on the first differing entry.
    """
    with database.session() as session, session.begin():
        added = _import(session, config, audit.write)
    if added:
        _LOGGER.info("imported %d directory entries from the configuration file", added)
    return added


def _import(session: Session, config: ServerConfig, write: Callable[..., None]) -> int:
    added = 0
    for account in config.experts:
        row = session.get(AccountRow, account.username)
        if row is not None:
            diff = _differs(_account_fields(account), _account_fields(row))
            if diff:
                raise _conflict(_("user account"), account.username, diff)
            continue
        session.add(
            AccountRow(
                username=account.username,
                created_by=ACTOR,
                disabled=False,
                session_epoch=0,
                **_account_fields(account),
            )
        )
        write(
            session,
            ACTOR,
            "account.create",
            f"user:{account.username}",
            {"role": account.role, "clinic": account.clinic, "from": "config"},
        )
        added += 1
    for device in config.devices:
        appliance = session.get(ApplianceRow, device.device_id)
        if appliance is not None:
            diff = _differs(_device_fields(device), _device_fields(appliance))
            if diff:
                raise _conflict(_("appliance"), device.device_id, diff)
            continue
        session.add(
            ApplianceRow(
                device_id=device.device_id,
                name=device.device_id,
                enrolled_by=ACTOR,
                revoked=False,
                **_device_fields(device),
            )
        )
        write(
            session,
            ACTOR,
            "device.enroll",
            f"device:{device.device_id}",
            {"clinic": device.clinic, "from": "config"},
        )
        added += 1
    session.flush()
    for c in config.consultations:
        existing = session.get(ConsultationRow, c.id)
        if existing is not None:
            diff = _differs(_consultation_fields(c), _stored_consultation(session, existing))
            if diff:
                raise _conflict(_("consultation"), c.id, diff)
            continue
        session.add(
            ConsultationRow(
                cid=c.id,
                title=c.title,
                patient_id=c.patient_id,
                appliance=c.appliance,
                chair=c.chair,
                state=SCHEDULED,
                reason="",
                urgency="routine",
                preferred_times=[],
            )
        )
        session.flush()
        for username in c.experts:
            session.add(InvitationRow(cid=c.id, username=username, invited_by=ACTOR))
        write(
            session,
            ACTOR,
            "consultation.schedule",
            f"consultation:{c.id}",
            {"chair": c.chair, "experts": list(c.experts), "from": "config"},
        )
        added += 1
    return added
