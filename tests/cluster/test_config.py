"""The ``[cluster]`` section: absent by default, validated when given."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinicam.configfile import ConfigError, load_config
from server.cluster import Coordination
from server.config import ServerConfig
from tests.cluster.conftest import RedisServer

SECRET = "s" * 32


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "clinicam-server.toml"
    path.write_text(body)
    return path


def test_single_process_by_default() -> None:
    assert load_config(ServerConfig, None, env_prefix="X_UNUSED", environ={}).cluster is None


def test_a_worker_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[cluster]\nredis_url = "redis://10.0.0.5:6379/0"\nworker_id = "media-1"\n'
        f'worker_url = "http://10.0.0.7:8081"\nsecret = "{SECRET}"\n',
    )
    cluster = load_config(ServerConfig, path, env_prefix="X_UNUSED", environ={}).cluster
    assert cluster is not None
    assert (cluster.lease_ms, cluster.heartbeat_ms) == (3000, 1000)
    assert cluster.worker_id == "media-1"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (f'redis_url = "http://x"\nsecret = "{SECRET}"', "redis_url"),
        ('redis_url = "redis://x"', "secret"),
        ('redis_url = "redis://x"\nsecret = "short"', "secret"),
        (
            f'redis_url = "redis://x"\nsecret = "{SECRET}"\nlease_ms = 1000\nheartbeat_ms = 600',
            "half of lease_ms",
        ),
        (f'redis_url = "redis://x"\nsecret = "{SECRET}"\nworker_id = "media-1"', "worker_url"),
        (f'redis_url = "redis://x"\nsecret = "{SECRET}"\nlease_ms = 10', "lease_ms"),
        (f'redis_url = "redis://x"\nsecret = "{SECRET}"\nredis_port = 1', "redis_port"),
    ],
)
def test_bad_sections_are_refused(tmp_path: Path, body: str, complaint: str) -> None:
    path = write(tmp_path, "[cluster]\n" + body + "\n")
    with pytest.raises(ConfigError) as refused:
        load_config(ServerConfig, path, env_prefix="X_UNUSED", environ={})
    assert complaint in str(refused.value)


async def test_coordination_from_the_section(redis_server: RedisServer, tmp_path: Path) -> None:
    worker_path = write(
        tmp_path,
        f'[cluster]\nredis_url = "{redis_server.url}"\nworker_id = "media-1"\n'
        'worker_url = "http://10.0.0.7:8081"\nlease_ms = 2000\nheartbeat_ms = 500\n'
        f'secret = "{SECRET}"\n',
    )
    worker_config = load_config(ServerConfig, worker_path, env_prefix="X_UNUSED", environ={})
    front_config = worker_config.model_copy(
        update={
            "cluster": worker_config.cluster.model_copy(  # type: ignore[union-attr]
                update={"worker_id": None, "worker_url": None}
            )
        }
    )
    assert worker_config.cluster is not None and front_config.cluster is not None
    worker = Coordination.open(worker_config.cluster)
    front = Coordination.open(front_config.cluster)
    try:
        with pytest.raises(ValueError, match="web front"):
            front.heartbeat()
        beating = worker.heartbeat()
        await beating.start()
        pinned = await front.leases.pin("c1")
        assert (pinned.worker_id, pinned.url) == ("media-1", "http://10.0.0.7:8081")
        remaining = await front.leases.remaining_ms("c1")
        assert remaining is not None and remaining <= 2000
        await beating.stop()
    finally:
        await worker.close()
        await front.close()
