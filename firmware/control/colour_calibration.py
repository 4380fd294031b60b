"""True colour (issue 22): calibrate on the 24-patch card, keep it per lighting preset.

Calibrating takes a frame, finds the card (:mod:`~firmware.control.card_finder`),
measures its mean ΔE2000, fits gains and a colour-correction matrix
(:func:`clinicam.colourcard.fit_correction`), sets them as libcamera's ``ColourGains``
and ``ColourCorrectionMatrix`` (the same controls on a Pi and in the simulation), takes
another frame and measures again. A calibration that does not make the colour better
is undone. A good one is kept in ``colour.json`` in the state directory, for this rig
and the lighting preset, and applied again whenever that preset is chosen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError

from clinicam.colourcard import fit_correction, mean_delta_e
from clinicam.configfile import StrictModel
from clinicam.files import write_atomically
from clinicam.protocol import AWB_MODES, ColourCalibration
from firmware.control.card_finder import find_card
from firmware.control.router import CommandFailed
from firmware.hardware.protocols import Camera

_LOGGER = logging.getLogger(__name__)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
NO_CARD = "no_card"
CARD_LOST = "card_lost"
NO_GAIN = "not_better"
BAD_FIT = "bad_fit"
GOOD_ENOUGH = 2.0  # mean ΔE2000 at which a fit that does not improve is no failure


class StoredCalibration(StrictModel):
    """One lighting preset's calibration on one rig."""

    rig: str = Field(max_length=64)
    lighting: str = Field(max_length=20)
    gains: tuple[float, float]
    ccm: tuple[float, float, float, float, float, float, float, float, float]
    delta_e: float
    delta_e_before: float
    at: str

    def public(self) -> ColourCalibration:
        return ColourCalibration(
            lighting=self.lighting,
            delta_e=round(self.delta_e, 2),
            delta_e_before=round(self.delta_e_before, 2),
            at=self.at,
        )


class CalibrationFile(StrictModel):
    calibrations: list[StoredCalibration] = Field(default_factory=list)


class CalibrationStore:
    """Calibrations by (rig, lighting preset), in a JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._items: dict[tuple[str, str], StoredCalibration] = {}
        if path.exists():
            try:
                for item in CalibrationFile.model_validate_json(path.read_bytes()).calibrations:
                    self._items[(item.rig, item.lighting)] = item
            except (ValidationError, OSError) as exc:
                broken = path.with_suffix(".corrupt")
                _LOGGER.error(
                    "colour calibrations %s unreadable (%s); kept as %s", path, exc, broken
                )
                path.replace(broken)

    def get(self, rig: str, lighting: str) -> StoredCalibration | None:
        return self._items.get((rig, lighting))

    def save(self, item: StoredCalibration) -> None:
        self._items[(item.rig, item.lighting)] = item
        data = CalibrationFile(calibrations=list(self._items.values())).model_dump(mode="json")
        write_atomically(self._path, json.dumps(data, indent=1).encode())


def _rgb(camera: Camera) -> np.ndarray:
    frame: np.ndarray = camera.capture().to_ndarray(format="rgb24")
    return frame


class ColourCalibrator:
    """Calibrates the camera's colour and re-applies stored calibrations."""

    def __init__(
        self, camera: Camera, store: CalibrationStore, rig: str, *, settle_s: float = 0.0
    ) -> None:
        self._camera = camera
        self._store = store
        self._rig = rig
        self._settle_s = settle_s  # for new controls to reach the frames (a Pi: a few)
        self._lock = asyncio.Lock()
        self.lighting = "auto"  # the lighting preset chosen now
        self.current: StoredCalibration | None = None  # the calibration in use, if any

    def state(self) -> ColourCalibration | None:
        return self.current.public() if self.current is not None else None

    def controls_for(self, lighting: str) -> dict[str, Any] | None:
        """The camera controls of ``lighting``'s stored calibration (and make it current),
        or ``None`` when it has none (then nothing is calibrated any more)."""
        self.lighting = lighting
        stored = self._store.get(self._rig, lighting)
        self.current = stored
        if stored is None:
            return None
        return {
            "AwbEnable": False,
            "ColourGains": stored.gains,
            "ColourCorrectionMatrix": stored.ccm,
        }

    def forget_current(self) -> None:
        """The colour was changed by hand: the calibration no longer describes the view."""
        self.current = None

    async def calibrate(self, lighting: str | None) -> dict[str, Any]:
        """Calibrate for ``lighting`` (default: the preset chosen now); the command's result."""
        if lighting is not None and lighting not in AWB_MODES:
            raise CommandFailed(f"lighting: unknown lighting preset {lighting!r}")
        async with self._lock:
            item = await asyncio.to_thread(self._calibrate, lighting or self.lighting)
        self._store.save(item)
        self.lighting, self.current = item.lighting, item
        _LOGGER.info(
            "colour calibrated for %s: mean ΔE2000 %.2f → %.2f",
            item.lighting,
            item.delta_e_before,
            item.delta_e,
        )
        return {
            "lighting": item.lighting,
            "delta_e_before": round(item.delta_e_before, 2),
            "delta_e_after": round(item.delta_e, 2),
        }

    def _calibrate(self, lighting: str) -> StoredCalibration:
        reading = find_card(_rgb(self._camera))
        if reading is None:
            raise CommandFailed(
                "no colour card found: hold the 24-patch card flat in view and try again",
                NO_CARD,
            )
        before = mean_delta_e(reading.patches)
        meta = self._camera.metadata()
        gains = tuple(float(g) for g in meta.get("ColourGains") or (1.0, 1.0))
        ccm = tuple(float(v) for v in meta.get("ColourCorrectionMatrix") or IDENTITY)
        undo: dict[str, Any] = (
            {"AwbEnable": True, "AwbMode": int(meta.get("AwbMode", 0))}
            if meta.get("AwbEnable", True)
            else {"ColourGains": gains, "ColourCorrectionMatrix": ccm}
        )
        try:
            fit = fit_correction(reading.patches, np.array(ccm).reshape(3, 3))
        except ValueError as exc:
            raise CommandFailed(f"the colour card could not be measured: {exc}", BAD_FIT) from None
        new_gains = (
            min(max(gains[0] * fit.red_gain, 0.01), 32.0),
            min(max(gains[1] * fit.blue_gain, 0.01), 32.0),
        )
        self._camera.set_controls(
            {"AwbEnable": False, "ColourGains": new_gains, "ColourCorrectionMatrix": fit.ccm}
        )
        if self._settle_s > 0:
            time.sleep(self._settle_s)
        after_reading = find_card(_rgb(self._camera))
        after = mean_delta_e(after_reading.patches) if after_reading is not None else None
        new_ccm = fit.ccm
        if after is None or after >= before:
            self._camera.set_controls(undo)
            if after is None:
                raise CommandFailed(
                    "the colour card was lost while calibrating: hold it still and try again",
                    CARD_LOST,
                )
            if before > GOOD_ENOUGH:
                raise CommandFailed(
                    f"calibration would not make the colour better (ΔE {before:.1f} → "
                    f"{after:.1f}); nothing changed",
                    NO_GAIN,
                )
            # Already true: keep (and remember) the colour as it is.
            new_gains, new_ccm, after = (gains[0], gains[1]), ccm, before
        return StoredCalibration(
            rig=self._rig,
            lighting=lighting,
            gains=new_gains,
            ccm=new_ccm,
            delta_e=after,
            delta_e_before=before,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
