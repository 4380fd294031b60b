"""Appliance releases on the site's database and blob store (issue 21): every front sees
the same releases, on the local store and on a real S3 store (SeaweedFS), on SQLite and
PostgreSQL; an old release folder is adopted once; the wheel is served from the store as
it was uploaded; the orphan collector keeps it; a store that is away gets a 503 and
changes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from clinicam.release import BadRelease
from clinicam_app.cli import main
from server.audit.log import AuditEntry
from server.audit.trail import AuditTrail
from server.config import ServerConfig
from server.db import Database, open_database
from server.domain_errors import Unavailable
from server.fleet.adoption import adopt_release_folder
from server.fleet.models import ApplianceRelease, referenced_release_blobs
from server.fleet.releases import ReleaseConflict, ReleaseStore
from server.records.blob_stores import open_blob_store
from server.records.blobs import BlobStore, LocalBlobStore
from server.web.fleet import RELEASES
from tests.records.api_helpers import Site, audit_actions, count_rows, running_site
from tests.records.test_blobs_migrate import _toml
from tests.seaweed import SeaweedS3
from tests.server.test_fleet import TOKENS, device_get, fleet_config, make_wheel, upload, wheel_file

AWAY = "http://127.0.0.1:9"  # nothing listens there: the store cannot be reached


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = open_database(database_url)
    yield db
    db.close()


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """The site's blob store: the local folder, or SeaweedFS under a prefix of its own."""
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    return open_blob_store(seaweed.config(seaweed.new_prefix(), cache_mb=0), tmp_path)


