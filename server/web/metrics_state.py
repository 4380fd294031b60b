"""What the metrics read from the server's state at each scrape (O7).

Prometheus calls :meth:`StateCollector.collect` in the thread the ``/metrics`` view
renders in; everything here is a read of figures the server keeps anyway (the rooms'
link figures, refreshed every few seconds for the room's own display; the composite's
step times; the appliances' telemetry), plus one small query for the audit chain's
length. Nothing is measured for the metrics alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select

from server.audit.log import AuditHead
from server.directory.models import LIVE
from server.media.link_health import TELEMETRY_FRESH_S
from server.room import ConsultationRoom
from server.state import ServerState

_LOGGER = logging.getLogger(__name__)
QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"))


class StateCollector(Collector):
    """The gauges and counters read from a :class:`ServerState` when scraped."""

    def __init__(self, state: ServerState) -> None:
        self._state = state

    def describe(self) -> list[Metric]:
        return []  # the families vary with the rooms and appliances there are

    def collect(self) -> Iterator[Metric]:
        state = self._state
        yield from _consultations(state)
        yield from _rooms(state.rooms.live_rooms())
        yield from _appliances(state)
        yield from _server(state)


def _consultations(state: ServerState) -> Iterator[Metric]:
    live = GaugeMetricFamily(
        "clinicam_consultations_live", "Consultations whose state is live (in the directory)."
    )
    live.add_metric([], sum(1 for c in state.directory.consultations if c.state == LIVE))
    yield live
    rooms = GaugeMetricFamily(
        "clinicam_rooms_active", "Consultation rooms with at least one expert online."
    )
    rooms.add_metric([], len(state.rooms.live_rooms()))
    yield rooms


def _rooms(rooms: list[ConsultationRoom]) -> Iterator[Metric]:
    experts = GaugeMetricFamily(
        "clinicam_experts_online", "Experts online per consultation.", labels=["consultation"]
    )
    frames = CounterMetricFamily(
        "clinicam_composite_frames",
        "Composite ticks per consultation (rate(): the composite's frame rate).",
        labels=["consultation"],
    )
    skipped = CounterMetricFamily(
        "clinicam_composite_frames_skipped",
        "Composite ticks skipped to keep up, per consultation.",
        labels=["consultation"],
    )
    steps = GaugeMetricFamily(
        "clinicam_frame_step_seconds",
        "Time per step of the live view on the server (decode, compose, encode…), over "
        "the recent frames.",
        labels=["consultation", "step", "quantile"],
    )
    total = GaugeMetricFamily(
        "clinicam_live_view_server_seconds",
        "Capture (or arrival) to composite sent, over the recent frames.",
        labels=["consultation", "quantile"],
    )
    link = _LinkFamilies()
    for room in rooms:
        cid = room.consultation.id
        experts.add_metric([cid], sum(1 for m in room.members.values() if m.online))
        frames.add_metric([cid], room.mixer.ticks)
        skipped.add_metric([cid], room.mixer.ticks_skipped)
        summary = room.mixer.latency.summary()
        for step, figures in summary["steps"].items():
            for quantile, key in QUANTILES:
                steps.add_metric([cid, step, quantile], figures[key] / 1000.0)
        for quantile, key in QUANTILES:
            if key in summary["total"]:
                total.add_metric([cid, quantile], summary["total"][key] / 1000.0)
        for party, party_link in room.links.items():
            link.add(cid, "station" if party == room.station.name else party, party_link.figures)
    yield from (experts, frames, skipped, steps, total)
    yield from link.families()


class _LinkFamilies:
    """Each party's link figures as the room last read them (every few seconds)."""

    def __init__(self) -> None:
        labels = ["consultation", "party", "direction"]
        self.bitrate = GaugeMetricFamily(
            "clinicam_link_bitrate_kbps",
            "What a party's link carries; up: from the party to the server.",
            labels=labels,
        )
        self.loss = GaugeMetricFamily(
            "clinicam_link_loss_ratio", "Share of a party's packets lost, each way.", labels=labels
        )
        self.rtt = GaugeMetricFamily(
            "clinicam_link_round_trip_seconds",
            "A party's round trip.",
            labels=["consultation", "party"],
        )
        self.latency = GaugeMetricFamily(
            "clinicam_live_view_latency_seconds",
            "The live view's glass-to-glass latency a viewer's page measured (capture → shown).",
            labels=["consultation", "party"],
        )
        self.connected = GaugeMetricFamily(
            "clinicam_link_connected",
            "Whether a party's media connection is up (1) or not (0).",
            labels=["consultation", "party"],
        )

    def add(self, cid: str, party: str, figures: dict[str, Any]) -> None:
        self.connected.add_metric([cid, party], 1.0 if figures.get("connected") else 0.0)
        for direction in ("up", "down"):
            kbps = figures.get(f"{direction}_kbps")
            if isinstance(kbps, int | float):
                self.bitrate.add_metric([cid, party, direction], float(kbps))
            loss = figures.get(f"{direction}_loss_pct")
            if isinstance(loss, int | float):
                self.loss.add_metric([cid, party, direction], float(loss) / 100.0)
        rtt = figures.get("rtt_ms")
        if isinstance(rtt, int | float):
            self.rtt.add_metric([cid, party], float(rtt) / 1000.0)
        g2g = figures.get("g2g_ms")
        if figures.get("g2g_measured") and isinstance(g2g, int | float):  # not the estimate
            self.latency.add_metric([cid, party], float(g2g) / 1000.0)

    def families(self) -> Iterator[Metric]:
        yield from (self.bitrate, self.loss, self.rtt, self.latency, self.connected)


