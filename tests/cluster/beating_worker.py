"""A stand-in media worker for the tests: it only announces itself and beats.

    python -m tests.cluster.beating_worker REDIS_URL WORKER_ID [PREFIX]

Runs until killed (the tests SIGKILL it, as a crashed worker would die).
"""

from __future__ import annotations

import asyncio
import sys

from server.cluster import Coordination
from server.cluster_config import ClusterConfig


async def main(url: str, worker_id: str, prefix: str) -> None:
    config = ClusterConfig(
        redis_url=url,
        worker_id=worker_id,
        worker_url=f"http://{worker_id}.internal:8081",
        key_prefix=prefix,
        secret="s" * 32,  # type: ignore[arg-type]
    )
    coordination = Coordination.open(config)
    await coordination.heartbeat().start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "test:"))
