"""The S3 blob store against a real SeaweedFS on loopback (one per test session)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from server.blob_config import BlobsConfig
from server.records.blob_stores import open_blob_store
from server.records.blobs import BlobCorrupt, BlobTooLarge
from server.records.s3_blobs import MIN_PART_BYTES, BlobStoreUnavailable, S3BlobStore
from tests.seaweed import SeaweedS3


@pytest.fixture
def store(seaweed: SeaweedS3) -> S3BlobStore:
    config = seaweed.config(seaweed.new_prefix(), part_mb=5, cache_mb=0)
    made = open_blob_store(config, seaweed.folder)
    assert isinstance(made, S3BlobStore)
    return made


class _Counting(io.BytesIO):
    """A stream that remembers the most it was ever asked for in one read."""

    largest = 0

    def read(self, size: int | None = -1, /) -> bytes:
        self.largest = max(self.largest, size if size is not None and size >= 0 else 1 << 62)
        return super().read(size)


def test_round_trip(store: S3BlobStore, seaweed: SeaweedS3) -> None:
    ref = store.put(io.BytesIO(b"a clinical photo"), max_bytes=100)
    assert ref.sha256 == hashlib.sha256(b"a clinical photo").hexdigest()
    assert ref.size == 16
    assert seaweed.keys(store.prefix) == [store.key_of(ref.sha256)]
    assert store.key_of(ref.sha256).startswith(
        f"{store.prefix}blobs/{ref.sha256[:2]}/{ref.sha256[2:4]}/"
    )
    assert store.exists(ref.sha256)
    assert store.stat(ref.sha256) == ref
    head = store.client.head_object(
        Bucket=store.bucket, Key=store.key_of(ref.sha256), ChecksumMode="ENABLED"
    )
    assert head.get("ChecksumSHA256") == base64.b64encode(bytes.fromhex(ref.sha256)).decode()
    with store.open(ref.sha256) as stream:
        assert stream.read() == b"a clinical photo"
    with store.open(ref.sha256) as stream:  # seekable, as thumbnails and ranges need
        stream.seek(2)
        assert stream.read(8) == b"clinical"
        stream.seek(0)
        assert stream.read(1) == b"a"
    assert store.delete(ref.sha256)
    assert not store.delete(ref.sha256)
    assert not store.exists(ref.sha256)
    with pytest.raises(FileNotFoundError):
        store.open(ref.sha256)
    with pytest.raises(FileNotFoundError):
        store.stat(ref.sha256)
    assert seaweed.keys(store.prefix) == []


def test_big_upload_goes_up_in_parts(store: S3BlobStore, seaweed: SeaweedS3) -> None:
    content = os.urandom(2 * MIN_PART_BYTES + 12345)
    source = _Counting(content)
    ref = store.put(source, max_bytes=len(content))
    assert source.largest <= 256 * 1024  # read in chunks, never whole
    assert ref.sha256 == hashlib.sha256(content).hexdigest()
    assert seaweed.keys(store.prefix) == [store.key_of(ref.sha256)]  # no incoming leftover
    with store.open(ref.sha256) as stream:
        assert stream.read() == content
    head = store.client.head_object(
        Bucket=store.bucket, Key=store.key_of(ref.sha256), ChecksumMode="ENABLED"
    )  # the store checked each part's SHA-256 and keeps their composite
    parts = [content[i : i + MIN_PART_BYTES] for i in range(0, len(content), MIN_PART_BYTES)]
    composite = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    assert head.get("ChecksumSHA256") in (
        base64.b64encode(bytes.fromhex(ref.sha256)).decode(),
        f"{base64.b64encode(composite).decode()}-3",
    )
    assert seaweed.uploads(store.prefix) == []


def test_oversize_refused_with_nothing_left(store: S3BlobStore, seaweed: SeaweedS3) -> None:
    for content in (b"x" * 101, os.urandom(MIN_PART_BYTES + 10)):  # one part / in parts
        with pytest.raises(BlobTooLarge):
            store.put(io.BytesIO(content), max_bytes=len(content) - 1)
    assert seaweed.keys(store.prefix) == []
    assert seaweed.uploads(store.prefix) == []


def test_same_content_twice_is_one_object(store: S3BlobStore, seaweed: SeaweedS3) -> None:
    small = [store.put(io.BytesIO(b"same scan"), max_bytes=100) for _ in range(2)]
    content = os.urandom(MIN_PART_BYTES + 7)
    big = [store.put(io.BytesIO(content), max_bytes=len(content)) for _ in range(2)]
    assert small[0] == small[1]
    assert big[0] == big[1]
    assert seaweed.keys(store.prefix) == sorted(
        [store.key_of(small[0].sha256), store.key_of(big[0].sha256)]
    )


def test_a_corrupted_object_is_never_served(store: S3BlobStore, seaweed: SeaweedS3) -> None:
    small = store.put(io.BytesIO(b"x-ray, left hand"), max_bytes=100)
    content = os.urandom(600 * 1024)
    big = store.put(io.BytesIO(content), max_bytes=len(content))
    client = seaweed.client()  # behind the store's back, same length
    client.put_object(
        Bucket=store.bucket, Key=store.key_of(small.sha256), Body=b"x-ray, RIGHT hand"
    )
    damaged = content[:-1] + bytes([content[-1] ^ 1])
    client.put_object(Bucket=store.bucket, Key=store.key_of(big.sha256), Body=damaged)
    with pytest.raises(BlobCorrupt), store.open(small.sha256) as stream:
        stream.read()
    served = b""
    with pytest.raises(BlobCorrupt), store.open(big.sha256) as stream:
        while chunk := stream.read(64 * 1024):
            served += chunk
    assert len(served) < len(content)  # the end was withheld: never the whole object


def test_orphans_collected_only_after_the_grace(store: S3BlobStore) -> None:
    kept = store.put(io.BytesIO(b"referenced"), max_bytes=100)
    orphan = store.put(io.BytesIO(b"orphan"), max_bytes=100)
    assert store.collect_orphans({kept.sha256}, older_than_s=600) == []
    assert store.exists(orphan.sha256)
    later = time.time() + 700
    assert store.collect_orphans({kept.sha256}, older_than_s=600, now=later) == [orphan.sha256]
    assert store.exists(kept.sha256)
    assert not store.exists(orphan.sha256)


def test_storing_again_restarts_the_grace(store: S3BlobStore) -> None:
    ref = store.put(io.BytesIO(b"re-uploaded"), max_bytes=100)
    first = store.client.head_object(Bucket=store.bucket, Key=store.key_of(ref.sha256))
    time.sleep(1.1)  # the store's clock has one-second steps
    store.put(io.BytesIO(b"re-uploaded"), max_bytes=100)  # its row is about to be committed
    again = store.client.head_object(Bucket=store.bucket, Key=store.key_of(ref.sha256))
    assert again["LastModified"] > first["LastModified"]


def test_store_down_is_unavailable(seaweed: SeaweedS3) -> None:
    config = BlobsConfig.model_validate(
        {**seaweed.config("").model_dump(), "endpoint_url": "http://127.0.0.1:9"}
    )
    down = open_blob_store(config, seaweed.folder)
    with pytest.raises(BlobStoreUnavailable):
        down.put(io.BytesIO(b"photo"), max_bytes=100)
    with pytest.raises(BlobStoreUnavailable):
        down.exists("0" * 64)


def test_wrong_credentials_are_refused(seaweed: SeaweedS3) -> None:
    prefix = seaweed.new_prefix()
    wrong = open_blob_store(seaweed.config(prefix, secret_key="not-the-secret"), seaweed.folder)
    with pytest.raises(BlobStoreUnavailable):
        wrong.put(io.BytesIO(b"photo"), max_bytes=100)
    assert seaweed.keys(prefix) == []


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"backend": "s3"}, "needs a bucket"),
        ({"backend": "s3", "bucket": "Bad_Bucket"}, "bucket"),
        ({"backend": "s3", "bucket": "good", "access_key": "k"}, "go together"),
        ({"backend": "s3", "bucket": "good", "prefix": "no-slash"}, "prefix"),
        ({"backend": "s3", "bucket": "good", "endpoint_url": "ftp://x"}, "endpoint_url"),
        ({"backend": "nas"}, "backend"),
    ],
)
def test_bad_config_is_refused(section: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        BlobsConfig.model_validate(section)


def test_cached_content_is_read_while_the_store_is_away(seaweed: SeaweedS3, tmp_path: Path) -> None:
    config = seaweed.config(seaweed.new_prefix(), part_mb=5, cache_mb=8)
    store = open_blob_store(config, tmp_path)
    assert isinstance(store, S3BlobStore)
    written = store.put(io.BytesIO(b"written through"), max_bytes=100)
    elsewhere = open_blob_store(config.model_copy(update={"cache_mb": 0}), tmp_path)
    read = elsewhere.put(io.BytesIO(b"read once, whole"), max_bytes=100)
    long = os.urandom(600 * 1024)  # longer than one buffered read
    partly = elsewhere.put(io.BytesIO(long), max_bytes=len(long))
    too_big = os.urandom(3 * 1024 * 1024)  # more than a quarter of the cache
    big = elsewhere.put(io.BytesIO(too_big), max_bytes=len(too_big))
    for sha, size in ((read.sha256, -1), (partly.sha256, 4), (big.sha256, -1)):
        with store.open(sha) as stream:
            stream.read(size)
    store.client = open_blob_store(  # the store goes away
        config.model_copy(update={"endpoint_url": "http://127.0.0.1:9"}), tmp_path
    ).client  # type: ignore[attr-defined]
    for ref, content in ((written, b"written through"), (read, b"read once, whole")):
        with store.open(ref.sha256) as stream:
            assert stream.read() == content
    for sha in (partly.sha256, big.sha256):
        with pytest.raises(BlobStoreUnavailable):
            store.open(sha)
    with pytest.raises(BlobStoreUnavailable):
        store.put(io.BytesIO(b"new photo"), max_bytes=100)


def test_a_corrupted_object_never_enters_the_cache(seaweed: SeaweedS3, tmp_path: Path) -> None:
    config = seaweed.config(seaweed.new_prefix(), cache_mb=8)
    writer = open_blob_store(config.model_copy(update={"cache_mb": 0}), tmp_path)
    ref = writer.put(io.BytesIO(b"x-ray, left hand"), max_bytes=100)
    store = open_blob_store(config, tmp_path)
    assert isinstance(store, S3BlobStore)
    store.client.put_object(Bucket=store.bucket, Key=store.key_of(ref.sha256), Body=b"tampered")
    for _ in range(2):
        with pytest.raises(BlobCorrupt), store.open(ref.sha256) as stream:
            stream.read()
    assert not any(p.is_file() for p in (tmp_path / "blob-cache").glob("??/??/*"))