def _appliances(state: ServerState) -> Iterator[Metric]:
    online = GaugeMetricFamily(
        "clinicam_appliance_online",
        "Whether an appliance is online (1) or not (0).",
        labels=["device"],
    )
    for device in state.directory.all_appliances:
        device_id = device.device_id
        online.add_metric([device_id], 1.0 if state.appliances.available.get(device_id) else 0.0)
    yield online
    families = {
        "cpu_temp_c": GaugeMetricFamily(
            "clinicam_appliance_temperature_celsius", "SoC temperature.", labels=["device"]
        ),
        "fps": GaugeMetricFamily(
            "clinicam_appliance_stream_fps", "Frames per second it sends.", labels=["device"]
        ),
        "bitrate_kbps": GaugeMetricFamily(
            "clinicam_appliance_stream_kbps", "What its stream carries.", labels=["device"]
        ),
        "load_1m": GaugeMetricFamily(
            "clinicam_appliance_load1", "Its one-minute load average.", labels=["device"]
        ),
        "buffer_bytes": GaugeMetricFamily(
            "clinicam_appliance_buffer_bytes",
            "Video it holds in its local archive buffer (sent later if the link was down).",
            labels=["device"],
        ),
    }
    dropped = CounterMetricFamily(
        "clinicam_appliance_dropped_frames", "Frames it dropped before sending.", labels=["device"]
    )
    now = time.monotonic()
    for device_id, (at, sample) in sorted(state.appliances.telemetry.items()):
        if now - at > TELEMETRY_FRESH_S:
            continue  # an old sample does not describe the appliance now
        for key, family in families.items():
            value = getattr(sample, key)
            if value is not None:
                family.add_metric([device_id], float(value))
        if sample.dropped_frames is not None:
            dropped.add_metric([device_id], sample.dropped_frames)
    yield from families.values()
    yield dropped


def _server(state: ServerState) -> Iterator[Metric]:
    rung = GaugeMetricFamily(
        "clinicam_load_rung", "The server's load ladder (0: everything at full rate)."
    )
    rung.add_metric([], state.rooms.pressure.rung)
    yield rung
    lag = GaugeMetricFamily(
        "clinicam_event_loop_lag_seconds",
        "How late the server's event loop runs, 95th percentile over the last minute.",
    )
    lag.add_metric([], state.media.loop_lag.p95_since(60.0))
    yield lag
    audit = GaugeMetricFamily(
        "clinicam_audit_chain_length", "Entries in the audit trail's hash chain."
    )
    try:
        with state.database.session() as session:
            head = session.scalar(select(AuditHead.seq))
    except Exception:  # a metrics scrape must not fail on a busy database
        _LOGGER.exception("audit chain length unavailable")
        return
    audit.add_metric([], float(head or 0))
    yield audit
