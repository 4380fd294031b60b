"""The provisioning log in the appliance's language (issue 17), on a boot and a root folder.

``device.language`` of ``clinicam.toml`` (else the device's present setting, else the
appliance default, zh-CN) picks the language of ``clinicam-provision.log``; a file that
cannot say (not TOML, an unknown language) gets every line in Chinese, then in English.
The status LED shows the same patterns whatever the language.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from clinicam.i18n import CHINESE, ENGLISH, translate
from firmware.hardware.gpio import GpioStatusLight, LightPattern
from firmware.provision import provision
from firmware.provisioning.problems import Problem
from tests.firmware.test_provision import GOOD, NOW, PSK, Card, Pki, _card, _replace, make_pki

CJK = re.compile(r"[\u3400-\u9fff]")
CHINESE_GOOD = _replace('language = "en"', 'language = "zh-CN"')(GOOD)
NO_LANGUAGE = _replace('language = "en"\n', "")(GOOD)


def _bad(text: str) -> str:
    """Four problems at once: an unknown key, a short psk, a bad type, a bad calibration."""
    text = _replace('id = "cam-7"', 'id = "cam-7"\ncolour = "red"')(text)
    text = _replace(f'psk = "{PSK}"', 'psk = "short"')(text)
    text = _replace("priority = 10", 'priority = "high"')(text)
    return _replace("centre_deg = 92.0", "centre_deg = 92.0\nmin_deg = 5.0")(text)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture
def card(tmp_path: Path) -> Card:
    return _card(tmp_path / "device")


@pytest.fixture
def light() -> Iterator[GpioStatusLight]:
    pins = MockFactory()
    led = GpioStatusLight(22, pin_factory=pins)
    yield led
    led.close()
    pins.close()


def _lines(card: Card) -> list[str]:
    return card.log_text().split("\r\n")


def _english_of(problems: tuple[Problem, ...]) -> list[str]:
    return [translate(text, ENGLISH) for p in problems for text in (p.message, p.hint) if text]


def test_a_chinese_device_gets_a_chinese_log(card: Card, pki: Pki, light: GpioStatusLight) -> None:
    card.put(_bad(CHINESE_GOOD), pki)
    result = provision(card.boot, card.root, light=light, now=lambda: NOW)
    assert result.status == "failed" and light.pattern is LightPattern.PROVISION_FAILED
    lines, log = _lines(card), card.log_text()
    assert lines[0] == "失败 — 设备未做任何更改"
    assert "device.colour：未知的键" in lines
    assert "wifi[1].psk：必须为 8 到 63 个字符" in lines
    assert "wifi[1].priority：必须是整数" in lines
    assert "pantilt.pan.min_deg：不能大于 0.0" in lines
    assert "    修改方法：请添加此设置" not in lines  # nothing is missing here
    assert len(result.problems) == 4
    for english in _english_of(result.problems):
        assert english not in log, f"English-only problem text in a Chinese log: {english!r}"
    for word in ("FAILED", "fix:", "Input should", "unknown key", "must "):
        assert word not in log

    card.put(CHINESE_GOOD, pki)  # corrected
    result = provision(card.boot, card.root, light=light, now=lambda: NOW)
    assert result.status == "ok" and light.pattern is LightPattern.PROVISION_OK
    lines = _lines(card)
    assert lines[0] == "成功 — cam-7 已于 2025-03-04 10:30:00 UTC 完成配置"
    assert "语言：简体中文（zh-CN）" in lines
    assert "OK" not in card.log_text() and "provisioned" not in card.log_text()
    config = tomllib.loads((card.root / "etc/clinicam/appliance.toml").read_text())
    assert config["language"] == "zh-CN"  # the appliance speaks it too
    applied = (card.boot / "clinicam.toml.applied").read_bytes().decode("utf-8")
    assert applied.startswith("# 由 clinicam 首次启动配置写入。本文件不含机密信息。\r\n")
    assert tomllib.loads(applied)["device"]["language"] == "zh-CN"


def test_an_english_device_gets_an_english_log(
    card: Card, pki: Pki, light: GpioStatusLight
) -> None:
    card.put(_bad(GOOD), pki)
    result = provision(card.boot, card.root, light=light, now=lambda: NOW)
    assert light.pattern is LightPattern.PROVISION_FAILED
    lines, log = _lines(card), card.log_text()
    assert lines[0] == "FAILED — nothing was changed"
    assert "device.colour: unknown key" in lines
    assert "wifi[1].psk: must have 8 to 63 characters" in lines
    assert "    fix: a whole number from -999 to 999; higher is tried first" in lines
    assert not CJK.search(log)
    for problem in result.problems:  # the log says what the program reported, word for word
        assert f"{problem.key}: {translate(problem.message, ENGLISH)}" in lines

    card.put(GOOD, pki)
    assert provision(card.boot, card.root, light=light, now=lambda: NOW).status == "ok"
    assert light.pattern is LightPattern.PROVISION_OK
    assert _lines(card)[0] == "OK — provisioned cam-7 at 2025-03-04 10:30:00 UTC"
    assert "language: English (en)" in _lines(card)
    assert not CJK.search(card.log_text())


@pytest.mark.parametrize(
    "broken",
    ["this is [not toml\n", "\xff\xfe not UTF-8", _replace('"en"', '"fr"')(GOOD)],
    ids=["not TOML", "not UTF-8", "unknown language"],
)
def test_a_file_that_cannot_say_its_language_gets_a_log_in_both(
    card: Card, pki: Pki, light: GpioStatusLight, broken: str
) -> None:
    card.put(GOOD, pki)
    card.toml.write_bytes(broken.encode("latin-1") if "\xff" in broken else broken.encode())
    result = provision(card.boot, card.root, light=light, now=lambda: NOW)
    assert result.status == "failed" and light.pattern is LightPattern.PROVISION_FAILED
    lines = _lines(card)
    assert lines[:2] == ["失败 — 设备未做任何更改", "FAILED — nothing was changed"]
    for problem in result.problems:  # every problem and fix: Chinese, then English
        message, hint = translate(problem.message, ENGLISH), translate(problem.hint, ENGLISH)
        for english in (f"{problem.key}: {message}", f"    fix: {hint}"):
            assert english in lines
            chinese = lines[lines.index(english) - 1]
            assert CJK.search(chinese) and chinese != english
        assert translate(problem.message, CHINESE) in lines[lines.index(english) - 3]
    assert "The device keeps its previous settings." in lines
    assert lines.index("设备保留原有设置。") + 1 == lines.index(
        "The device keeps its previous settings."
    )


def test_without_device_language_the_log_follows_the_device(card: Card, pki: Pki) -> None:
    card.put(NO_LANGUAGE, pki)  # the image's appliance.toml says nothing: the default, zh-CN
    assert provision(card.boot, card.root, now=lambda: NOW).status == "ok"
    assert _lines(card)[0].startswith("成功 — cam-7")

    appliance = card.root / "etc/clinicam/appliance.toml"
    appliance.write_text('language = "en"\n' + appliance.read_text())
    card.put(_replace("fps = 10", "fps = 500")(NO_LANGUAGE), pki)
    assert provision(card.boot, card.root, now=lambda: NOW).status == "failed"
    assert _lines(card)[0] == "FAILED — nothing was changed"
    assert "camera.fps: must be at most 60" in _lines(card)
