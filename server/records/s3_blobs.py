"""Blobs on an S3-compatible object store (implements :class:`~server.records.blobs.BlobStore`).

Keys are content addresses, ``<prefix>blobs/ab/cd/<sha256>``, as the local store's files.

Writing: the content is read in parts of ``part_bytes`` while it is hashed and counted,
and the size limit is enforced as the bytes arrive, so an oversized upload is never held
whole. Content that fits in one part is known, hash and all, before anything is sent: it
goes up in one PUT to its final key with ``x-amz-checksum-sha256``, which the store checks
against what it received. Larger content goes up as a multipart upload under
``<prefix>incoming/<random>`` (each part with its own SHA-256 for the store to check), is
copied to its final key once its hash is known, and the incoming object is deleted. Past
``max_bytes``, or on any failure, the multipart upload is aborted: nothing remains.
Content already stored is not stored again; its object is copied onto itself, which
restarts its grace period (as the local store touches the file).

The order of the local store holds: the object is written before the row that points at
it is committed, and :meth:`S3BlobStore.collect_orphans` later removes objects no row
references, leftover incoming objects and unfinished multipart uploads, once they are
older than the grace period.

Reading: :meth:`S3BlobStore.open` streams the object and hashes what it hands out; the
last chunk is handed out only if the whole hashes to the key, otherwise
:class:`~server.records.blobs.BlobCorrupt` is raised in its place, so a damaged or
replaced object is never served whole as the blob. Seeking forward reads (and hashes) the
bytes skipped; seeking back starts a new read. With a
:class:`~server.records.blob_cache.BlobCache`, content written in one part and content
read whole and verified are kept on local disk and read from there first: reads of
cached content go on while the store is away.

A store that cannot be reached raises :class:`BlobStoreUnavailable` (an HTTP 503).
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from clinicam.i18n import _
from server.domain_errors import Unavailable
from server.records.blob_cache import BlobCache
from server.records.blobs import BlobCorrupt, BlobRef, BlobTooLarge, BlobWriter, Readable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef

_LOGGER = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part but the last
READ_BYTES = 256 * 1024
_SINGLE_COPY_MAX = 5 * 1024**3  # larger objects are copied in parts
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MISSING = {"404", "NoSuchKey", "NotFound"}


class BlobStoreUnavailable(Unavailable):
    """The object store did not answer, or refused the request: try again later."""

    def __init__(self, problem: str) -> None:
        super().__init__(
            _("the object store cannot be reached ({problem}); try again later", problem=problem),
            code="blobs_unavailable",
        )


@contextmanager
def _reaching() -> Iterator[None]:
    """A missing object becomes ``FileNotFoundError``; any other failure, unavailability."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if str(error.get("Code")) in _MISSING or status == 404:
            raise FileNotFoundError(str(error.get("Code", "404"))) from exc
        raise BlobStoreUnavailable(str(error.get("Code", status))) from exc
    except BotoCoreError as exc:
        raise BlobStoreUnavailable(type(exc).__name__) from exc


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


