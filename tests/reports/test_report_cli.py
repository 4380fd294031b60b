"""``clinicam report verify FILE``: a signed report is valid (exit 0), a changed byte is
not (exit 1); ``--key`` pins the site's key; the output is in the technician's language."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from server.reports.envelope import report_key
from server.reports.service import DraftInput
from tests.reports.world import PASSWORD, World, build

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def signed(tmp_path: Path) -> tuple[World, Path]:
    world = build(tmp_path)
    await world.reports.save_draft("chair", world.cid, DraftInput("左前臂湿疹", "emollient", []))
    filed = await world.reports.sign("chair", world.cid, PASSWORD)
    report = await world.reports.read("chair", world.patient, str(filed["id"]), "download")
    path = tmp_path / "report.json"
    path.write_bytes(report.envelope)
    return world, path


def _clinicam(*args: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "CLINICAM_LANG": lang, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "clinicam_app", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_valid_report_exits_0_and_names_signer_and_key(signed: tuple[World, Path]) -> None:
    _world, path = signed
    done = _clinicam("report", "verify", str(path))
    assert done.returncode == 0, done.stderr
    assert "report signature valid" in done.stdout
    assert "Chair 医生 (chair)" in done.stdout
    kid = path.read_text().split('"key_id":"')[1][:16]
    assert kid in done.stdout
    chinese = _clinicam("report", "verify", str(path), lang="zh-CN")
    assert chinese.returncode == 0
    assert "报告签名有效" in chinese.stdout


def test_a_changed_byte_exits_1(signed: tuple[World, Path], tmp_path: Path) -> None:
    _world, path = signed
    data = bytearray(path.read_bytes())
    index = data.index("湿疹".encode())
    data[index + 2] ^= 0x01  # one byte of the Chinese findings
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(bytes(data))
    done = _clinicam("report", "verify", str(tampered))
    assert done.returncode == 1
    assert "report signature INVALID" in done.stderr


def test_key_option_pins_the_sites_key(signed: tuple[World, Path], tmp_path: Path) -> None:
    _world, path = signed
    site = tmp_path / "keys" / "report-signing.pub"
    assert _clinicam("report", "verify", str(path), "--key", str(site)).returncode == 0
    report_key(tmp_path / "other.key", create=True)
    other = tmp_path / "report-signing.pub"  # written beside other.key
    done = _clinicam("report", "verify", str(path), "--key", str(other))
    assert done.returncode == 1
    assert "another key" in done.stderr
