"""The command line speaks the technician's language: ``LANG=zh_CN.UTF-8`` gives the
doctor's table, its fixes and the help in Simplified Chinese; the default stays English."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _clinicam(*args: str, lang: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES")}
    env.pop("CLINICAM_LANG", None)
    env["LANG"] = lang
    return subprocess.run(
        [sys.executable, "-m", "clinicam_app", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _appliance_toml(tmp_path: Path) -> Path:
    config = tmp_path / "appliance.toml"
    config.write_text(
        'device_id = "cam-7"\n'
        'backend = "sim"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        '[mqtt]\nhost = "127.0.0.1"\nport = 1\nusername = "cam-7"\npassword = "x"\n'
        '[server]\nurl = "http://127.0.0.1:1"\ntoken = "cam-7.secret"\n'
        "[sim]\nservo_seconds_per_60deg = 0.0\n"
    )
    return config


def test_the_doctor_prints_its_table_in_chinese(tmp_path: Path) -> None:
    config = _appliance_toml(tmp_path)
    done = _clinicam(
        "appliance", "doctor", "--config", str(config), "--timeout", "1", lang="zh_CN.UTF-8"
    )
    assert done.returncode == 1, done.stderr  # nothing listens on port 1: broker, server FAIL
    out = done.stdout
    assert "正在检查设备 cam-7（sim）" in out
    assert "检查项" in out and "修复方法" in out
    assert "模拟摄像头" in out  # the camera check's detail
    assert "MQTT 消息代理" in out and "无法连接 127.0.0.1:1" in out
    assert "请检查 mqtt.host 和 mqtt.port" in out  # the fix
    assert "项检查" in out and "项失败" in out  # the summary line
    english = _clinicam(
        "appliance", "doctor", "--config", str(config), "--timeout", "1", lang="C.UTF-8"
    )
    assert "Checking appliance cam-7 (sim)" in english.stdout
    assert "cannot reach 127.0.0.1:1" in english.stdout and "检查" not in english.stdout


def test_help_and_messages_follow_lang(tmp_path: Path) -> None:
    done = _clinicam("--help", lang="zh_CN.UTF-8")
    assert done.returncode == 0 and "面向基层诊所的远程会诊系统" in done.stdout
    done = _clinicam("appliance", "doctor", "--help", lang="zh_CN.UTF-8")
    assert done.returncode == 0 and "网络超时（秒）" in done.stdout
    config = _appliance_toml(tmp_path)
    done = _clinicam("appliance", "run", "--config", str(config), "--check", lang="zh_CN.UTF-8")
    assert done.returncode == 0 and "设备配置正确" in done.stdout
    done = _clinicam("appliance", "run", "--config", str(config), "--check", lang="en_US.UTF-8")
    assert done.returncode == 0 and "appliance configuration OK" in done.stdout