def staged(tmp_path: Path, data: bytes, name: str = "staged.whl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(store: ReleaseStore, version: str) -> bytes:
    with store.open(store.get(version)) as stream:
        return stream.read()


# ---- the store: two fronts on one database and one blob store --------------------------------


def test_two_fronts_see_each_others_releases(
    database: Database, blobs: BlobStore, tmp_path: Path
) -> None:
    front_a, front_b = ReleaseStore(database, blobs), ReleaseStore(database, blobs)
    first = make_wheel("1.0")
    upload_a = staged(tmp_path, first)
    added, created = front_a.add(upload_a, wheel_file("1.0"))
    assert created and added.sha256 == sha(first) and added.size == len(first)
    assert upload_a.exists()  # the staged copy is the caller's to remove
    assert front_b.list() == [added]
    assert read_all(front_b, "1.0") == first  # the bytes are in the shared store

    # the same bytes through the other front: accepted, not new, nothing changed
    again, created = front_b.add(staged(tmp_path, first), wheel_file("1.0"))
    assert not created and again == added
    # other bytes under the same version: refused, the stored wheel stays
    other = make_wheel("1.0", salt="# another build\n")
    with pytest.raises(ReleaseConflict, match="already stored with other contents"):
        front_b.add(staged(tmp_path, other), wheel_file("1.0"))
    assert read_all(front_a, "1.0") == first
    assert not blobs.exists(sha(other))

    for version in ("1.10", "1.9", "1.2"):
        front_b.add(staged(tmp_path, make_wheel(version)), wheel_file(version))
    assert [r.version for r in front_a.list()] == ["1.10", "1.9", "1.2", "1.0"]  # PEP 440

    removed = front_a.remove("1.9")
    assert removed.version == "1.9"
    assert [r.version for r in front_b.list()] == ["1.10", "1.2", "1.0"]
    with pytest.raises(KeyError):
        front_b.get("1.9")
    with pytest.raises(KeyError):
        front_b.remove("1.9")
    with database.session() as session:
        assert referenced_release_blobs(session) == {r.sha256 for r in front_b.list()}


def test_a_bad_wheel_is_refused_and_nothing_is_stored(
    database: Database, blobs: BlobStore, tmp_path: Path
) -> None:
    store = ReleaseStore(database, blobs)
    with pytest.raises(BadRelease):
        store.add(staged(tmp_path, make_wheel("1.0", purelib=False)), wheel_file("1.0"))
    with pytest.raises(BadRelease):
        store.add(staged(tmp_path, make_wheel("1.0")), wheel_file("2.0"))
    assert store.list() == [] and count_rows(database, ApplianceRelease) == 0
    if isinstance(blobs, LocalBlobStore):
        assert [p for p in blobs.root.rglob("*") if p.is_file()] == []


def test_a_release_is_not_stored_without_its_audit_entry(
    database: Database, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    dropped: list[str] = []

    def drop(candidates: list[str]) -> list[str]:
        dropped.extend(candidates)
        return [sha for sha in candidates if blobs.delete(sha)]

    store = ReleaseStore(database, blobs, drop=drop)
    wheel = make_wheel("1.0")

    def audit_down(*args: object) -> None:
        raise OSError("audit log unavailable")

    with pytest.raises(OSError, match="audit log unavailable"):
        store.add(staged(tmp_path, wheel), wheel_file("1.0"), audit=audit_down)
    assert store.list() == []
    assert dropped == [sha(wheel)] and not blobs.exists(sha(wheel))


# ---- adopting an older server's release folder -----------------------------------------------


def old_folder(state_dir: Path) -> tuple[Path, dict[str, bytes]]:
    """``state_dir/releases`` as the folder store left it: 1.0 indexed, 2.0 not (a crash
    between its two renames), 3.0 not a wheel at all, a temporary file of a crash."""
    folder = state_dir / "releases"
    folder.mkdir(parents=True)
    wheels = {"1.0": make_wheel("1.0"), "2.0": make_wheel("2.0")}
    for version, data in wheels.items():
        (folder / wheel_file(version)).write_bytes(data)
    (folder / wheel_file("3.0")).write_bytes(b"garbage")
    (folder / ".incoming-x").write_bytes(b"partial")
    index = {"1.0": {"sha256": sha(wheels["1.0"]), "size": 1, "added": "2025-03-01T10:00:00+00:00"}}
    (folder / "index.json").write_text(json.dumps({"releases": index}))
    return folder, wheels


def adopted_entries(database: Database) -> list[str]:
    with database.session() as session:
        query = select(AuditEntry.target).where(AuditEntry.action == "release.adopted")
        return sorted(session.scalars(query.where(AuditEntry.actor == "server")))


def test_an_old_release_folder_is_adopted_once(
    database: Database, blobs: BlobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, wheels = old_folder(tmp_path / "state")
    store, audit = ReleaseStore(database, blobs), AuditTrail(database)
    with caplog.at_level(logging.WARNING):
        assert adopt_release_folder(store, audit, folder) == 2
    assert "clinicam-3.0-py3-none-any.whl skipped" in caplog.text  # logged, not fatal
    listed = {r.version: r for r in store.list()}
    assert sorted(listed) == ["1.0", "2.0"]
    assert listed["1.0"].added_at == "2025-03-01T10:00:00+00:00"  # the old index's time
    assert all(read_all(store, v) == data for v, data in wheels.items())
    assert adopted_entries(database) == ["release:1.0", "release:2.0"]
    # set aside, so a release removed later does not come back at the next start
    assert not folder.exists()
    aside = folder.with_name("releases.adopted")
    assert (aside / wheel_file("1.0")).read_bytes() == wheels["1.0"]

    store.remove("2.0")
    assert adopt_release_folder(store, audit, folder) == 0  # the next start: nothing to do
    assert [r.version for r in store.list()] == ["1.0"]
    # a copy of the folder from another front: what the table has is not adopted again
    other, _wheels = old_folder(tmp_path / "front-b")
    (other / wheel_file("1.0")).write_bytes(make_wheel("1.0", salt="# other build\n"))
    assert adopt_release_folder(store, audit, other) == 1  # 2.0 only; 1.0 differs: skipped
    assert read_all(store, "1.0") == wheels["1.0"]
    assert adopted_entries(database) == ["release:1.0", "release:2.0", "release:2.0"]


def test_the_folder_stays_while_the_store_is_away(
    database: Database, tmp_path: Path, seaweed: SeaweedS3
) -> None:
    folder, wheels = old_folder(tmp_path / "state")
    prefix = seaweed.new_prefix()
    away = ReleaseStore(
        database, open_blob_store(seaweed.config(prefix, endpoint_url=AWAY, cache_mb=0), tmp_path)
    )
    audit = AuditTrail(database)
    assert adopt_release_folder(away, audit, folder) == 0
    assert away.list() == [] and folder.is_dir() and adopted_entries(database) == []
    back = ReleaseStore(database, open_blob_store(seaweed.config(prefix, cache_mb=0), tmp_path))
    assert adopt_release_folder(back, audit, folder) == 2
    assert [r.version for r in back.list()] == ["2.0", "1.0"] and not folder.exists()
    assert read_all(back, "2.0") == wheels["2.0"]


# ---- a site on the object store, over HTTP ----------------------------------------------------


def s3_site_config(
    tmp_path: Path, seaweed: SeaweedS3, prefix: str, **blobs: object
) -> ServerConfig:
    config = fleet_config(tmp_path, {"port": 1, "username": "server", "password": "x"})
    return config.model_copy(update={"blobs": seaweed.config(prefix, cache_mb=0, **blobs)})


@pytest.fixture
async def s3_site(tmp_path: Path, seaweed: SeaweedS3) -> AsyncIterator[Site]:
    async with running_site(s3_site_config(tmp_path, seaweed, seaweed.new_prefix())) as running:
        yield running


async def test_the_wheel_is_served_from_the_object_store_and_kept_by_the_collector(
    s3_site: Site, seaweed: SeaweedS3
) -> None:
    site = s3_site
    root = await site.user("root")
    wheel = make_wheel("1.0", extra={"clinicam/blob.bin": os.urandom(3 * 1024 * 1024).hex()})
    status, body = await upload(root, wheel_file("1.0"), wheel)
    assert status == 201, body
    prefix = site.state.config.blobs.prefix
    key = f"{prefix}blobs/{sha(wheel)[:2]}/{sha(wheel)[2:4]}/{sha(wheel)}"
    assert key in seaweed.keys(prefix)  # the wheel's bytes are in the bucket
    assert not (site.state_dir / "releases").exists()

    path = "/api/appliances/cam-a/releases/1.0"
    status, data, content_type = await device_get(site, path, TOKENS["cam-a"])
    assert status == 200 and data == wheel and content_type == "application/octet-stream"
    assert audit_actions(site.database, "device:cam-a") == ["release.downloaded"]

    # the orphan collector keeps the release's blob; a removal takes it away
    assert site.state.records.collect_orphans(0.0) == []
    assert key in seaweed.keys(prefix)
    resp = await root.request("DELETE", "/api/admin/releases/1.0")
    assert resp.status == 200
    assert key not in seaweed.keys(prefix)


async def test_a_store_that_is_away_gets_503_and_nothing_changes(
    tmp_path: Path, seaweed: SeaweedS3
) -> None:
    prefix = seaweed.new_prefix()
    wheel = make_wheel("1.0")
    async with running_site(s3_site_config(tmp_path, seaweed, prefix, endpoint_url=AWAY)) as site:
        root = await site.user("root")
        status, body = await upload(root, wheel_file("1.0"), wheel)
        assert status == 503 and body["code"] == "blobs_unavailable", body
        assert "the object store cannot be reached" in body["error"]
        assert count_rows(site.database, ApplianceRelease) == 0
        assert audit_actions(site.database, "root") == ["login", "release.refused"]
        assert list((site.state_dir / "staging").glob("*")) == []
        assert seaweed.keys(prefix) == [] and seaweed.uploads(prefix) == []

        # A release stored while the store answered; then it is away for the download.
        store = site.server.app[RELEASES]
        store.blobs = open_blob_store(seaweed.config(prefix, cache_mb=0), site.state_dir)
        status, body = await upload(root, wheel_file("1.0"), wheel)
        assert status == 201, body
        store.blobs = open_blob_store(
            seaweed.config(prefix, endpoint_url=AWAY, cache_mb=0), site.state_dir
        )
        status, data, _type = await device_get(
            site, "/api/appliances/cam-a/releases/1.0", TOKENS["cam-a"]
        )
        assert status == 503 and b"the object store cannot be reached" in data
        assert audit_actions(site.database, "device:cam-a") == []  # no download happened
        assert [r.version for r in store.list()] == ["1.0"]


def test_a_missing_wheel_is_unavailable_not_a_crash(database: Database, tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    store = ReleaseStore(database, blobs)
    release, _created = store.add(staged(tmp_path, make_wheel("1.0")), wheel_file("1.0"))
    blobs.delete(release.sha256)
    with pytest.raises(Unavailable, match="missing from the blob store"):
        store.open(release)


def test_blobs_migrate_moves_the_release_wheels(
    tmp_path: Path, seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLINICAM_LANG", "en")
    state, prefix = tmp_path / "state", seaweed.new_prefix()
    state.mkdir()
    database = open_database(f"sqlite:///{state / 'db.sqlite'}")
    wheel = make_wheel("1.0")
    try:
        ReleaseStore(database, LocalBlobStore(state / "blobs")).add(
            staged(tmp_path, wheel), wheel_file("1.0")
        )
    finally:
        database.close()
    config = _toml(tmp_path / "server.toml", state, seaweed, prefix, "local")
    assert main(["blobs", "migrate", "--config", str(config), "--to", "s3"]) == 0
    on_s3 = open_blob_store(seaweed.config(prefix, cache_mb=0), state)
    with on_s3.open(sha(wheel)) as stream:
        assert stream.read() == wheel


async def test_the_server_adopts_the_old_folder_at_start(tmp_path: Path) -> None:
    _folder, wheels = old_folder(tmp_path)
    config = fleet_config(tmp_path, {"port": 1, "username": "server", "password": "x"})
    async with running_site(config) as site:
        root = await site.user("root")
        resp = await root.request("GET", "/api/admin/releases")
        assert [r["version"] for r in (await resp.json())["releases"]] == ["2.0", "1.0"]
        status, data, _type = await device_get(
            site, "/api/appliances/cam-a/releases/2.0", TOKENS["cam-a"]
        )
        assert status == 200 and data == wheels["2.0"]
    assert (tmp_path / "releases.adopted" / wheel_file("2.0")).is_file()
    async with running_site(config) as site:  # the next start: nothing adopted again
        assert audit_actions(site.database, "server").count("release.adopted") == 2
