"""Patients registered by clinic staff, with their consent, and the search for them (O1, R15).

Registration writes the patient, one consent decision per purpose and their audit entries
(``patient.register``, then ``consent.recorded`` per purpose) in one transaction: all of
them or none. Clinic staff register for their own clinic; admins for any known clinic.

The search shows each person only the patients they may know of, the way the records
list does (:meth:`server.access.desk.AccessDesk.my_patients`): clinic staff their
clinic's, chairs and admins everyone, an expert the patients of their active grants
(and, by identifier only, their consultations' patients, without a name). Nothing in
an answer tells an expert that any other patient exists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clinicam.i18n import _
from server.access.desk import in_transaction, patient_target
from server.access.grants import AccessControl, Actor
from server.access.models import CONSENT_EXPORT, CONSENT_RECORDING, CONSENT_TRAINING, Consent
from server.audit.trail import AuditTrail
from server.db import Database, utcnow
from server.domain_errors import Conflict, Forbidden, Invalid
from server.records.models import Patient
from server.roster import Roster

_LOGGER = logging.getLogger(__name__)

CONSENT_PURPOSES: Final = (CONSENT_TRAINING, CONSENT_EXPORT)  # asked at registration
OPTIONAL_PURPOSES: Final = (CONSENT_RECORDING,)  # unanswered: no
SEXES: Final = ("female", "male", "other", "unknown")
EARLIEST_BIRTH: Final = date(1900, 1, 1)
# The calendar date somewhere on Earth is at most 14 hours ahead of UTC (UTC+14).
_AHEAD_OF_UTC: Final = timedelta(hours=14)
REGISTRARS: Final = ("clinic", "admin")
SEE_ALL: Final = ("chair", "admin")
MAX_PER_PAGE: Final = 100
REGISTRATION_NOTE: Final = "at registration"


@dataclass(frozen=True)
class Registration:
    """What clinic staff enter for a new patient, and the patient's consent decisions."""

    identifier: str
    name: str
    sex: str
    birth_date: date
    consent: dict[str, bool]
    clinic: str | None = None  # staff: their own (or left out); admins: required
    group: str | None = None


@dataclass(frozen=True)
class Found:
    """One patient in a search answer; ``name`` is None where the asker may not read it."""

    patient: Patient
    name: str | None


@dataclass(frozen=True)
class SearchPage:
    """One page of a search: its patients, how many match in all, which page."""

    found: list[Found]
    total: int
    page: int
    per_page: int


def latest_birth_date() -> date:
    """The latest birth date that is not in the future for someone, anywhere."""
    return (utcnow() + _AHEAD_OF_UTC).date()


def _clean(value: str | None) -> str:
    return " ".join((value or "").split())