class S3BlobStore:
    """Blobs as objects in ``bucket`` under ``prefix`` (implements the ``BlobStore`` seam)."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        prefix: str = "",
        part_bytes: int = 8 * 1024 * 1024,
        checksums: bool = True,
        cache: BlobCache | None = None,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"parts must be at least {MIN_PART_BYTES} bytes")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self._part_bytes = part_bytes
        self._checksums = checksums
        self.cache = cache

    def key_of(self, sha256: str) -> str:
        """The object key of a blob."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return f"{self.prefix}blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _checksum(self, digest: bytes) -> dict[str, Any]:
        return {"ChecksumSHA256": _b64(digest)} if self._checksums else {}

    # --- writing ----------------------------------------------------------------------

    def put(self, stream: Readable, *, max_bytes: int) -> BlobRef:
        """Store everything ``stream`` yields; :class:`BlobTooLarge` past ``max_bytes``."""
        whole = hashlib.sha256()
        size = 0

        def next_part() -> bytes:
            nonlocal size
            part = bytearray()
            while len(part) < self._part_bytes:
                chunk = stream.read(min(READ_BYTES, self._part_bytes - len(part)))
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge(max_bytes)
                whole.update(chunk)
                part += chunk
            return bytes(part)

        first = next_part()
        if len(first) < self._part_bytes:  # all of it: its key is known before sending
            ref = BlobRef(whole.hexdigest(), size)
            if not self._refresh(ref.sha256):
                with _reaching():
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=self.key_of(ref.sha256),
                        Body=first,
                        **self._checksum(whole.digest()),
                    )
                _LOGGER.debug("stored blob %s (%d bytes)", ref.sha256, ref.size)
            if self.cache is not None:
                try:
                    self.cache.store(ref.sha256, first)
                except OSError:  # the blob is stored; only the local copy is missing
                    _LOGGER.warning("blob cache: could not keep %s", ref.sha256, exc_info=True)
            return ref
        incoming = f"{self.prefix}incoming/{uuid.uuid4().hex}"
        composite = self._upload_parts(incoming, first, next_part)
        ref = BlobRef(whole.hexdigest(), size)
        try:
            if not self._refresh(ref.sha256):
                self._copy(incoming, ref, composite)
        finally:
            with suppress(BotoCoreError, ClientError):  # else the collector takes it
                self.client.delete_object(Bucket=self.bucket, Key=incoming)
        _LOGGER.debug("stored blob %s (%d bytes, in parts)", ref.sha256, ref.size)
        return ref

    def _upload_parts(self, key: str, first: bytes, next_part: Callable[[], bytes]) -> str:
        """A multipart upload of ``first`` and what follows; aborted on any failure.

        Returns the object's composite checksum as S3 writes it (the SHA-256 of the parts'
        SHA-256s, then ``-<parts>``)."""
        algorithm: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"} if self._checksums else {}
        with _reaching():
            created = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **algorithm)
        upload_id = created["UploadId"]
        try:
            parts: list[dict[str, Any]] = []
            digests: list[bytes] = []
            data = first
            while data:
                number = len(parts) + 1
                digests.append(hashlib.sha256(data).digest())
                with _reaching():
                    sent = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data,
                        **self._checksum(digests[-1]),
                    )
                part: dict[str, Any] = {"PartNumber": number, "ETag": sent["ETag"]}
                if self._checksums and sent.get("ChecksumSHA256"):
                    part["ChecksumSHA256"] = sent["ChecksumSHA256"]
                parts.append(part)
                data = next_part()
            with _reaching():
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
            return f"{_b64(hashlib.sha256(b''.join(digests)).digest())}-{len(digests)}"
        except BaseException:
            with suppress(BotoCoreError, ClientError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _copy(self, incoming: str, ref: BlobRef, composite: str) -> None:
        """Server-side copy to the blob's key; the store's own checksum of it is checked
        (the whole SHA-256, or the parts' composite when the store keeps that)."""
        key = self.key_of(ref.sha256)
        source: CopySourceTypeDef = {"Bucket": self.bucket, "Key": incoming}
        algorithm: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"} if self._checksums else {}
        with _reaching():
            if ref.size <= _SINGLE_COPY_MAX:
                self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source, **algorithm)
            else:
                self.client.copy(source, self.bucket, key, ExtraArgs=algorithm)
            if not self._checksums:
                return
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        stored = head.get("ChecksumSHA256", "")
        if stored and stored not in (_b64(bytes.fromhex(ref.sha256)), composite):
            with suppress(BotoCoreError, ClientError):
                self.client.delete_object(Bucket=self.bucket, Key=key)
            raise BlobCorrupt(ref.sha256)

    def _refresh(self, sha256: str) -> bool:
        """If stored, restart its grace period (copy onto itself) and say True."""
        try:
            ref = self.stat(sha256)
            if ref.size <= _SINGLE_COPY_MAX:
                key = self.key_of(sha256)
                with _reaching():
                    self.client.copy_object(
                        Bucket=self.bucket,
                        Key=key,
                        CopySource={"Bucket": self.bucket, "Key": key},
                        MetadataDirective="REPLACE",
                        Metadata={"stored-again": datetime.now(UTC).isoformat()},
                    )
        except FileNotFoundError:
            return False
        return True

    # --- reading ----------------------------------------------------------------------

    def open(self, sha256: str) -> BinaryIO:
        """The blob as a verified stream; ``FileNotFoundError`` if it is not stored."""
        if self.cache is not None and (cached := self.cache.open(sha256)) is not None:
            return cached
        return io.BufferedReader(_VerifyingReader(self, sha256), buffer_size=READ_BYTES)

    def stat(self, sha256: str) -> BlobRef:
        """The blob's stored size; ``FileNotFoundError`` if it is not stored."""
        with _reaching():
            head = self.client.head_object(Bucket=self.bucket, Key=self.key_of(sha256))
        return BlobRef(sha256, int(head["ContentLength"]))

    def exists(self, sha256: str) -> bool:
        try:
            self.stat(sha256)
        except FileNotFoundError:
            return False
        return True

    def delete(self, sha256: str) -> bool:
        """Remove the blob (a missing one is not an error); False if it was not there.

        The local copy goes first, even when the store cannot be reached (an erased
        patient's content must not linger in the cache until the store is back)."""
        if self.cache is not None:
            self.cache.discard(sha256)
        if not self.exists(sha256):
            return False
        with _reaching():
            self.client.delete_object(Bucket=self.bucket, Key=self.key_of(sha256))
        return True

    # --- the orphan collector ---------------------------------------------------------

    def _listed(self, folder: str) -> Iterator[tuple[str, datetime]]:
        pages = self.client.get_paginator("list_objects_v2")
        with _reaching():
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix + folder):
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"]

    def collect_orphans(
        self, referenced: set[str], older_than_s: float, *, now: float | None = None
    ) -> list[str]:
        """Remove blobs not in ``referenced``, incoming objects and unfinished uploads,
        all only once older than the grace period."""
        cutoff = datetime.fromtimestamp((time.time() if now is None else now) - older_than_s, UTC)
        removed: list[str] = []
        stale: list[str] = []
        for key, modified in self._listed("blobs/"):
            name = key.rsplit("/", 1)[-1]
            if _SHA256.fullmatch(name) and name not in referenced and modified < cutoff:
                stale.append(key)
                removed.append(name)
        stale += [key for key, modified in self._listed("incoming/") if modified < cutoff]
        with _reaching():
            for key in stale:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            uploads = self.client.list_multipart_uploads(
                Bucket=self.bucket, Prefix=self.prefix + "incoming/"
            )
            for upload in uploads.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
        if removed:
            _LOGGER.info("collected %d orphan blobs", len(removed))
        for name in removed:
            if self.cache is not None:
                self.cache.discard(name)
        return sorted(removed)


