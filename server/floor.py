"""Floor control (R2): who may steer the camera, following BFCP's request states.

Control starts with the consultation's chair. Another expert may request it
(pending); the chair grants or denies the request, or takes control back (revoked);
the holder may release it. If the holder leaves, control returns to the chair.
Every change is logged with who and when; anything else is refused with a reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum

from clinicam.i18n import _

_LOGGER = logging.getLogger(__name__)


class FloorState(StrEnum):
    """BFCP request states used here."""

    PENDING = "pending"
    GRANTED = "granted"
    DENIED = "denied"
    RELEASED = "released"
    REVOKED = "revoked"


class FloorError(Exception):
    """A floor action that is not allowed now; the message says why."""


@dataclass(frozen=True)
class FloorEvent:
    """One entry of the floor log."""

    at: float
    user: str
    state: FloorState
    by: str


class FloorControl:
    """The floor of one consultation."""

    def __init__(
        self,
        chair: str,
        participants: Collection[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if chair not in participants:
            raise ValueError("the chair must be a participant")
        self.chair = chair
        self._participants = frozenset(participants)
        self._clock = clock
        self.holder = chair
        self.requests: dict[str, FloorState] = {}
        self.log: list[FloorEvent] = []

    def may_control(self, user: str) -> bool:
        return user == self.holder

    def pending(self) -> list[str]:
        return sorted(u for u, s in self.requests.items() if s is FloorState.PENDING)

    def _record(self, user: str, state: FloorState, by: str) -> FloorEvent:
        event = FloorEvent(self._clock(), user, state, by)
        self.requests[user] = state
        self.log.append(event)
        _LOGGER.info("floor: %s %s (by %s); control held by %s", user, state.value, by, self.holder)
        return event

    def _require_participant(self, user: str) -> None:
        if user not in self._participants:
            raise FloorError(_("{user} is not a participant of this consultation", user=user))

    def _require_chair(self, by: str, action: str) -> None:
        if by != self.chair:
            raise FloorError(
                _("only the chair ({chair}) can {action}", chair=self.chair, action=action)
            )

    def request(self, user: str) -> FloorEvent:
        self._require_participant(user)
        if user == self.holder:
            raise FloorError(_("{user} already holds control", user=user))
        if self.requests.get(user) is FloorState.PENDING:
            raise FloorError(_("{user} has already asked for control", user=user))
        return self._record(user, FloorState.PENDING, user)

    def grant(self, by: str, user: str) -> FloorEvent:
        self._require_chair(by, _("grant control"))
        if self.requests.get(user) is not FloorState.PENDING:
            raise FloorError(_("{user} has not asked for control", user=user))
        previous = self.holder
        self.holder = user
        if previous != self.chair:
            self._record(previous, FloorState.REVOKED, by)
        return self._record(user, FloorState.GRANTED, by)

    def deny(self, by: str, user: str) -> FloorEvent:
        self._require_chair(by, _("refuse a request"))
        if self.requests.get(user) is not FloorState.PENDING:
            raise FloorError(_("{user} has not asked for control", user=user))
        return self._record(user, FloorState.DENIED, by)

    def release(self, by: str) -> FloorEvent:
        if by != self.holder:
            raise FloorError(_("{user} does not hold control", user=by))
        if by == self.chair:
            raise FloorError(_("the chair keeps control until granting it to someone"))
        self.holder = self.chair
        return self._record(by, FloorState.RELEASED, by)

    def revoke(self, by: str) -> FloorEvent:
        self._require_chair(by, _("take control back"))
        if self.holder == self.chair:
            raise FloorError(_("the chair already holds control"))
        previous = self.holder
        self.holder = self.chair
        return self._record(previous, FloorState.REVOKED, by)

    def left(self, user: str) -> FloorEvent | None:
        """``user`` disconnected: control returns to the chair; a pending request lapses."""
        if user == self.holder and user != self.chair:
            self.holder = self.chair
            return self._record(user, FloorState.RELEASED, "disconnect")
        if self.requests.get(user) is FloorState.PENDING:
            return self._record(user, FloorState.DENIED, "disconnect")
        return None

    def snapshot(self) -> dict[str, object]:
        return {"chair": self.chair, "holder": self.holder, "pending": self.pending()}
