"""An appliance follows the model the server uses (R9): download, verify, switch, keep."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from firmware.config import ModelRuntimeConfig, ServerLinkConfig
from firmware.control.relevance import RelevanceRunner
from models.runtime import DEMO_CARD, DEMO_MODEL, RelevanceModel
from server.app import build_app
from server.state import STATE
from tests.records.api_helpers import PASSWORD, records_config


def _second_version(folder: Path, version: str = "relevance-demo-2") -> Path:
    """The demo model re-labelled as another version (same weights, valid card)."""
    folder.mkdir(parents=True)
    tflite = folder / f"{version}.tflite"
    shutil.copyfile(DEMO_MODEL, tflite)
    card = json.loads(DEMO_CARD.read_text())
    card["version"] = version
    card["model"]["file"] = tflite.name
    (folder / f"{version}.card.json").write_text(json.dumps(card))
    return tflite


async def test_the_appliance_follows_a_promoted_model_and_keeps_it(tmp_path: Path) -> None:
    app = build_app(
        records_config(tmp_path / "server", f"sqlite:///{tmp_path / 'db.sqlite'}"),
        asyncio.get_running_loop(),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        link = ServerLinkConfig(url=str(server.make_url("")).rstrip("/"), token=SecretStr(PASSWORD))
        folder = tmp_path / "appliance-models"
        runner = RelevanceRunner(link, "cam-1", ModelRuntimeConfig(), folder)
        await asyncio.to_thread(runner.load)
        assert runner.version == "relevance-demo-1"
        async with aiohttp.ClientSession() as http:
            assert not await runner.sync(http)  # same version: nothing to do
            new = _second_version(tmp_path / "promoted")
            app[STATE].relevance.replace_model(RelevanceModel.load(new), new)
            assert await runner.sync(http)
        assert runner.version == "relevance-demo-2"
        restarted = RelevanceRunner(link, "cam-1", ModelRuntimeConfig(), folder)
        await asyncio.to_thread(restarted.load)
        assert restarted.version == "relevance-demo-2"  # kept across a restart

        # A download that does not match its card is refused; the working model stays.
        v3 = _second_version(tmp_path / "v3", "relevance-demo-3")
        tampered = tmp_path / "tampered.tflite"
        data = bytearray(v3.read_bytes())
        data[len(data) // 2] ^= 0xFF
        tampered.write_bytes(bytes(data))
        app[STATE].relevance.replace_model(
            RelevanceModel.load(v3), tampered, v3.with_name("relevance-demo-3.card.json")
        )
        async with aiohttp.ClientSession() as http:
            assert not await restarted.sync(http)
        assert restarted.version == "relevance-demo-2"
        assert json.loads((folder / "current.json").read_text())["tflite"] == new.name
    finally:
        await server.close()
