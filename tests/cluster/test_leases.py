"""Leases in a real Redis: who may renew and release, pinning, concurrent fronts."""

from __future__ import annotations

import asyncio

import pytest

from server.cluster import NoWorkerAvailable, WorkerHeartbeat, WorkerInfo
from tests.cluster.conftest import Front

A = WorkerInfo("worker-a", "http://10.0.0.1:8081", capacity=10)
B = WorkerInfo("worker-b", "http://10.0.0.2:8081", capacity=10)


async def announce(front: Front, *workers: WorkerInfo) -> None:
    for worker in workers:
        await front.registry.heartbeat(worker, 3000)


async def test_acquire_renew_release_only_by_the_holder(fronts: list[Front]) -> None:
    leases = fronts[0].leases
    assert await leases.holder("c1") is None
    assert await leases.acquire("c1", "worker-a", 3000)
    assert not await leases.acquire("c1", "worker-b", 3000)  # SET NX: held already
    assert await leases.holder("c1") == "worker-a"

    assert not await leases.renew("c1", "worker-b", 60_000)
    assert not await leases.release("c1", "worker-b")
    assert await leases.holder("c1") == "worker-a"
    left = await leases.remaining_ms("c1")
    assert left is not None and left <= 3000  # the non-holder's renewal changed nothing

    assert await leases.renew("c1", "worker-a", 60_000)
    left = await leases.remaining_ms("c1")
    assert left is not None and left > 3000

    assert await leases.release("c1", "worker-a")
    assert await leases.holder("c1") is None
    assert not await leases.release("c1", "worker-a")  # nothing left to release
    assert not await leases.renew("c1", "worker-a")
    assert await leases.acquire("c1", "worker-b", 3000)
    assert await leases.holder("c1") == "worker-b"


async def test_a_lease_nobody_renews_expires(fronts: list[Front]) -> None:
    leases = fronts[0].leases
    assert await leases.acquire("c1", "worker-a", 300)
    async with asyncio.timeout(10):
        while await leases.holder("c1") is not None:
            await asyncio.sleep(0.05)
    assert await leases.acquire("c1", "worker-b", 3000)


async def test_pin_keeps_a_live_holder(fronts: list[Front]) -> None:
    front = fronts[0]
    await announce(front, A, B)
    assert await front.leases.acquire("c1", "worker-b")
    for _ in range(3):
        pinned = await front.leases.pin("c1")
        assert pinned.worker_id == "worker-b"
        assert pinned.url == B.url


async def test_idle_workers_each_take_a_consultation(fronts: list[Front]) -> None:
    front = fronts[0]
    await announce(front, A, B)
    first = await front.leases.pin("c1")
    second = await front.leases.pin("c2")
    assert {first.worker_id, second.worker_id} == {"worker-a", "worker-b"}
    loads = {w.worker_id: w.load for w in await front.registry.alive()}
    assert loads == {"worker-a": 1, "worker-b": 1}
    third = await front.leases.pin("c3")
    assert third.load == 2
    # Releasing makes room where it was released.
    assert await front.leases.release("c1", first.worker_id)
    assert (await front.leases.pin("c4")).worker_id == first.worker_id


async def test_full_workers_take_no_more(fronts: list[Front]) -> None:
    front = fronts[0]
    small = WorkerInfo("worker-s", "http://10.0.0.3:8081", capacity=1)
    await announce(front, small)
    assert (await front.leases.pin("c1")).worker_id == "worker-s"
    with pytest.raises(NoWorkerAvailable) as refused:
        await front.leases.pin("c2")
    assert refused.value.code == "no_media_worker"
    assert (await front.leases.pin("c1")).worker_id == "worker-s"  # its own still pins


async def test_no_live_worker_no_pin(fronts: list[Front]) -> None:
    with pytest.raises(NoWorkerAvailable):
        await fronts[0].leases.pin("c1")
    assert await fronts[0].leases.holder("c1") is None


async def test_fronts_racing_to_pin_end_with_one_holder(fronts: list[Front]) -> None:
    big_a = WorkerInfo(A.worker_id, A.url, capacity=100)
    big_b = WorkerInfo(B.worker_id, B.url, capacity=100)
    await announce(fronts[0], big_a, big_b)
    consultations = [f"c{i}" for i in range(30)]
    for cid in consultations:
        # Three processes, each twice, at once: every answer names the one holder.
        answers = await asyncio.gather(*(f.leases.pin(cid) for f in fronts for _ in range(2)))
        holder = await fronts[0].leases.holder(cid)
        assert holder is not None
        assert {a.worker_id for a in answers} == {holder}
    loads = {w.worker_id: w.load for w in await fronts[1].registry.alive()}
    assert sum(loads.values()) == len(consultations)  # each consultation counted once


async def test_the_heartbeat_renews_every_lease(fronts: list[Front]) -> None:
    front = fronts[0]
    beating = WorkerHeartbeat(front.registry, A, lease_ms=1000, heartbeat_ms=200)
    await beating.start()
    try:
        assert (await front.leases.pin("c1")).worker_id == "worker-a"
        assert (await front.leases.pin("c2")).worker_id == "worker-a"
        await asyncio.sleep(2.5)  # well past the 1 s lease: only the beats kept them
        assert await front.leases.holder("c1") == "worker-a"
        assert await front.leases.holder("c2") == "worker-a"
        assert beating.held == {"c1", "c2"}
        assert await front.leases.release("c1", "worker-a")
        beating.forget("c1")
        await beating.beat()
        assert beating.held == {"c2"}
    finally:
        await beating.stop()
    assert await front.registry.alive() == []  # withdrawn