class PatientRegistry:
    """Registers patients and finds them; sessions from ``database``, people from ``roster``."""

    def __init__(
        self,
        database: Database,
        audit: AuditTrail,
        roster: Roster,
        clinics: Callable[[], Collection[str]],
        control: AccessControl,
    ) -> None:
        self._database = database
        self._audit = audit
        self._roster = roster
        self._clinics = clinics
        self._control = control

    # --- registration -----------------------------------------------------------------

    def _clinic_for(self, actor: Actor, asked: str | None) -> str:
        """The clinic a registration goes to: staff their own, admins a known one."""
        if actor.role not in REGISTRARS:
            raise Forbidden(_("only clinic staff or admins may register patients"))
        if actor.role == "clinic":
            account = self._roster.expert(actor.username)
            own = account.clinic if account is not None else None
            if own is None:
                raise Forbidden(_("your account belongs to no clinic"))
            if asked is not None and _clean(asked) != own:
                raise Forbidden(
                    _("you may register patients only for your clinic, {clinic}", clinic=own)
                )
            return own
        clinic = _clean(asked)
        if not clinic:
            raise Invalid(_("name the clinic the patient is registered at"))
        if clinic not in self._clinics():
            raise Invalid(_("no clinic named {clinic}", clinic=clinic))
        return clinic

    @staticmethod
    def _checked(entry: Registration) -> Registration:
        identifier, name, group = _clean(entry.identifier), _clean(entry.name), _clean(entry.group)
        if not identifier or len(identifier) > 64:
            raise Invalid(_("the identifier must have 1 to 64 characters"))
        if not name or len(name) > 200:
            raise Invalid(_("the name must have 1 to 200 characters"))
        if len(group) > 64:
            raise Invalid(_("the group must have at most 64 characters"))
        if entry.sex not in SEXES:
            raise Invalid(_("sex must be one of {known}", known=", ".join(SEXES)))
        if entry.birth_date > latest_birth_date():
            raise Invalid(_("the birth date {day} is in the future", day=entry.birth_date))
        if entry.birth_date < EARLIEST_BIRTH:
            raise Invalid(_("the birth date {day} is before 1900", day=entry.birth_date))
        missing = [p for p in CONSENT_PURPOSES if p not in entry.consent]
        unknown = sorted(set(entry.consent) - {*CONSENT_PURPOSES, *OPTIONAL_PURPOSES})
        if missing or unknown:
            raise Invalid(
                _(
                    "record the patient's decision for each consent: {purposes}",
                    purposes=", ".join(CONSENT_PURPOSES),
                )
            )
        return Registration(
            identifier, name, entry.sex, entry.birth_date, dict(entry.consent), None, group or None
        )

    async def register(self, actor: Actor, entry: Registration) -> Patient:
        """Add the patient and their consent decisions, audited together, or refuse."""
        clinic = self._clinic_for(actor, entry.clinic)
        checked = self._checked(entry)

        def work(session: Session) -> Patient:
            taken = session.scalar(
                select(Patient.id).where(Patient.external_id == checked.identifier)
            )
            if taken is not None:
                raise Conflict(
                    _(
                        "a patient with the identifier {identifier} is already registered",
                        identifier=checked.identifier,
                    ),
                    code="duplicate_identifier",
                )
            patient = Patient(
                external_id=checked.identifier,
                display_name=checked.name,
                patient_group=checked.group,
                sex=checked.sex,
                birth_date=checked.birth_date,
                clinic=clinic,
                registered_by=actor.username,
            )
            session.add(patient)
            session.flush()
            target = patient_target(patient)
            self._audit.write(
                session,
                actor.username,
                "patient.register",
                target,
                {"clinic": clinic, "group": checked.group, "consent": checked.consent},
            )
            for purpose in (*CONSENT_PURPOSES, *OPTIONAL_PURPOSES):
                if purpose not in checked.consent:
                    continue  # an optional purpose not asked: no decision, which means no
                granted = bool(checked.consent[purpose])
                session.add(
                    Consent(
                        patient_id=patient.id,
                        purpose=purpose,
                        granted=granted,
                        recorded_by=actor.username,
                        note=REGISTRATION_NOTE,
                    )
                )
                detail = {"purpose": purpose, "granted": granted, "at": "registration"}
                self._audit.write(session, actor.username, "consent.recorded", target, detail)
            session.flush()
            session.expunge(patient)
            return patient

        try:
            patient = await in_transaction(self._database, work)
        except IntegrityError:  # registered at the same moment by someone else
            raise Conflict(
                _(
                    "a patient with the identifier {identifier} is already registered",
                    identifier=checked.identifier,
                ),
                code="duplicate_identifier",
            ) from None
        _LOGGER.info("%s registered patient %s at %s", actor.username, patient.id, clinic)
        return patient

    # --- search -----------------------------------------------------------------------

    def _granted(self, session: Session, actor: Actor) -> set[int]:
        grants = self._control.active_grants(session, actor.username, utcnow())
        return {g.patient_id for g in grants}

    def _visible(self, actor: Actor, granted: set[int]) -> ColumnElement[bool]:
        """Which patients ``actor`` may find at all."""
        if actor.role in SEE_ALL:
            return true()
        if actor.role == "clinic":
            account = self._roster.expert(actor.username)
            clinic = account.clinic if account is not None else None
            return Patient.clinic == clinic if clinic else false()
        if actor.role != "expert":
            return false()
        invited = {c.patient_id for c in self._roster.consultations if actor.username in c.experts}
        return or_(Patient.id.in_(granted), Patient.external_id.in_(invited))

    async def search(self, actor: Actor, query: str, page: int, per_page: int) -> SearchPage:
        """Patients whose identifier or name contains ``query`` (any case), among those
        ``actor`` may know of; identifiers that start with it first."""
        text = _clean(query).lower()
        page, per_page = max(1, page), min(max(1, per_page), MAX_PER_PAGE)

        def work(session: Session) -> SearchPage:
            # An expert reads names only of the patients they hold a grant for.
            named = self._granted(session, actor) if actor.role == "expert" else None
            visible = self._visible(actor, named or set())
            ident = func.lower(Patient.external_id)
            by_name = func.lower(Patient.display_name).contains(text, autoescape=True)
            if named is not None:
                by_name = and_(Patient.id.in_(named), by_name)
            matches = or_(ident.contains(text, autoescape=True), by_name)
            where = and_(visible, matches) if text else visible
            total = session.scalar(select(func.count()).select_from(Patient).where(where)) or 0
            rows: Sequence[Patient] = session.scalars(
                select(Patient)
                .where(where)
                .order_by(ident.startswith(text, autoescape=True).desc(), Patient.external_id)
                .limit(per_page)
                .offset((page - 1) * per_page)
            ).all()
            for patient in rows:
                session.expunge(patient)
            shown = [
                Found(p, None if named is not None and p.id not in named else p.display_name)
                for p in rows
            ]
            return SearchPage(shown, int(total), page, per_page)

        return await in_transaction(self._database, work)


def registration_json(patient: Patient, name: str | None = None) -> dict[str, Any]:
    """How a registered (or found) patient is shown."""
    return {
        "id": patient.id,
        "identifier": patient.external_id,
        "name": name,
        "sex": patient.sex if name is not None else None,
        "birth_date": patient.birth_date.isoformat()
        if patient.birth_date and name is not None
        else None,
        "clinic": patient.clinic if name is not None else None,
        "group": patient.patient_group if name is not None else None,
    }
