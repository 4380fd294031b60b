"""The notes' HTTP API: invited experts read and write, others are refused like the room;
each new version reaches the room's sockets; bad input is a 400; after the end, a 409."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientWebSocketResponse

from tests.server.test_consultations_api import Person, people, server  # noqa: F401

NOTES = "/api/consultations/c1/notes"  # c1 invites the chair and alice, not bob


async def _next_notes(ws: ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=10)
        if message["type"] == "notes":
            return message


async def test_invited_experts_share_the_notes(people: dict[str, Person]) -> None:  # noqa: F811
    chair, alice = people["chair"], people["alice"]
    status, empty = await alice.get(NOTES)
    assert (status, empty["version"], empty["text"], empty["read_only"]) == (200, 0, "", False)
    ws = await alice.client.ws_connect("/api/consultations/c1/ws")
    assert (await ws.receive_json())["type"] == "room"
    status, saved = await chair.post(NOTES, {"base_version": 0, "text": "Plan:\n"})
    assert (status, saved["version"], saved["saved"], saved["by"]) == (200, 1, True, "chair")
    told = await _next_notes(ws)  # alice's page hears of it over the room's socket
    assert (told["version"], told["text"], told["by_name"]) == (1, "Plan:\n", "Chair")
    status, mine = await alice.post(NOTES, {"base_version": 0, "text": "Findings: rash\n"})
    assert mine["text"] == "Findings: rash\nPlan:\n"  # merged, nothing lost
    assert (await alice.get(NOTES))[1]["text"] == "Findings: rash\nPlan:\n"
    await ws.close()


async def test_others_are_refused_like_the_room(people: dict[str, Person]) -> None:  # noqa: F811
    bob, nurse, alice = people["bob"], people["nurse"], people["alice"]
    for person in (bob, nurse):
        assert (await person.get(NOTES))[0] == 403
        status, body = await person.post(NOTES, {"base_version": 0, "text": "mine"})
        assert (status, body["error"]) == (403, "you are not invited to this consultation")
    assert (await alice.get("/api/consultations/nope/notes"))[0] == 404
    assert (await alice.get(NOTES))[1]["text"] == ""


async def test_bad_input_is_refused_and_changes_nothing(people: dict[str, Person]) -> None:  # noqa: F811
    alice = people["alice"]
    for body in (
        {"base_version": 3, "text": "x"},
        {"base_version": "x", "text": "x"},
        {"text": "x"},
        {"base_version": 0, "text": "x" * 100_001},
    ):
        status, answer = await alice.post(NOTES, body)
        assert status == 400 and answer["error"]
    status, answer = await alice.post(NOTES, {"base_version": 3, "text": "x"})
    assert "base_version" in answer["error"]
    resp = await alice.client.post(
        NOTES, data="base_version=0", headers={"X-CSRF-Token": alice.csrf}
    )
    assert resp.status == 415
    assert (await alice.get(NOTES))[1]["version"] == 0


async def test_read_only_once_ended(people: dict[str, Person]) -> None:  # noqa: F811
    chair, alice = people["chair"], people["alice"]
    await alice.post(NOTES, {"base_version": 0, "text": "kept"})
    assert (await chair.post("/api/consultations/c1/end"))[0] == 200
    status, body = await alice.post(NOTES, {"base_version": 1, "text": "kept, and more"})
    assert status == 409 and "ended" in body["error"]
    status, notes = await alice.get(NOTES)
    assert (status, notes["text"], notes["read_only"]) == (200, "kept", True)
