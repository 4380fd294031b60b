"""Several media workers behind one web front (issue 21), as real processes.

Two consultations land on different workers; SIGKILL the worker of one: its appliance is
pinned to the other worker, the expert reconnects through the front as the room page
does, and composite video flows again, while the other consultation never stopped. A
consultation the chair ends on the front closes on its worker. A worker trusts only what
a front vouches for with the site's secret.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from clinicam.ice import restrict_ice_to_loopback
from server.cluster import Keys, LeaseBook, WorkerRegistry, connect
from server.cluster.forwarding import HEADER, Vouched, vouch
from tests.cluster.conftest import RedisServer
from tests.cluster.site import PASSWORD, Site
from tests.expert_client import ExpertClient

FRAMES = 10
BACK_WITHIN_S = 30.0  # a generous bound for a loaded CI machine; the figure is printed


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Site]:
    """One site for the module (three processes take a while to start): the tests use
    it in file order and each leaves it usable for the next."""
    restrict_ice_to_loopback()  # the experts here (aiortc) reach the workers on 127.0.0.1
    running = Site(tmp_path_factory.mktemp("site"), redis_url)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def leases(redis_url: str) -> AsyncIterator[LeaseBook]:
    redis = connect(redis_url)
    yield LeaseBook(WorkerRegistry(redis, Keys("site:")))
    await redis.aclose()


async def _joined(site: Site, username: str, cid: str) -> ExpertClient:
    client = ExpertClient(site.front.base, username, PASSWORD)
    await client.login()
    await client.join(cid)
    await client.until_frames(FRAMES)
    return client


async def _rejoin(client: ExpertClient, cid: str, deadline_s: float) -> None:
    """What the room page does when its socket closes: reconnect, then offer again."""
    async with asyncio.timeout(deadline_s):
        while True:
            if client.pc is not None:
                await client.pc.close()
                client.pc = None
            try:
                await client.open_socket(cid)
                resp = await client.offer(cid)
                if resp.status == 200:
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)


async def test_a_worker_trusts_only_what_a_front_vouches_for(site: Site) -> None:
    alice = ExpertClient(site.front.base, "alice", PASSWORD)
    await alice.login()
    worker = site.workers[0].base
    try:
        cookies = {c.key: c.value for c in alice.http.cookie_jar}
        token = next(iter(cookies.values()))
        forged = vouch(b"x" * 40, Vouched("alice", alice.csrf, "0" * 64, time.time()))
        async with aiohttp.ClientSession(cookies=cookies) as http:
            # The front's cookie means nothing to a worker on its own...
            resp = await http.get(worker + "/api/consultations/c1/latency")
            assert resp.status == 401
            # ...nor with an assertion signed by anyone but the site.
            resp = await http.get(
                worker + "/api/consultations/c1/latency", headers={HEADER: forged}
            )
            assert resp.status == 401
        assert token  # the session cookie exists (it is what the front vouches for)
        # Through the front the same request is answered.
        resp = await alice.request("GET", "/api/consultations/c1/latency")
        assert resp.status == 200, await resp.text()
    finally:
        await alice.close()


async def test_a_killed_workers_consultation_moves_and_its_video_resumes(
    site: Site, leases: LeaseBook
) -> None:
    alice = await _joined(site, "alice", "c1")
    bob = await _joined(site, "bob", "c2")
    try:
        first, second = await leases.holder("cam-1"), await leases.holder("cam-2")
        assert first is not None and second is not None
        assert first != second, "two consultations, two workers"
        assert alice.ws is not None
        site.worker(first).kill()
        killed_at = time.monotonic()
        async with asyncio.timeout(10):  # the front closes the relayed socket at once
            while not alice.ws.closed:
                await asyncio.sleep(0.05)
        await _rejoin(alice, "c1", BACK_WITHIN_S)
        before = len(alice.arrivals)
        await alice.until_frames(before + FRAMES, timeout_s=BACK_WITHIN_S)
        back_s = alice.arrivals[before] - killed_at
        print(f"video back {back_s:.1f} s after the worker was killed")
        assert await leases.holder("cam-1") == second  # re-pinned to the survivor
        # bob's consultation on the other worker went on meanwhile.
        assert bob.fps(killed_at, time.monotonic()) > 1.0, site.logs()
    finally:
        await alice.close()
        await bob.close()


async def test_ending_on_the_front_closes_the_room_on_its_worker(
    site: Site, leases: LeaseBook
) -> None:
    bob = await _joined(site, "bob", "c2")
    try:
        assert await leases.holder("cam-2") is not None
        resp = await bob.request("POST", "/api/consultations/c2/end", json={})
        assert resp.status == 200, await resp.text()
        async with asyncio.timeout(15):  # the worker hears of it and closes the room
            while "ended" not in bob.events:
                await asyncio.sleep(0.05)
    finally:
        await bob.close()
