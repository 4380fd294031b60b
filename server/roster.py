"""Who and what the server knows: people, appliances and consultations, as a read view.

The directory (:mod:`server.directory`) keeps them in the database and implements this
view; components below it (sign-in, device tokens, grants, rooms) are given a
:class:`Roster` and never ask where its entries live. A :class:`server.config.ServerConfig`
satisfies it too, for tools that only read a configuration file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from server.config import ConsultationConfig, DeviceAccount, ExpertAccount


class Roster(Protocol):
    """Read-only lookups of accounts, appliances and consultations."""

    @property
    def experts(self) -> Sequence[ExpertAccount]:
        """Every account that may sign in (disabled ones are left out)."""
        ...

    @property
    def devices(self) -> Sequence[DeviceAccount]:
        """Every enrolled appliance that is not revoked."""
        ...

    @property
    def consultations(self) -> Sequence[ConsultationConfig]:
        """The open consultations (scheduled or live), each with a chair and invited experts."""
        ...

    def expert(self, username: str) -> ExpertAccount | None: ...

    def device(self, device_id: str) -> DeviceAccount | None: ...

    def consultation(self, cid: str) -> ConsultationConfig | None: ...

    def stations_of(self, username: str) -> list[DeviceAccount]: ...
