"""Relevance on the appliance (R7, D3): fetch the patient's course data, run the model.

The server's ``model.relevance`` command carries a short-lived token scoped to one
patient. The appliance acknowledges at once, then fetches that patient's record items
over HTTPS with its device token plus that token, runs each through its branch of the
int8 LiteRT model (one thread), fuses them, and posts the result back. Nothing is kept
on the SD card: the items live in memory only for the computation.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from pathlib import Path
from typing import Any

import aiohttp

from clinicam.files import write_atomically
from clinicam.protocol import RelevanceRequest
from firmware.config import ModelRuntimeConfig, ServerLinkConfig
from firmware.control.router import CommandFailed, Result

_LOGGER = logging.getLogger(__name__)
ATTEMPTS = 3
CURRENT = "current.json"


class RelevanceRunner:
    """Loads the model once and computes relevance in the background per request."""

    def __init__(
        self,
        server: ServerLinkConfig,
        device_id: str,
        config: ModelRuntimeConfig,
        folder: Path,
    ) -> None:
        self._server = server
        self._base = f"{server.url}/api/appliances/{device_id}"
        self._config = config
        self._folder = folder  # models downloaded from the server, and current.json
        self._model: Any | None = None
        self._error: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def load(self) -> None:
        """Load and verify the model (blocking; run in a thread at start-up)."""
        if not self._config.enabled:
            self._error = "relevance is switched off on this appliance"
            return
        try:
            from models.runtime import RelevanceModel

            followed = self._followed()
            if followed is not None:
                self._model = RelevanceModel.load(followed, num_threads=self._config.threads)
            elif self._config.tflite is None:
                self._model = RelevanceModel.load_demo(num_threads=self._config.threads)
            else:
                self._model = RelevanceModel.load(
                    self._config.tflite, self._config.card, num_threads=self._config.threads
                )
            _LOGGER.info("relevance model %s ready", self._model.version)
        except Exception as exc:  # a broken model file must not stop the camera
            self._error = f"the relevance model could not be loaded: {exc}"
            _LOGGER.error("%s", self._error)

    def _followed(self) -> Path | None:
        """The model downloaded from the server last time, if any (and still there)."""
        marker = self._folder / CURRENT
        if not self._config.follow_server or not marker.is_file():
            return None
        try:
            name = json.loads(marker.read_text())["tflite"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        path = self._folder / Path(str(name)).name
        return path if path.is_file() else None

    async def sync(self, http: aiohttp.ClientSession) -> bool:
        """Follow the server's model: download, verify and switch if the version differs."""
        if not self._config.follow_server:
            return False
        headers = {"Authorization": f"Bearer {self._server.token.get_secret_value()}"}
        async with http.get(f"{self._base}/model", headers=headers) as resp:
            if resp.status != 200:
                return False
            wanted = await resp.json()
        if wanted.get("version") == self.version:
            return False
        version = re.sub(r"[^A-Za-z0-9_.-]", "_", str(wanted["version"]))[:64]
        files = {}
        for part in ("file", "card"):
            async with http.get(f"{self._base}/model/{part}", headers=headers) as resp:
                if resp.status != 200:
                    return False
                files[part] = await resp.read()
        tflite = self._folder / f"{version}.tflite"
        card = self._folder / f"{version}.card.json"

        def install() -> Any:
            from models.runtime import RelevanceModel

            self._folder.mkdir(parents=True, exist_ok=True)
            write_atomically(card, files["card"])
            write_atomically(tflite, files["file"])
            model = RelevanceModel.load(tflite, card, num_threads=self._config.threads)
            write_atomically(self._folder / CURRENT, json.dumps({"tflite": tflite.name}).encode())
            return model

        try:
            model = await asyncio.to_thread(install)
        except Exception as exc:  # a bad download keeps the model that works
            _LOGGER.error("model %s from the server refused: %s", version, exc)
            return False
        _LOGGER.info("now running relevance model %s (was %s)", model.version, self.version)
        self._model = model
        return True

    @property
    def version(self) -> str | None:
        return None if self._model is None else str(self._model.version)

    async def start(self, command: RelevanceRequest) -> Result:
        """The command handler: accept and compute in the background."""
        if self._model is None:
            raise CommandFailed(self._error or "the relevance model is still loading")
        task = asyncio.create_task(self._compute(command), name=f"relevance-{command.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"accepted": True, "model_version": self.version}

    def _headers(self, command: RelevanceRequest) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._server.token.get_secret_value()}",
            "X-Clinicam-Access": command.token,
        }

    async def _fetch(
        self, http: aiohttp.ClientSession, command: RelevanceRequest
    ) -> tuple[list[tuple[str, Any]], list[dict[str, Any]]]:
        headers = self._headers(command)
        params = {"patient": str(command.patient)}
        async with http.get(f"{self._base}/course", headers=headers, params=params) as resp:
            if resp.status != 200:
                raise RuntimeError(f"course list: HTTP {resp.status} {await resp.text()}")
            listing = await resp.json()
        items: list[tuple[str, Any]] = []
        refs: list[dict[str, Any]] = []
        for ref in listing["items"]:
            url = f"{self._base}/course/{ref['category']}/{int(ref['id'])}"
            async with http.get(url, headers=headers, params=params) as resp:
                if resp.status != 200:
                    _LOGGER.warning("record %s unavailable: HTTP %s", ref, resp.status)
                    continue
                if ref["category"] == "emr_entry":
                    item: Any = (await resp.json())["fields"]
                else:
                    item = await resp.read()
            items.append((str(ref["category"]), item))
            refs.append({"category": ref["category"], "id": int(ref["id"])})
        return items, refs

    async def _compute(self, command: RelevanceRequest) -> None:
        assert self._model is not None
        timeout = aiohttp.ClientTimeout(total=120)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with aiohttp.ClientSession(timeout=timeout) as http:
                    await self.sync(http)
                    items, refs = await self._fetch(http, command)
                    result = await asyncio.to_thread(
                        functools.partial(self._model.relevance, allow_synthetic=command.synthetic),
                        items,
                    )
                    if result is None:
                        _LOGGER.warning("no usable records for patient %s", command.patient)
                        return
                    for item in result.per_item:
                        refs[item.index]["probabilities"] = list(item.probabilities)
                    for skip in result.skipped:  # why, so the basis can say it
                        refs[skip.index]["skipped"] = {"code": skip.code, "reason": skip.reason}
                    body = {
                        "patient": command.patient,
                        "consultation": command.consultation,
                        "model_version": result.model_version,
                        "labels": list(result.labels),
                        "values": [float(v) for v in result.values],
                        "inputs": refs,
                        "requested_by": command.requested_by,
                    }
                    async with http.post(
                        f"{self._base}/relevance", json=body, headers=self._headers(command)
                    ) as resp:
                        if resp.status == 201:
                            _LOGGER.info("relevance for patient %s delivered", command.patient)
                            return
                        raise RuntimeError(f"result: HTTP {resp.status} {await resp.text()}")
            except (aiohttp.ClientError, OSError, RuntimeError, TimeoutError) as exc:
                _LOGGER.warning("relevance attempt %d failed: %s", attempt, exc)
                await asyncio.sleep(2.0 * attempt)
        _LOGGER.error("relevance for patient %s not delivered", command.patient)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
