"""Workers dying and Redis going away, on a real redis-server.

The re-pin test runs with the default settings (lease 3000 ms, heartbeat 1000 ms) and
prints how long a dead worker's consultation took to move: it bounds "clients back
within 5 s" (issue 21). It asserts the behaviour, not the time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

import pytest

from clinicam.i18n import translate
from server.cluster import CoordinationUnavailable, WorkerHeartbeat, WorkerInfo
from server.cluster_config import ClusterConfig
from server.errors import status_of
from tests.cluster.conftest import Front, RedisServer

A = WorkerInfo("worker-a", "http://10.0.0.1:8081", capacity=10)
B = WorkerInfo("worker-b", "http://10.0.0.2:8081", capacity=10)
DEFAULTS = ClusterConfig(redis_url="redis://127.0.0.1:1/0", secret="s" * 32)  # type: ignore[arg-type]


def heartbeat(front: Front, info: WorkerInfo, **kw: object) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        front.registry,
        info,
        lease_ms=DEFAULTS.lease_ms,
        heartbeat_ms=DEFAULTS.heartbeat_ms,
        **kw,  # type: ignore[arg-type]
    )


async def pin_until(front: Front, cid: str, worker_id: str, timeout_s: float) -> float:
    """Pin every 50 ms until ``worker_id`` runs ``cid``; the loop time it happened."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        while (await front.leases.pin(cid)).worker_id != worker_id:
            await asyncio.sleep(0.05)
    return loop.time()


async def test_a_dead_workers_consultation_re_pins(fronts: list[Front]) -> None:
    worker_a, worker_b = heartbeat(fronts[0], A), heartbeat(fronts[1], B)
    await worker_a.start()
    await worker_b.start()
    front = fronts[2]
    try:
        assert (await front.leases.pin("c1")).worker_id == "worker-a"
        assert (await front.leases.pin("c2")).worker_id == "worker-b"
        await worker_a.beat()
        assert worker_a.held == {"c1"}
        loop = asyncio.get_running_loop()
        # Worker A dies: it just stops beating (as SIGKILL would), nothing is withdrawn.
        await worker_a.stop(withdraw=False)
        died_at = loop.time()
        assert worker_a.last_beat is not None
        moved_at = await pin_until(front, "c1", "worker-b", timeout_s=30)
        print(
            f"\nre-pinned after {moved_at - died_at:.2f} s from the death "
            f"({moved_at - worker_a.last_beat:.2f} s from its last beat; "
            f"lease {DEFAULTS.lease_ms} ms, heartbeat {DEFAULTS.heartbeat_ms} ms)"
        )
        assert await front.leases.holder("c1") == "worker-b"
        assert (await front.leases.pin("c2")).worker_id == "worker-b"
        assert [w.worker_id for w in await front.registry.alive()] == ["worker-b"]
        await worker_b.beat()
        assert worker_b.held == {"c1", "c2"}  # B's heartbeat keeps the taken-over lease
    finally:
        await worker_b.stop()


async def test_a_sigkilled_worker_process_re_pins(
    redis_server: RedisServer, fronts: list[Front]
) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    processes = {
        wid: subprocess.Popen(
            [sys.executable, "-m", "tests.cluster.beating_worker", redis_server.url, wid],
            cwd=root,
            env=env,
        )
        for wid in ("worker-a", "worker-b")
    }
    front = fronts[0]
    try:
        async with asyncio.timeout(60):
            while len(await front.registry.alive()) < 2:
                assert all(p.poll() is None for p in processes.values()), "a worker failed"
                await asyncio.sleep(0.05)
        assert (await front.leases.pin("c1")).worker_id == "worker-a"
        assert (await front.leases.pin("c2")).worker_id == "worker-b"
        loop = asyncio.get_running_loop()
        processes["worker-a"].send_signal(signal.SIGKILL)
        killed_at = loop.time()
        moved_at = await pin_until(front, "c1", "worker-b", timeout_s=30)
        print(f"\nSIGKILLed worker: its consultation re-pinned after {moved_at - killed_at:.2f} s")
        assert (await front.leases.pin("c2")).worker_id == "worker-b"
        assert [w.worker_id for w in await front.registry.alive()] == ["worker-b"]
    finally:
        for process in processes.values():
            process.kill()
            process.wait(10)


