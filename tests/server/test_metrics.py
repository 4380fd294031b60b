"""Prometheus metrics (issue 21, O7): /metrics for an admin's session or the scraper's
token, with HTTP latency by route, uploads, the audit chain and the appliances; and a
real Prometheus (Debian's) scraping it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession
from prometheus_client.parser import text_string_to_metric_families

from server.state import STATE
from tests.helpers import free_port
from tests.records.api_helpers import Site, png_bytes, records_config, running_site

TOKEN = secrets.token_urlsafe(24)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@pytest.fixture
async def token_site(tmp_path: Path) -> AsyncIterator[Site]:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    config = config.model_copy(
        update={
            "metrics": config.metrics.model_copy(
                update={"token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()}
            )
        }
    )
    async with running_site(config) as running:
        yield running


async def test_who_may_read_the_metrics(token_site: Site) -> None:
    url = token_site.server.make_url("/metrics")
    async with ClientSession() as stranger:
        assert (await stranger.get(url)).status == 401
        wrong = await stranger.get(url, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        scraped = await stranger.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status == 200 and scraped.content_type == "text/plain"
    bob = await token_site.user("bob")
    assert (await bob.request("GET", "/metrics")).status == 403
    root = await token_site.user("root")
    assert (await root.request("GET", "/metrics")).status == 200


async def test_requests_uploads_audit_and_appliances_are_counted(site: Site) -> None:
    alice = await site.user("alice")
    pid = site.patient_ids()["P-1"]
    await alice.access("P-1", ("view", "edit"))
    upload = await alice.request("POST", f"/api/patients/{pid}/records", data=png_bytes())
    assert upload.status == 201, await upload.text()
    refused = await alice.request("POST", f"/api/patients/{pid}/records", data=b"not an image")
    assert refused.status in (400, 415, 422)
    assert (await alice.request("GET", "/api/consultations/nope")).status == 404
    link = site.server.app[STATE].appliances
    link.available["cam-1"] = True
    sample = {"cpu_temp_c": 61.5, "fps": 14.8, "recording": {"bytes": 123456, "segments": 3}}
    link._telemetry("cam-1", json.dumps(sample).encode())
    link._telemetry("cam-1", json.dumps({"cpu_temp_c": "hot"}).encode())  # ignored
    root = await site.user("root")
    resp = await root.request("GET", "/metrics")
    assert resp.status == 200
    found = samples(await resp.text())
    records = "/api/patients/{pid}/records"
    assert value(found, "clinicam_uploads_total", route=records, outcome="ok") == 1
    assert value(found, "clinicam_uploads_total", route=records, outcome="refused") == 1
    assert value(found, "clinicam_upload_bytes_total", route=records) > len(png_bytes())
    count = "clinicam_http_request_duration_seconds_count"
    assert value(found, count, route=records, method="POST", status="2xx") == 1
    assert value(found, count, route="/api/consultations/{cid}", method="GET", status="4xx") == 1
    assert value(found, count, route="/api/login", method="POST", status="2xx") == 2
    assert value(found, "clinicam_audit_chain_length") >= 3  # sign-ins, grant, upload
    assert value(found, "clinicam_appliance_online", device="cam-1") == 1
    assert value(found, "clinicam_appliance_temperature_celsius", device="cam-1") == 61.5
    assert value(found, "clinicam_appliance_buffer_bytes", device="cam-1") == 123456
    assert value(found, "clinicam_consultations_live") == 0
    assert value(found, "clinicam_load_rung") == 0


async def test_a_real_prometheus_scrapes_the_server(tmp_path: Path, token_site: Site) -> None:
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus is installed by ./install.sh --role dev"
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    target = f"127.0.0.1:{token_site.server.port}"
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: clinicam\n"
        "    authorization: {credentials_file: " + str(token_file) + "}\n"
        "    static_configs: [{targets: ['" + target + "']}]\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    query = f"http://127.0.0.1:{port}/api/v1/query"
    try:
        async with ClientSession() as client:
            found: list[dict[str, object]] = []
            async with asyncio.timeout(60):
                while not found:
                    await asyncio.sleep(1.0)
                    try:
                        resp = await client.get(
                            query, params={"query": "clinicam_audit_chain_length"}
                        )
                    except OSError:
                        continue  # not listening yet
                    if resp.status == 200:
                        found = (await resp.json())["data"]["result"]
            up = await (await client.get(query, params={"query": 'up{job="clinicam"}'})).json()
            assert up["data"]["result"][0]["value"][1] == "1"
            assert found[0]["metric"]["instance"] == target  # type: ignore[index]
    finally:
        process.kill()
        process.wait()
