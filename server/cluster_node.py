"""This process's part in a site of several processes (``[cluster]``, issue 21).

A **web front** (no ``worker_id``) serves pages, records and everything else itself and
hands the media path to the worker its appliance is pinned to
(:mod:`server.web.cluster_front`). A **media worker** (``clinicam media-worker``) is
the same server: it beats in Redis (its leases live as long as it does), adopts the
sessions a front vouches for, and gives an appliance's lease back once nothing of it
runs there any more. Every process re-reads the directory when another one changed it
(:class:`~server.cluster.bus.DirectoryBus`), and a worker closes the rooms of
consultations that ended elsewhere. Without ``[cluster]`` none of this runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from server.cluster import Coordination, CoordinationUnavailable, Keys, WorkerHeartbeat
from server.cluster.bus import DirectoryBus
from server.directory.models import LIVE, SCHEDULED
from server.state import ServerState
from server.web.cluster_front import FRONT, Front, front_middleware
from server.web.security import auth_middleware, vouched_session_middleware

_LOGGER = logging.getLogger(__name__)

IDLE_CHECK_S = 10.0
_TASKS: set[asyncio.Task[Any]] = set()
CLUSTER_TASKS = web.AppKey("clinicam_cluster_tasks", list[asyncio.Task[None]])


def _spawn(job: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(job)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def retire_ended(state: ServerState) -> None:
    """Close the rooms of consultations that are no longer open (ended elsewhere)."""
    for device in state.directory.devices:
        for room in state.rooms.rooms_of(device.device_id):
            now = state.directory.consultation(room.consultation.id)
            if now is None or now.state not in (SCHEDULED, LIVE):
                await state.rooms.retire(room.consultation.id)


async def hand_over(state: ServerState, devices: frozenset[str]) -> None:
    """Another worker runs these appliances now: drop their streams and rooms here without
    telling the pages the consultation ended (they reconnect, through the front, there)."""
    for device_id in devices:
        _LOGGER.warning("appliance %s moved to another media worker", device_id)
        await state.media.cut_off(device_id, why="it moved to another media worker")
        for room in state.rooms.rooms_of(device_id):
            await state.rooms.retire(room.consultation.id, ended=False)


def _in_use(state: ServerState, device_id: str) -> bool:
    if state.media.appliance_streaming(device_id):
        return True
    return any(
        member.online or member.sockets
        for room in state.rooms.rooms_of(device_id)
        for member in room.members.values()
    )


async def give_back_idle(state: ServerState, heartbeat: WorkerHeartbeat, leases: Any) -> None:
    """Give an appliance's lease back after two checks in a row found nothing of it here."""
    idle_before: set[str] = set()
    while True:
        await asyncio.sleep(IDLE_CHECK_S)
        idle = {d for d in heartbeat.held if not _in_use(state, d)}
        for device_id in idle & idle_before:
            with contextlib.suppress(CoordinationUnavailable):
                if await leases.release(device_id, heartbeat.info.worker_id):
                    heartbeat.forget(device_id)
                    _LOGGER.info("appliance %s idle: its lease is given back", device_id)
        idle_before = idle


def attach_cluster(app: web.Application, state: ServerState) -> None:
    """Wire this process into the site's cluster (nothing without ``[cluster]``)."""
    cluster = state.config.cluster
    if cluster is None or cluster.secret is None:
        return
    coordination = Coordination.open(cluster)
    bus = DirectoryBus(cluster.redis_url, Keys(cluster.key_prefix))
    heartbeat: WorkerHeartbeat | None = None
    if cluster.worker_id is not None:
        heartbeat = coordination.heartbeat(on_lost=lambda lost: _spawn(hand_over(state, lost)))
        position = list(app.middlewares).index(auth_middleware)
        app.middlewares.insert(position, vouched_session_middleware)
    else:
        app[FRONT] = Front(coordination, cluster.secret.get_secret_value().encode())
        app.middlewares.append(front_middleware)  # innermost: after the authentication

    async def changed_elsewhere() -> None:
        await asyncio.to_thread(state.directory.reload, notify=False)
        await retire_ended(state)

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()

        def changed_here() -> None:  # after a reload this process asked for, any thread
            loop.call_soon_threadsafe(_spawn, bus.publish())

        state.directory.on_change = changed_here
        tasks = [asyncio.create_task(bus.listen(changed_elsewhere), name="directory bus")]
        if heartbeat is not None:
            await heartbeat.start()
            idle = give_back_idle(state, heartbeat, coordination.leases)
            tasks.append(asyncio.create_task(idle, name="idle leases"))
        app[CLUSTER_TASKS] = tasks

    async def on_cleanup(app: web.Application) -> None:
        for task in app[CLUSTER_TASKS]:
            task.cancel()
        if heartbeat is not None:
            await heartbeat.stop(withdraw=True)
        if FRONT in app:
            await app[FRONT].close()
        await bus.close()
        await coordination.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.insert(0, on_cleanup)


__all__ = ["attach_cluster", "give_back_idle", "hand_over", "retire_ended"]