async def test_a_worker_back_from_the_dead_learns_what_it_lost(fronts: list[Front]) -> None:
    lost: list[frozenset[str]] = []
    short = {"lease_ms": 600, "heartbeat_ms": 100}
    worker_a = WorkerHeartbeat(fronts[0].registry, A, on_lost=lost.append, **short)  # type: ignore[arg-type]
    worker_b = WorkerHeartbeat(fronts[1].registry, B, **short)  # type: ignore[arg-type]
    await worker_a.start()
    await worker_b.start()
    try:
        front = fronts[2]
        assert (await front.leases.pin("c1")).worker_id == "worker-a"
        await worker_a.beat()
        await worker_a.stop(withdraw=False)  # stalls (a long pause, a cut link)...
        await pin_until(front, "c1", "worker-b", timeout_s=30)
        beat = await worker_a.beat()  # ...and comes back
        assert beat.lost == {"c1"}
        assert lost == [frozenset({"c1"})]
        assert worker_a.held == frozenset()
        assert await front.leases.holder("c1") == "worker-b"  # its return took nothing
    finally:
        await worker_b.stop()
        await worker_a.stop()


async def test_a_worker_leaving_cleanly_hands_over_at_once(fronts: list[Front]) -> None:
    worker_a, worker_b = heartbeat(fronts[0], A), heartbeat(fronts[1], B)
    await worker_a.start()
    await worker_b.start()
    try:
        front = fronts[2]
        assert (await front.leases.pin("c1")).worker_id == "worker-a"
        await worker_a.stop(withdraw=True)
        # No waiting for the TTL: the holder is gone from the registry.
        assert (await front.leases.pin("c1")).worker_id == "worker-b"
    finally:
        await worker_b.stop()


async def test_redis_down_refuses_new_pins_and_running_ones_go_on(
    redis_server: RedisServer, fronts: list[Front], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="server.cluster.heartbeat")
    worker_a = heartbeat(fronts[0], A)
    worker_b = heartbeat(fronts[1], B)
    await worker_a.start()
    await worker_b.start()
    front = fronts[2]
    try:
        assert (await front.leases.pin("c1")).worker_id == "worker-a"
        await worker_a.beat()
        assert worker_a.held == {"c1"}

        redis_server.stop()
        with pytest.raises(CoordinationUnavailable) as refused:
            await front.leases.pin("c2")
        error = refused.value
        assert error.code == "coordination_unavailable"
        assert status_of(error) == HTTPStatus.SERVICE_UNAVAILABLE
        assert str(error.message) == (
            "No new consultation can start: the coordination store is unreachable."
        )
        assert "协调" in translate(error.message, "zh-CN")
        # A running consultation keeps the worker this front last saw for it...
        assert (await front.leases.pin("c1")).worker_id == "worker-a"
        # ...but another front, that never saw it, cannot tell where it runs.
        with pytest.raises(CoordinationUnavailable):
            await fronts[1].leases.pin("c1")

        async with asyncio.timeout(15):
            while worker_a.reachable:
                await asyncio.sleep(0.05)
        assert worker_a.held == {"c1"}  # the worker keeps serving what it runs
        assert any("unreachable" in r.getMessage() for r in caplog.records)

        redis_server.start()  # back, and empty (no persistence)
        async with asyncio.timeout(15):
            while not (worker_a.reachable and worker_b.reachable):
                await asyncio.sleep(0.05)
        assert (await front.leases.pin("c2")).worker_id == "worker-b"
        # A's first beat back took its consultation again: it did not move.
        assert await front.leases.holder("c1") == "worker-a"
        assert (await front.leases.pin("c1")).worker_id == "worker-a"
        assert any("back" in r.getMessage() for r in caplog.records)
    finally:
        await worker_a.stop()
        await worker_b.stop()
