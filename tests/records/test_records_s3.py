"""The records API with its blobs on a real SeaweedFS (``[blobs] backend = "s3"``)."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from server.blob_config import BlobsConfig
from server.config import ServerConfig
from server.records.blob_stores import open_blob_store
from server.records.models import ClinicalPhoto
from server.records.s3_blobs import S3BlobStore
from tests.records.api_helpers import count_rows, png_bytes, records_config, running_site
from tests.seaweed import SeaweedS3


def _on_s3(tmp_path: Path, blobs: BlobsConfig) -> ServerConfig:
    config = records_config(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    return config.model_copy(update={"blobs": blobs})


async def test_uploads_are_stored_in_and_read_from_the_object_store(
    tmp_path: Path, seaweed: SeaweedS3
) -> None:
    prefix = seaweed.new_prefix()
    async with running_site(_on_s3(tmp_path, seaweed.config(prefix))) as site:
        alice = await site.user("alice")
        pid = site.patient_ids()["P-1"]
        await alice.access("P-1", ("view", "edit"))
        dataset = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
        dataset.PatientID = "P-1"
        saved = io.BytesIO()
        dataset.save_as(saved, enforce_file_format=True)
        ct = saved.getvalue()
        photo = png_bytes(320, 240)
        filed = {}
        for name, data in (("ct_image", ct), ("clinical_photo", photo)):
            resp = await alice.request("POST", f"/api/patients/{pid}/records", data=data)
            assert resp.status == 201
            filed[name] = (await resp.json())["id"]
        base = f"/api/patients/{pid}/records"
        content = await alice.request(
            "GET", f"{base}/clinical_photo/{filed['clinical_photo']}/content"
        )
        assert content.status == 200 and await content.read() == photo
        ranged = await alice.request(
            "GET",
            f"{base}/clinical_photo/{filed['clinical_photo']}/content",
            headers={"Range": "bytes=8-15"},
        )
        assert ranged.status == 206 and await ranged.read() == photo[8:16]
        thumb = await alice.request(
            "GET", f"{base}/clinical_photo/{filed['clinical_photo']}/thumbnail"
        )
        assert thumb.status == 200 and thumb.content_type == "image/jpeg"
        render = await alice.request(
            "GET", f"{base}/ct_image/{filed['ct_image']}/render?center=40&width=400"
        )
        assert render.status == 200, await render.text()
        assert (await render.read()).startswith(b"\x89PNG")
        expected = sorted(
            f"{prefix}blobs/{h[:2]}/{h[2:4]}/{h}"
            for h in (hashlib.sha256(ct).hexdigest(), hashlib.sha256(photo).hexdigest())
        )
        assert seaweed.keys(prefix) == expected
        local = site.state_dir / "blobs"
        assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))


async def test_oversize_upload_leaves_nothing_in_the_store(
    tmp_path: Path, seaweed: SeaweedS3
) -> None:
    prefix = seaweed.new_prefix()
    async with running_site(_on_s3(tmp_path, seaweed.config(prefix, part_mb=5))) as site:
        alice = await site.user("alice")
        pid = site.patient_ids()["P-1"]
        await alice.access("P-1", ("view", "edit"))

        async def chunks() -> object:  # no Content-Length: cut off while streaming
            for _ in range(48):
                yield os.urandom(64 * 1024)

        resp = await alice.request("POST", f"/api/patients/{pid}/records", data=chunks())
        assert resp.status == 413
        assert count_rows(site.database, ClinicalPhoto) == 0
    assert seaweed.keys(prefix) == [] and seaweed.uploads(prefix) == []


async def test_store_down_uploads_are_503_and_cached_reads_go_on(
    tmp_path: Path, seaweed: SeaweedS3
) -> None:
    prefix = seaweed.new_prefix()
    async with running_site(_on_s3(tmp_path, seaweed.config(prefix))) as site:
        alice = await site.user("alice")
        pid = site.patient_ids()["P-1"]
        await alice.access("P-1", ("view", "edit"))
        photo = png_bytes(64, 48)
        resp = await alice.request("POST", f"/api/patients/{pid}/records", data=photo)
        assert resp.status == 201
        filed = (await resp.json())["id"]
        store = site.state.records.blobs
        assert isinstance(store, S3BlobStore)
        away = seaweed.config(prefix).model_copy(update={"endpoint_url": "http://127.0.0.1:9"})
        store.client = open_blob_store(away, tmp_path / "away").client  # type: ignore[attr-defined]
        content = await alice.request(
            "GET", f"/api/patients/{pid}/records/clinical_photo/{filed}/content"
        )
        assert content.status == 200 and await content.read() == photo
        resp = await alice.request(
            "POST", f"/api/patients/{pid}/records", data=png_bytes(64, 48, (1, 2, 3))
        )
        assert resp.status == 503
        assert "object store" in (await resp.json())["error"]
        assert count_rows(site.database, ClinicalPhoto) == 1
        staging = site.state_dir / "staging"
        assert not staging.exists() or list(staging.iterdir()) == []
    assert len(seaweed.keys(prefix)) == 1


async def test_erasure_with_the_store_away_leaves_the_blob_to_the_collector(
    tmp_path: Path, seaweed: SeaweedS3
) -> None:
    prefix = seaweed.new_prefix()
    async with running_site(_on_s3(tmp_path, seaweed.config(prefix))) as site:
        root = await site.user("root")
        pid = site.patient_ids()["P-1"]
        resp = await root.request(
            "POST", "/api/break-glass", json={"patient": "P-1", "reason": "erasure, ticket 7"}
        )
        assert resp.status == 201
        resp = await root.request("POST", f"/api/patients/{pid}/records", data=png_bytes())
        assert resp.status == 201
        store = site.state.records.blobs
        assert isinstance(store, S3BlobStore)
        reachable = store.client
        away = seaweed.config(prefix).model_copy(update={"endpoint_url": "http://127.0.0.1:9"})
        store.client = open_blob_store(away, tmp_path / "away").client  # type: ignore[attr-defined]
        resp = await root.request("DELETE", f"/api/patients/{pid}/data")
        assert resp.status == 200 and (await resp.json())["blobs_removed"] == 0
        assert count_rows(site.database, ClinicalPhoto) == 0
        assert len(seaweed.keys(prefix)) == 1
        assert not list((tmp_path / "blob-cache").glob("??/??/*"))  # not even cached
        store.client = reachable
        assert store.collect_orphans(set(), 600, now=time.time() + 700) != []
    assert seaweed.keys(prefix) == []
