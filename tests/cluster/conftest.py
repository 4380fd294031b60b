"""A real redis-server (Debian's) on loopback for the cluster tests, one per test."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from server.cluster import Keys, LeaseBook, WorkerRegistry, connect
from tests.helpers import free_port


class RedisServer:
    """A redis-server process that a test may stop and start again on the same port."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary, "Debian's redis-server is installed by ./install.sh --role dev"
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    if probe.ping():
                        return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise AssertionError(
                            "redis-server did not start: "
                            + (self.directory / "redis.log").read_text()
                        ) from None
                    time.sleep(0.05)
        finally:
            probe.close()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Front:
    """What one process sees: its own Redis client, registry and lease book."""

    def __init__(self, url: str, lease_ms: int = 3000) -> None:
        self.redis = connect(url)
        self.registry = WorkerRegistry(self.redis, Keys("test:"))
        self.leases = LeaseBook(self.registry, lease_ms=lease_ms)

    async def close(self) -> None:
        await self.redis.aclose()


@pytest.fixture
async def fronts(redis_server: RedisServer) -> AsyncIterator[list[Front]]:
    """Three processes' views of one Redis: made on demand, closed after."""
    made = [Front(redis_server.url) for _ in range(3)]
    try:
        yield made
    finally:
        for front in made:
            await front.close()
