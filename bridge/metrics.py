"""Prometheus metrics.

Counters live in the process that counts: the web process counts deliveries; the worker counts
upstream requests, retries, applied events with their end-to-end latency, and reconciliations,
and serves them on its own small port (`METRICS_PORT`). Queue depth and parked work are read from
the database when the web's `/metrics` is scraped, so they are right however many workers run.
With several uvicorn workers in one web dyno set `PROMETHEUS_MULTIPROC_DIR` (prometheus-client's
multiprocess mode) and the web's `/metrics` aggregates them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from bridge.models import CalendarMapping, InboxEvent, InboxState, PortalAddress, utcnow

EVENTS_RECEIVED = Counter(
    "bridge_events_received_total",
    "Deliveries to /bitrix/events by portal, event and outcome (accepted, duplicate, ignored, …)",
    ["portal", "event", "outcome"],
)
EVENTS_APPLIED = Counter(
    "bridge_events_applied_total",
    "Inbox events the worker finished, by outcome",
    ["portal", "outcome"],
)
APPLY_LATENCY = Histogram(
    "bridge_event_latency_seconds",
    "From the 200 to Bitrix24 until the worker applied the event",
    ["portal"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200),
)
UPSTREAM_REQUESTS = Counter(
    "bridge_upstream_requests_total",
    "HTTP requests to Bitrix24 and Google",
    ["api", "method", "status"],
)
UPSTREAM_RETRIES = Counter(
    "bridge_upstream_retries_total", "Retries inside a call", ["api", "method"]
)
RECONCILIATIONS = Counter(
    "bridge_reconciliations_total", "Reconciliation runs by result", ["portal", "result"]
)
RECONCILE_CHANGES = Counter(
    "bridge_reconcile_changes_total", "Actions reconciliation applied, by kind", ["portal", "kind"]
)


class DatabaseCollector(Collector):
    """Inbox depth, parked work, oldest waiting event and mapped calendars, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        events = GaugeMetricFamily(
            "bridge_inbox_events", "Inbox events by portal and state", labels=["portal", "state"]
        )
        oldest = GaugeMetricFamily(
            "bridge_inbox_oldest_waiting_seconds",
            "Age of the oldest pending event",
            labels=["portal"],
        )
        calendars = GaugeMetricFamily(
            "bridge_calendars", "Mapped calendars by portal and state", labels=["portal", "state"]
        )
        addresses = GaugeMetricFamily(
            "bridge_portal_addresses",
            "Addresses events or REST redirects named that differed from the config when first "
            "seen (see `bridge status`), by portal and kind",
            labels=["portal", "kind"],
        )
        now = utcnow()
        with Session(self.engine) as session:
            for portal, state, count in session.exec(
                select(InboxEvent.portal_key, InboxEvent.state, func.count()).group_by(
                    col(InboxEvent.portal_key), col(InboxEvent.state)
                )
            ).all():
                events.add_metric([portal, str(state)], count)
            for portal, first in session.exec(
                select(InboxEvent.portal_key, func.min(InboxEvent.received_at))
                .where(col(InboxEvent.state).in_([InboxState.PENDING, InboxState.WORKING]))
                .group_by(col(InboxEvent.portal_key))
            ).all():
                oldest.add_metric([portal], max(0.0, (now - first).total_seconds()))
            for portal, state, count in session.exec(
                select(CalendarMapping.portal_key, CalendarMapping.state, func.count()).group_by(
                    col(CalendarMapping.portal_key), col(CalendarMapping.state)
                )
            ).all():
                calendars.add_metric([portal, str(state)], count)
            for portal, kind, count in session.exec(
                select(PortalAddress.portal_key, PortalAddress.kind, func.count()).group_by(
                    col(PortalAddress.portal_key), col(PortalAddress.kind)
                )
            ).all():
                addresses.add_metric([portal, kind], count)
        yield from (events, oldest, calendars, addresses)


def render(engine: Engine) -> bytes:
    """The web's /metrics page: this process's (or all uvicorn workers') counters plus the
    database's gauges."""
    counters: CollectorRegistry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)  # type: ignore[no-untyped-call]
    database = CollectorRegistry()
    database.register(DatabaseCollector(engine))
    return generate_latest(counters) + generate_latest(database)


def serve_worker_metrics(port: int) -> None:
    """The worker's counters on http://0.0.0.0:<port>/metrics (a background thread)."""
    start_http_server(port)
