"""Camera presets, kept in a small JSON file written atomically (power cuts happen)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import Field, ValidationError

from clinicam.configfile import StrictModel
from clinicam.files import write_atomically

_LOGGER = logging.getLogger(__name__)


class Preset(StrictModel):
    """A saved view."""

    name: str = Field("", max_length=40)
    pan: float = Field(ge=-180.0, le=180.0)
    tilt: float = Field(ge=-180.0, le=180.0)
    zoom: float = Field(1.0, ge=1.0, le=8.0)


class PresetFile(StrictModel):
    presets: dict[int, Preset] = Field(default_factory=dict)


class PresetStore:
    """Up to :data:`MAX_PRESETS` slots, persisted across restarts."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._presets: dict[int, Preset] = {}
        if path.exists():
            try:
                self._presets = PresetFile.model_validate_json(path.read_bytes()).presets
            except (ValidationError, OSError) as exc:
                broken = path.with_suffix(".corrupt")
                _LOGGER.error(
                    "preset file %s unreadable (%s); kept as %s, starting empty", path, exc, broken
                )
                path.replace(broken)

    def all(self) -> dict[int, Preset]:
        return dict(sorted(self._presets.items()))

    def get(self, slot: int) -> Preset | None:
        return self._presets.get(slot)

    def save(self, slot: int, preset: Preset) -> None:
        self._presets[slot] = preset
        self._flush()

    def delete(self, slot: int) -> bool:
        if self._presets.pop(slot, None) is None:
            return False
        self._flush()
        return True

    def _flush(self) -> None:
        data = PresetFile(presets=self._presets).model_dump(mode="json")
        write_atomically(self._path, json.dumps(data, indent=1).encode())
