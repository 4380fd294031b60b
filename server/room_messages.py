"""What a room page may send over its socket: each message validated before the room
sees it (an unknown type or a bad field is refused)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from clinicam.protocol import WireModel


class SelectMain(WireModel):
    type: Literal["main"]
    window: str = Field(min_length=1, max_length=80)


class FloorAction(WireModel):
    type: Literal["floor"]
    action: Literal["request", "grant", "deny", "release", "revoke"]
    user: str | None = Field(None, max_length=64)


class AudioOnly(WireModel):
    type: Literal["audio_only"]
    on: bool


RoomMessage = Annotated[SelectMain | FloorAction | AudioOnly, Field(discriminator="type")]
