"""The blob store a site's ``[blobs]`` section names: the local folder or S3."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from clinicam.configfile import ConfigError
from clinicam.i18n import _
from server.blob_config import BlobsConfig
from server.records.blobs import BlobStore, LocalBlobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Backend = Literal["local", "s3"]
_LOGGER = logging.getLogger(__name__)


def s3_client(config: BlobsConfig) -> S3Client:
    """A boto3 client for the configured store (credentials from the file or environment)."""
    import boto3
    from botocore.config import Config

    secret = config.secret_key.get_secret_value() if config.secret_key else None
    return boto3.client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        aws_access_key_id=config.access_key,
        aws_secret_access_key=secret,
        config=Config(
            s3={"addressing_style": "path" if config.path_style else "auto"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            request_checksum_calculation="when_supported" if config.checksums else "when_required",
            response_checksum_validation="when_required",
        ),
    )


def open_blob_store(
    config: BlobsConfig, state_dir: Path, *, backend: Backend | None = None
) -> BlobStore:
    """The store of ``backend`` (default: the configured one); nothing is contacted yet."""
    chosen = backend or config.backend
    if chosen == "local":
        return LocalBlobStore(state_dir / "blobs")
    if config.bucket is None:
        raise ConfigError(_("[blobs] bucket is needed for the object store"))
    from server.records.blob_cache import BlobCache
    from server.records.s3_blobs import S3BlobStore

    cache_bytes = config.cache_mb * 1024 * 1024

    return S3BlobStore(
        s3_client(config),
        config.bucket,
        prefix=config.prefix,
        part_bytes=config.part_mb * 1024 * 1024,
        checksums=config.checksums,
        cache=BlobCache(state_dir / "blob-cache", cache_bytes) if cache_bytes else None,
    )


def check_blob_store(config: BlobsConfig) -> None:
    """At start: a bucket the store says is missing or refuses us is a configuration
    error (:class:`ConfigError`); a store that does not answer only a warning, since
    the server runs on without it (uploads are refused, cached reads go on)."""
    if config.backend != "s3":
        return
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3_client(config).head_bucket(Bucket=str(config.bucket))
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status is not None and 400 <= status < 500:
            raise ConfigError(
                _(
                    "[blobs] the object store refuses bucket {bucket} (HTTP {status}): "
                    "check the bucket, the keys and the endpoint",
                    bucket=config.bucket,
                    status=status,
                )
            ) from None
        _LOGGER.warning("the object store answered %s; starting anyway", status)
    except BotoCoreError as exc:
        _LOGGER.warning("the object store cannot be reached (%s); starting anyway", exc)
