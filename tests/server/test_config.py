"""Server configuration and start-up with a bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clinicam.configfile import ConfigError, load_config
from server.auth import hash_secret
from server.config import ServerConfig

HASH = hash_secret("x")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[http]\nport = 70000\n", "http.port"),
        ("[htp]\nport = 80\n", "htp"),
        (
            '[[experts]]\nusername = "a"\ndisplay_name = "A"\npassword_hash = "plain"\n',
            "experts.0.password_hash",
        ),
        (
            f'[[devices]]\ndevice_id = "cam"\nclinic = "C"\ntoken_hash = "{HASH}"\n'
            '[[consultations]]\nid = "c"\npatient_id = "p"\nappliance = "cam"\nchair = "z"\n'
            'experts = ["z"]\n',
            "(top level)",
        ),
    ],
)
def test_bad_server_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(ServerConfig, _write(tmp_path, text), env_prefix="CLINICAM_SERVER", environ={})
    assert f"  {key}" in str(info.value)


def test_server_refuses_to_start_with_a_bad_file(tmp_path: Path) -> None:
    path = _write(tmp_path, '[http]\nport = "eighty"\n')
    result = subprocess.run(
        [sys.executable, "-m", "clinicam_app", "server", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "http.port" in result.stderr and "Traceback" not in result.stderr


def test_check_flag_accepts_a_good_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "clinicam_app",
            "appliance",
            "--check",
            "--config",
            str(_write(tmp_path, "[camera]\nfps = 30\n")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "OK" in result.stdout


def _staff(role: str, clinic: str | None, invited: bool = False) -> str:
    text = (
        f'[[experts]]\nusername = "n"\ndisplay_name = "Nurse"\npassword_hash = "{HASH}"\n'
        f'role = "{role}"\n' + (f'clinic = "{clinic}"\n' if clinic else "")
    )
    text += f'[[devices]]\ndevice_id = "cam"\nclinic = "Hill Clinic"\ntoken_hash = "{HASH}"\n'
    if invited:
        text += (
            '[[consultations]]\nid = "c"\npatient_id = "p"\nappliance = "cam"\nchair = "n"\n'
            'experts = ["n"]\n'
        )
    return text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_staff("clinic", None), "clinic staff (role 'clinic') and only they name their 'clinic'"),
        (_staff("expert", "Hill Clinic"), "and only they name their 'clinic'"),
        (_staff("clinic", "Vale Clinic"), "no appliance is at clinic 'Vale Clinic'"),
        (_staff("clinic", "Hill Clinic", invited=True), "join through the clinic station"),
    ],
)
def test_clinic_staff_belong_to_a_clinic_with_an_appliance(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(ServerConfig, _write(tmp_path, text), env_prefix="X__", environ={})
    assert message in str(err.value)
    good = load_config(
        ServerConfig,
        _write(tmp_path, _staff("clinic", "Hill Clinic")),
        env_prefix="X__",
        environ={},
    )
    assert [d.device_id for d in good.stations_of("n")] == ["cam"]
