"""The kiosk's start page: this appliance's station, its token private to the file."""

from __future__ import annotations

import stat
from pathlib import Path

from firmware.config import ApplianceConfig
from firmware.kiosk import main_kiosk_page, station_url, write_kiosk_page


def _config(token: str) -> ApplianceConfig:
    return ApplianceConfig.model_validate(
        {"device_id": "cam-7", "server": {"url": "https://hub.example:8443", "token": token}}
    )


def test_the_page_sends_the_browser_to_this_appliances_station(tmp_path: Path) -> None:
    config = _config("s3cret/+&</script>")
    assert station_url(config) == (
        "https://hub.example:8443/station/cam-7#token=s3cret%2F%2B%26%3C%2Fscript%3E"
    )
    page = tmp_path / "start.html"
    write_kiosk_page(config, page)
    text = page.read_text()
    assert "location.replace(" in text and "s3cret%2F%2B%26%3C%2Fscript%3E" in text
    assert "</script>" not in text.split("location.replace(")[1].split(");")[0]
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp")), "written atomically"


def test_a_bad_configuration_is_refused_with_its_key(tmp_path: Path) -> None:
    bad = tmp_path / "appliance.toml"
    bad.write_text('device_id = "cam-7"\n[server]\nurl = 42\n')
    assert main_kiosk_page(["--config", str(bad), "--output", str(tmp_path / "p.html")]) == 2
    assert not (tmp_path / "p.html").exists()
