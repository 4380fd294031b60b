"""Prometheus metrics of this server at ``/metrics`` (O7).

Two kinds, in one registry per application (never the process-wide default, so that
several applications in one process, as in the tests, keep their own):

* **Counted as requests pass** (:func:`metrics_middleware`): HTTP latency by route
  template, method and status class; uploads (records, imports, appliance stills and
  backfill) with their bytes; the control round trip, the time a camera command takes
  from the expert's request to the appliance's acknowledgement (the camera view answers
  only then).
* **Read at scrape time** (:class:`server.web.metrics_state.StateCollector`): live
  consultations, experts online, each call's bitrates, loss, round trip and composite
  frames, the composite's step times, appliances online with their temperature, frame
  rate and buffer use, the load rung and the audit chain's length.

Who may read: an admin's session, or a scraper with the bearer token whose SHA-256 the
``[metrics]`` section names (``token_sha256``); anyone else gets 401/403.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from clinicam.i18n import _
from server.auth import SESSION_COOKIE
from server.errors import ApiError
from server.state import STATE, ServerState
from server.web.metrics_state import StateCollector

UPLOAD_ROUTES = frozenset(
    {
        ("POST", "/api/patients/{pid}/records"),
        ("POST", "/api/imports/fhir"),
        ("POST", "/api/appliances/{device}/snapshots"),
        ("POST", "/api/appliances/{device}/archive/segments"),
    }
)
CONTROL_ROUTE = ("POST", "/api/consultations/{cid}/camera")
UNMATCHED = "unmatched"  # i18n: not for people (a metric label)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTROL_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


@dataclass
class ServerMetrics:
    """The application's registry and the metrics counted as requests pass."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        r = self.registry
        self.http = Histogram(
            "clinicam_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status class.",
            ("route", "method", "status"),
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.uploads = Counter(
            "clinicam_uploads",
            "Uploads (records, imports, appliance stills, backfill), by route and outcome.",
            ("route", "outcome"),
            registry=r,
        )
        self.upload_bytes = Counter(
            "clinicam_upload_bytes",
            "Bytes of the uploads received, by route.",
            ("route",),
            registry=r,
        )
        self.control = Histogram(
            "clinicam_control_round_trip_seconds",
            "A camera command from the expert's request to the appliance's acknowledgement.",
            ("outcome",),
            buckets=CONTROL_BUCKETS,
            registry=r,
        )

    def observe(self, method: str, route: str, status: int, seconds: float, size: int) -> None:
        klass = f"{status // 100}xx"
        self.http.labels(route, method, klass).observe(seconds)
        outcome = "ok" if status < 400 else "refused" if status < 500 else "failed"
        if (method, route) in UPLOAD_ROUTES:
            self.uploads.labels(route, outcome).inc()
            self.upload_bytes.labels(route).inc(max(0, size))
        elif (method, route) == CONTROL_ROUTE:
            self.control.labels(outcome).observe(seconds)


METRICS = web.AppKey("clinicam_metrics", ServerMetrics)


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Time every request to its answer (errors included: the status is the answer's)."""
    started = time.perf_counter()
    status = int(HTTPStatus.INTERNAL_SERVER_ERROR)
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        size = request.content_length or 0
        request.app[METRICS].observe(
            request.method, _route(request), status, time.perf_counter() - started, size
        )


def _may_read(request: web.Request) -> None:
    state = request.app[STATE]
    wanted = state.config.metrics.token_sha256
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and wanted is not None:
        given = hashlib.sha256(header[len("Bearer ") :].strip().encode()).hexdigest()
        if hmac.compare_digest(given, wanted):
            return
        raise ApiError(HTTPStatus.UNAUTHORIZED, _("wrong metrics token"))
    session = state.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise ApiError(HTTPStatus.UNAUTHORIZED, _("metrics need an admin's sign-in or the token"))
    if state.access.role_of(session.username) != "admin":
        raise ApiError(HTTPStatus.FORBIDDEN, _("only admins may read the metrics"))


class MetricsView(web.View):
    async def get(self) -> web.StreamResponse:
        """Prometheus metrics of this server (an admin's session or the scraper's token)."""
        if not self.request.app[STATE].config.metrics.enabled:
            raise web.HTTPNotFound()
        _may_read(self.request)
        body = await asyncio.to_thread(generate_latest, self.request.app[METRICS].registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_metrics_routes(app: web.Application, state: ServerState) -> None:
    metrics = ServerMetrics()
    metrics.registry.register(StateCollector(state))
    app[METRICS] = metrics
    app.router.add_view("/metrics", MetricsView)
