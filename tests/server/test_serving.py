"""Which consultation an appliance serves (its archive footage and its station follow it):
never a booking still to come or one whose time has passed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from server.config import ConsultationConfig, ServerConfig
from server.db import utcnow
from server.directory.book import Consultation
from server.room import RoomRegistry


class _Roster:
    def __init__(self, consultations: Sequence[ConsultationConfig]) -> None:
        self.consultations = consultations


def _booked(cid: str, start: datetime, *, state: str = "scheduled") -> Consultation:
    return Consultation(
        id=cid,
        patient_id=f"P-{cid}",
        appliance="cam-1",
        chair="alice",
        experts=["alice"],
        state=state,
        scheduled_start=start,
        scheduled_end=start + timedelta(hours=1),
    )


def _serving(tmp_path: Path, *consultations: ConsultationConfig) -> str | None:
    config = ServerConfig.model_validate({"state_dir": str(tmp_path)})
    rooms = RoomRegistry(config, _Roster(consultations), {})  # type: ignore[arg-type]
    chosen = rooms.serving("cam-1")
    return chosen.id if chosen else None


def test_a_booking_next_week_is_not_served(tmp_path: Path) -> None:
    assert _serving(tmp_path, _booked("later", utcnow() + timedelta(days=7))) is None


def test_the_booking_whose_time_it_is_is_served(tmp_path: Path) -> None:
    now = utcnow()
    later, current = _booked("later", now + timedelta(days=1)), _booked("now", now)
    assert _serving(tmp_path, later, current) == "now"
    opening = _booked("opening", now + timedelta(minutes=10))  # experts may join already
    assert _serving(tmp_path, opening) == "opening"
    passed = _booked("passed", now - timedelta(hours=2))  # not yet marked a no-show
    assert _serving(tmp_path, passed) is None


def test_live_and_standing_consultations_are_served(tmp_path: Path) -> None:
    live = _booked("live", utcnow() - timedelta(hours=3), state="live")  # ran over
    assert _serving(tmp_path, live) == "live"
    standing = ConsultationConfig(
        id="standing", patient_id="P-1", appliance="cam-1", chair="alice", experts=["alice"]
    )
    assert _serving(tmp_path, standing) == "standing"
