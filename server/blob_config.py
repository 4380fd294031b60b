"""The ``[blobs]`` section: where record content is kept (the local folder or S3)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from clinicam.configfile import StrictModel


class BlobsConfig(StrictModel):
    """Where record content (photos, scans, CT, voice notes) is kept: the local folder
    ``state_dir/blobs`` or an S3-compatible object store (O8). ``clinicam blobs migrate``
    copies a site's content from one to the other before ``backend`` is switched."""

    backend: Literal["local", "s3"] = Field(
        "local", description="local (state_dir/blobs) or s3 (the object store below)."
    )
    endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        max_length=300,
        description="The store's address, e.g. https://s3.example.org:9000 "
        "(none: Amazon S3 for the region).",
    )
    bucket: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="The bucket (it must exist); required for s3.",
    )
    region: str = Field(
        "us-east-1", pattern=r"^[a-z0-9-]{1,40}$", description="The bucket's region."
    )
    access_key: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Access key id; none: from the environment (AWS_ACCESS_KEY_ID, ...).",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Its secret; none: from the environment (AWS_SECRET_ACCESS_KEY, ...). "
        "CLINICAM_SERVER__BLOBS__SECRET_KEY keeps it out of the file.",
    )
    prefix: str = Field(
        "",
        pattern=r"^([A-Za-z0-9._-]+/)*$",
        max_length=200,
        description='Keys start with this (e.g. "clinic-a/"); empty or ending in "/".',
    )
    path_style: bool = Field(
        True, description="Address the bucket in the path (most self-hosted stores)."
    )
    checksums: bool = Field(
        True,
        description="Send SHA-256 checksums for the store to verify on write; turn off "
        "only for a store that refuses them (reads are verified either way).",
    )
    part_mb: int = Field(
        8, ge=5, le=512, description="Uploads larger than this go up in parts of this size."
    )

    cache_mb: int = Field(
        1024,
        ge=0,
        le=10_000_000,
        description="s3: keep up to this much recently written or read content on local "
        "disk (state_dir/blob-cache), so reads of it go on while the store is away; 0: none.",
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.backend == "s3" and self.bucket is None:
            raise ValueError("[blobs] backend = 's3' needs a bucket")
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("[blobs] access_key and secret_key go together (or neither)")
        return self