class _VerifyingReader(io.RawIOBase):
    """One object read as a stream, hashed as it goes; the last bytes only if they verify."""

    def __init__(self, store: S3BlobStore, sha256: str) -> None:
        super().__init__()
        self._store = store
        self._sha256 = sha256
        self._key = store.key_of(sha256)
        self.name = f"blob-{sha256}"  # a label, as a file's name (readers such as pydicom ask)
        self._start()

    def _start(self) -> None:
        with _reaching():
            got = self._store.client.get_object(Bucket=self._store.bucket, Key=self._key)
        self._body = got["Body"]
        self._size = int(got["ContentLength"])
        self._hash = hashlib.sha256()
        self._pos = 0
        self._verified = False
        cache = self._store.cache
        self._copy: BlobWriter | None = cache.writer(self._size) if cache else None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            self._verify()
            return 0
        want = min(len(buffer), self._size - self._pos)
        with _reaching():
            data = self._body.read(want)
        if not data:  # shorter than the store announced
            raise BlobCorrupt(self._sha256)
        self._hash.update(data)
        self._pos += len(data)
        if self._copy is not None:
            self._copy.write(data)
        if self._pos >= self._size:
            self._verify()  # before the last bytes leave
        buffer[: len(data)] = data
        return len(data)

    def _verify(self) -> None:
        if self._verified:
            return
        if self._hash.hexdigest() != self._sha256:
            _LOGGER.error("blob %s: the stored object does not match its SHA-256", self._sha256)
            self._drop_copy()
            raise BlobCorrupt(self._sha256)
        self._verified = True
        if self._copy is not None and self._store.cache is not None:
            copy, self._copy = self._copy, None
            try:
                self._store.cache.keep(copy, self._sha256)
            except OSError:
                _LOGGER.warning("blob cache: could not keep %s", self._sha256, exc_info=True)

    def _drop_copy(self) -> None:
        if self._copy is not None:
            self._copy.abort()
            self._copy = None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        target = min(max(base + offset, 0), self._size)
        if target < self._pos:
            self._body.close()
            self._drop_copy()
            self._start()
        skip = bytearray(READ_BYTES)
        while self._pos < target:
            self.readinto(memoryview(skip)[: target - self._pos])
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._body.close()
            self._drop_copy()
        super().close()
