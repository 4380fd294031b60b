"""Full-resolution stills taken while streaming, kept on disk and announced."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clinicam.files import write_atomically
from clinicam.protocol import Snapshot
from firmware.hardware.protocols import Camera

_LOGGER = logging.getLogger(__name__)
JPEG_QUALITY = 92


def _jpeg(still: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(still, "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


class SnapshotTaker:
    """Takes a still, writes ``<time>-<id>.jpg`` atomically and announces it."""

    def __init__(self, camera: Camera, directory: Path) -> None:
        self._camera = camera
        self._dir = directory
        self.announce: Callable[[dict[str, Any]], None] = lambda event: None
        self.on_taken: Callable[[], None] = lambda: None

    async def take(self, command: Snapshot) -> dict[str, Any]:
        still = await asyncio.to_thread(self._camera.capture_still)
        taken_at = datetime.now(UTC)
        data = await asyncio.to_thread(_jpeg, still)
        safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", command.id)[:40]
        name = f"{taken_at:%Y%m%dT%H%M%S%fZ}-{safe_id}.jpg"
        await asyncio.to_thread(write_atomically, self._dir / name, data)
        info = {
            "file": name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "width": int(still.shape[1]),
            "height": int(still.shape[0]),
            "taken_at": taken_at.isoformat(),
            "command_id": command.id,
            "requested_by": command.requested_by,
            "consultation": command.consultation,
        }
        # The sidecar says the still is complete and what it is; the uploader files it.
        sidecar = json.dumps(info).encode()
        await asyncio.to_thread(write_atomically, self._dir / f"{name}.json", sidecar)
        _LOGGER.info(
            "snapshot %s (%dx%d, %d bytes)", name, info["width"], info["height"], len(data)
        )
        self.announce({"type": "snapshot", **info})
        self.on_taken()
        return info
