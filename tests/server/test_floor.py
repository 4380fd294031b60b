"""Floor control: every transition, and every illegal one refused."""

from __future__ import annotations

import pytest

from server.floor import FloorControl, FloorError, FloorState


def _floor() -> FloorControl:
    return FloorControl("chair", ["chair", "ann", "bob"], clock=lambda: 1000.0)


def test_control_starts_with_the_chair() -> None:
    floor = _floor()
    assert floor.holder == "chair" and floor.may_control("chair")
    assert not floor.may_control("ann")


def test_request_grant_release() -> None:
    floor = _floor()
    assert floor.request("ann").state is FloorState.PENDING
    assert floor.pending() == ["ann"]
    assert floor.grant("chair", "ann").state is FloorState.GRANTED
    assert floor.may_control("ann") and not floor.may_control("chair")
    assert floor.release("ann").state is FloorState.RELEASED
    assert floor.holder == "chair"


def test_deny_and_revoke() -> None:
    floor = _floor()
    floor.request("bob")
    assert floor.deny("chair", "bob").state is FloorState.DENIED
    assert floor.holder == "chair"
    floor.request("bob")  # may ask again after a refusal
    floor.grant("chair", "bob")
    event = floor.revoke("chair")
    assert (event.user, event.state, event.by) == ("bob", FloorState.REVOKED, "chair")
    assert floor.holder == "chair"


def test_granting_another_revokes_the_current_holder() -> None:
    floor = _floor()
    floor.request("ann")
    floor.grant("chair", "ann")
    floor.request("bob")
    floor.grant("chair", "bob")
    assert floor.holder == "bob"
    assert floor.requests["ann"] is FloorState.REVOKED


def test_holder_leaving_returns_control_to_the_chair() -> None:
    floor = _floor()
    floor.request("ann")
    floor.grant("chair", "ann")
    assert floor.left("ann") is not None and floor.holder == "chair"
    floor.request("bob")
    left = floor.left("bob")
    assert left is not None and left.state is FloorState.DENIED and floor.pending() == []
    assert floor.left("chair") is None  # the chair leaving keeps it the holder


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda f: f.request("chair"), "already holds"),
        (lambda f: f.request("eve"), "not a participant"),
        (lambda f: (f.request("ann"), f.request("ann")), "already asked"),
        (lambda f: f.grant("chair", "ann"), "has not asked"),
        (lambda f: (f.request("ann"), f.grant("bob", "ann")), "only the chair"),
        (lambda f: (f.request("ann"), f.deny("ann", "ann")), "only the chair"),
        (lambda f: f.deny("chair", "bob"), "has not asked"),
        (lambda f: f.release("ann"), "does not hold"),
        (lambda f: f.release("chair"), "chair keeps control"),
        (lambda f: f.revoke("chair"), "already holds"),
        (lambda f: (f.request("ann"), f.grant("chair", "ann"), f.revoke("ann")), "only the chair"),
        (
            lambda f: (f.request("ann"), f.grant("chair", "ann"), f.grant("chair", "ann")),
            "has not asked",
        ),
    ],
)
def test_illegal_transitions_are_refused(action: object, message: str) -> None:
    floor = _floor()
    with pytest.raises(FloorError, match=message):
        action(floor)  # type: ignore[operator]


def test_every_change_is_logged_with_who_and_when() -> None:
    floor = _floor()
    floor.request("ann")
    floor.grant("chair", "ann")
    floor.revoke("chair")
    assert [(e.user, e.state.value, e.by, e.at) for e in floor.log] == [
        ("ann", "pending", "ann", 1000.0),
        ("ann", "granted", "chair", 1000.0),
        ("ann", "revoked", "chair", 1000.0),
    ]
