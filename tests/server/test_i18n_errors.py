"""What a service refuses reaches the reader in their language: the same refusal in
English by default and in Simplified Chinese for ``Accept-Language: zh-CN``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from clinicam.i18n import CHINESE, translate
from server.app import build_app
from server.auth import hash_secret
from server.config import ServerConfig
from server.records.ingest.formats import DEFAULT_LIMITS, Category, IngestError
from server.records.ingest.sandbox import inspect_sandboxed

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}


def _config(state_dir: Path) -> ServerConfig:
    return ServerConfig.model_validate(
        {
            "state_dir": str(state_dir),
            "http": {"cookie_secure": False},
            "mqtt": {"port": 1, "username": "server", "password": "x"},  # nothing listens
            "experts": [
                {"username": u, "display_name": u.title(), "password_hash": hash_secret(p)}
                for u, p in PASSWORDS.items()
            ],
            "devices": [
                {"device_id": "cam-1", "clinic": "Hill Clinic", "token_hash": hash_secret("t")}
            ],
            "consultations": [
                {
                    "id": "c1",
                    "patient_id": "P-1",
                    "appliance": "cam-1",
                    "chair": "alice",
                    "experts": ["alice", "bob"],
                }
            ],
        }
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    app = build_app(_config(tmp_path), asyncio.get_running_loop())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _login(client: TestClient[Any, Any], user: str) -> str:
    resp = await client.post("/api/login", json={"username": user, "password": PASSWORDS[user]})
    assert resp.status == 200
    return str((await resp.json())["csrf"])


async def _error(resp: Any) -> tuple[int, str]:
    return resp.status, str((await resp.json())["error"])


async def test_a_wrong_password_is_refused_in_the_readers_language(
    client: TestClient[Any, Any],
) -> None:
    wrong = {"username": "alice", "password": "no"}
    assert await _error(await client.post("/api/login", json=wrong)) == (
        401,
        "wrong user name or password",
    )
    assert await _error(await client.post("/api/login", json=wrong, headers=ZH)) == (
        401,
        "用户名或密码错误",
    )


async def test_a_records_404_in_chinese(client: TestClient[Any, Any]) -> None:
    await _login(client, "alice")
    en = await _error(await client.get("/api/patients/x1/archive"))
    assert en == (404, "no such patient, or no current access grant for it")
    zh = await _error(await client.get("/api/patients/x1/archive", headers=ZH))
    assert zh == (404, "没有此患者，或您对其没有有效的访问授权")


async def test_camera_command_refusals_in_chinese(client: TestClient[Any, Any]) -> None:
    csrf = await _login(client, "alice")
    headers = {"X-CSRF-Token": csrf, **ZH}
    # not a camera command (the clinic station's privacy switch): the service's words
    resp = await client.post(
        "/api/consultations/c1/camera", headers=headers, json={"op": "privacy", "enabled": True}
    )
    assert await _error(resp) == (400, "op：'privacy' 不是摄像头命令")
    # valid, from the chair, but no broker
    resp = await client.post(
        "/api/consultations/c1/camera", headers=headers, json={"op": "ptz.relative", "pan": 5}
    )
    assert await _error(resp) == (503, "服务器未连接到消息代理：命令未发送")
    await client.post("/api/logout", headers=headers)
    csrf = await _login(client, "bob")
    resp = await client.post(
        "/api/consultations/c1/camera",
        headers={"X-CSRF-Token": csrf, **ZH},
        json={"op": "ptz.relative", "pan": 5},
    )
    assert await _error(resp) == (403, "摄像头控制权在 alice 手中")
    resp = await client.post(
        "/api/consultations/c1/camera",
        headers={"X-CSRF-Token": csrf},
        json={"op": "ptz.relative", "pan": 5},
    )
    assert await _error(resp) == (403, "camera control is held by alice")


def test_an_upload_refusal_survives_the_sandbox_and_reads_in_chinese(tmp_path: Path) -> None:
    """The inspection runs in a worker process: its refusal crosses the pipe still marked."""
    gif = tmp_path / "scan.gif"
    gif.write_bytes(b"GIF89a" + bytes(64))
    with pytest.raises(IngestError) as caught:
        inspect_sandboxed(gif, None, DEFAULT_LIMITS)
    reason = caught.value.reason
    assert reason == (
        "unsupported file type: the content is a GIF image, not a photo, scan, "
        "DICOM image or voice recording"
    )
    assert translate(reason, CHINESE) == (
        "不支持的文件类型：内容是GIF 图像，不是照片、扫描件、DICOM 图像或语音录音"
    )
    note = tmp_path / "note.dcm"
    note.write_bytes(b"hello world")
    with pytest.raises(IngestError) as caught:
        inspect_sandboxed(note, Category.CT, DEFAULT_LIMITS)
    assert translate(caught.value.reason, CHINESE) == (
        "声明为 ct_image，但内容不是 DICOM（没有 DICM 前导区）；看起来是以 'hello world' 开头的文本"
    )
