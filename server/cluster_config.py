"""``[cluster]``: several media workers, each live consultation pinned to one by a lease.

Kept apart from :mod:`server.config` (which imports it) so that :mod:`server.cluster`
can read it without sitting above the whole configuration.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from clinicam.configfile import StrictModel
from clinicam.const import DEVICE_ID_PATTERN


class ClusterConfig(StrictModel):
    """Several media workers coordinated through Redis (absent: one process, no Redis).

    Each live consultation is pinned to one worker by a lease (``SET NX PX``) that the
    worker's heartbeat renews; a worker that stops beating loses its leases after
    ``lease_ms`` and its consultations are pinned to another worker.
    """

    redis_url: str = Field(
        pattern=r"^(redis|rediss|unix)://\S+$",
        description="The coordination store, e.g. redis://10.0.0.5:6379/0 (Debian's "
        "redis-server); one Redis primary, not a Redis Cluster.",
    )
    worker_id: str | None = Field(
        None,
        pattern=DEVICE_ID_PATTERN,
        description="This process's name when it is a media worker; none: a web front.",
    )
    worker_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+/?$",
        description="A media worker's internal address, as the web fronts reach it.",
    )
    secret: SecretStr | None = Field(
        None,
        min_length=32,
        description="Shared by the web fronts and the media workers: a front signs with it "
        "who it forwards a request for. Required; at least 32 characters "
        "(CLINICAM_SERVER__CLUSTER__SECRET keeps it out of the file).",
    )
    capacity: int = Field(
        20, ge=1, le=10_000, description="Live consultations a media worker takes at most."
    )
    lease_ms: int = Field(
        3000,
        ge=300,
        le=60_000,
        description="How long a lease (and a worker's presence) outlives its last heartbeat: "
        "a dead worker's consultations move to another worker after at most this.",
    )
    heartbeat_ms: int = Field(
        1000, ge=50, le=20_000, description="How often a media worker renews its leases."
    )
    key_prefix: str = Field(
        "clinicam:",
        pattern=r"^[A-Za-z0-9:_.{}-]{1,40}$",
        description="Prefix of every key in Redis (several sites may share one Redis).",
    )

    @model_validator(mode="after")
    def _beats_within_a_lease(self) -> Self:
        if self.heartbeat_ms * 2 > self.lease_ms:
            raise ValueError("heartbeat_ms must be at most half of lease_ms (two beats a lease)")
        if self.secret is None:
            raise ValueError(
                "give 'secret' (the same on every web front and media worker, 32 characters "
                "or more), e.g. from CLINICAM_SERVER__CLUSTER__SECRET"
            )
        if (self.worker_id is None) != (self.worker_url is None):
            raise ValueError("a media worker gives both 'worker_id' and 'worker_url'")
        return self
