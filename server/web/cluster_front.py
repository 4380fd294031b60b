"""The web front's side of several media workers: media requests go to the pinned worker.

A request on the media path (an expert's offer, a room socket, the camera, the
presentation, the notes, an appliance's stream, a clinic station) names a consultation
or an appliance. Everything an appliance serves is pinned to one worker together (its
consultations take turns and share its stream), so the key of the lease is the
appliance. The front checks the session and CSRF token as for any request, then hands
the request to the worker with the session vouched for (:mod:`server.cluster.forwarding`)
and streams the answer back; a room socket is relayed both ways. A worker that dies
closes the relayed socket: the page reconnects through the front, which pins the
appliance to a live worker, and the media follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from clinicam.i18n import _
from server.auth import SESSION_COOKIE, cookie_digest
from server.cluster import Coordination
from server.cluster.forwarding import HEADER, Vouched, vouch
from server.errors import ApiError
from server.state import STATE
from server.web.security import SESSION_KEY

_LOGGER = logging.getLogger(__name__)

_BY_CONSULTATION = re.compile(
    r"^/api/consultations/(?P<cid>[^/]+)/"
    r"(?:webrtc|camera|latency|ws|presentation|relevance|notes)$"
)
_BY_APPLIANCE = re.compile(
    r"^/api/appliances/(?P<device>[^/]+)/(?:stream(?:/[^/]+)?|station(?:/webrtc|/controls)?)$"
)
# Request headers not passed on (hop by hop, or the front's own business). The Host
# header goes on: the worker checks a browser's Origin against it, as the front did.
_DROPPED = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        HEADER.lower(),
    }
)
# Answer headers passed back (the front adds its own security headers).
_KEPT = frozenset(
    {
        "content-type",
        "content-disposition",
        "cache-control",
        "retry-after",
        "www-authenticate",
        "location",
        "etag",
    }
)


@dataclass
class Front:
    """The coordination client, the secret it vouches with, and one HTTP client."""

    coordination: Coordination
    secret: bytes
    http: aiohttp.ClientSession = field(init=False)

    def __post_init__(self) -> None:
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=3.0, sock_read=None),
            auto_decompress=False,
        )

    async def close(self) -> None:
        await self.http.close()


FRONT = web.AppKey("clinicam_cluster_front", Front)


def appliance_of(request: web.Request) -> str | None:
    """The appliance whose worker serves ``request``; None: the front answers it."""
    match = _BY_APPLIANCE.match(request.path)
    if match is not None:
        return match["device"]
    match = _BY_CONSULTATION.match(request.path)
    if match is None:
        return None
    consultation = request.app[STATE].directory.consultation(match["cid"])
    return None if consultation is None else consultation.appliance


@web.middleware
async def front_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Inside the authentication: what it let through goes to the worker, if routed."""
    front = request.app.get(FRONT)
    device = None if front is None else appliance_of(request)
    if front is None or device is None:
        return await handler(request)
    worker = await front.coordination.leases.pin(device)  # unavailable: a clear 503
    url = worker.url.rstrip("/") + request.path_qs
    headers = _forwarded_headers(request, front.secret)
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await _relay_socket(request, front, url, headers)
    return await _forward(request, front, url, headers)


def _forwarded_headers(request: web.Request, secret: bytes) -> dict[str, str]:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
    if SESSION_KEY in request:
        session = request[SESSION_KEY]
        token = request.cookies.get(SESSION_COOKIE, "")
        vouched = Vouched(session.username, session.csrf, cookie_digest(token), time.time())
        headers[HEADER] = vouch(secret, vouched)
    return headers


async def _forward(
    request: web.Request, front: Front, url: str, headers: dict[str, str]
) -> web.StreamResponse:
    body = await request.read()
    try:
        async with front.http.request(
            request.method, url, headers=headers, data=body, allow_redirects=False
        ) as answer:
            data = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() in _KEPT}
            return web.Response(status=answer.status, body=data, headers=kept)
    except (TimeoutError, aiohttp.ClientError) as exc:
        _LOGGER.warning("media worker at %s did not answer: %s", url, exc)
        raise ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            _("the media server of this consultation is restarting; try again in a moment"),
            headers={"Retry-After": "1"},
        ) from None


async def _relay_socket(
    request: web.Request, front: Front, url: str, headers: dict[str, str]
) -> web.StreamResponse:
    """The room socket, relayed message by message both ways."""
    try:
        upstream = await front.http.ws_connect(url.replace("http", "ws", 1), headers=headers)
    except aiohttp.WSServerHandshakeError as exc:
        raise ApiError(HTTPStatus(exc.status), _("the room refused the connection")) from None
    except (TimeoutError, aiohttp.ClientError):
        raise ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            _("the media server of this consultation is restarting; try again in a moment"),
            headers={"Retry-After": "1"},
        ) from None
    downstream = web.WebSocketResponse()
    await downstream.prepare(request)

    async def up() -> None:
        async for message in downstream:
            if message.type == WSMsgType.TEXT:
                await upstream.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await upstream.send_bytes(message.data)

    async def down() -> None:
        async for message in upstream:
            if message.type == WSMsgType.TEXT:
                await downstream.send_str(message.data)
            elif message.type == WSMsgType.BINARY:
                await downstream.send_bytes(message.data)

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        code = upstream.close_code
        await upstream.close()
        if code is None or code == WSCloseCode.ABNORMAL_CLOSURE:
            code = WSCloseCode.SERVICE_RESTART  # the worker went away: the page reconnects
        await downstream.close(code=code)
    return downstream


__all__ = ["FRONT", "Front", "appliance_of", "front_middleware"]
