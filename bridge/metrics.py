"""Prometheus metrics.

Counters live in the process that counts: the web process counts deliveries; the worker counts
upstream requests, retries, applied events with their end-to-end latency, and reconciliations,
and serves them on its own small port (`METRICS_PORT`). Queue depth and parked work are read from
the database when the web's `/metrics` is scraped, so they are right however many workers run.
With several uvicorn workers in one web dyno set `PROMETHEUS_MULTIPROC_DIR` (prometheus-client's
multiprocess mode) and the web's `/metrics` aggregates them.

Label values never come from a request: events are the ones the bridge knows (others count as
`other`), portals are configured keys (or `unknown`), outcomes and methods are the bridge's own
words and calls, so the page stays the same size whatever callers send. With `METRICS_TOKEN` set
both pages answer 401 without `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    make_wsgi_app,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from bridge.events import HANDLED_EVENTS, INSTALL, OFFLINE_NOTICE, UNINSTALL
from bridge.models import CalendarMapping, InboxEvent, InboxState, PortalAddress, utcnow

KNOWN_EVENTS = frozenset({*HANDLED_EVENTS, INSTALL, UNINSTALL, OFFLINE_NOTICE})
OTHER_EVENT = "other"
UNKNOWN_PORTAL = "unknown"

EVENTS_RECEIVED = Counter(
    "bridge_events_received_total",
    "Deliveries to /bitrix/events by portal, event and outcome (accepted, duplicate, ignored, …)",
    ["portal", "event", "outcome"],
)
INSTALL_VERIFICATIONS = Counter(
    "bridge_install_verifications_total",
    "App installs checked against the configured OAuth server (verified, refused, unavailable)",
    ["portal", "outcome"],
)


def count_delivery(portal_key: str, event: str, outcome: str) -> None:
    """Count one delivery; `portal_key` is a configured key or UNKNOWN_PORTAL and `outcome` one
    of the web's own words, while the event name, chosen by the caller, is bounded here."""
    EVENTS_RECEIVED.labels(portal_key, event_label(event), outcome).inc()


def event_label(event: str) -> str:
    return event if event in KNOWN_EVENTS else OTHER_EVENT


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


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries the metrics token (always, when none is set)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    matches = hmac.compare_digest(given.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and matches


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _guarded(app: WsgiApp, token: str | None) -> WsgiApp:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if authorized(environ.get("HTTP_AUTHORIZATION"), token):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
        )
        return [b"metrics need Authorization: Bearer <METRICS_TOKEN>\n"]

    return guarded


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: scrapes would drown the worker's lines."""


def serve_worker_metrics(port: int, token: str | None = None) -> None:
    """The worker's counters on http://0.0.0.0:<port>/metrics (a background thread), behind
    the bearer token when one is set."""
    server = make_server(
        "0.0.0.0",
        port,
        _guarded(make_wsgi_app(), token),
        server_class=ThreadingWSGIServer,
        handler_class=_Quiet,
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
