"""The worker: drains each portal's pending inbox rows and converges Google to Bitrix24.

Guarantee: every pending row is eventually applied, skipped, or parked with its reason. A pass
over a portal holds the portal's lease, reads the whole selection once (one Bitrix24 `batch`),
and handles each section once however many events named it, because the sync is state-based.
Short transient failures are retried inside the clients; longer ones reschedule the rows in the
database. New work is noticed within 50 ms by a cheap indexed poll.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge import inbox
from bridge.bitrix import (
    TRANSIENT_ERRORS as BITRIX_TRANSIENT,
)
from bridge.bitrix import (
    BitrixClient,
    BitrixError,
    BitrixTimeBudgetExceeded,
)
from bridge.config import PortalConfig
from bridge.events import SectionEvent
from bridge.google_calendar import (
    TRANSIENT_ERRORS as GOOGLE_TRANSIENT,
)
from bridge.google_calendar import (
    CalendarGateway,
    GoogleCalendarGateway,
    GoogleError,
    GoogleQuotaExceeded,
)
from bridge.mirror import (
    SectionLookupFailed,
    converge_section,
    resolve_sections,
    retire_section,
)
from bridge.models import InboxEvent, InboxState

log = logging.getLogger("bridge.worker")

POLL_INTERVAL = 0.05
LEASE_TTL = timedelta(minutes=2)
QUOTA_BACKOFF = timedelta(hours=2)


class PortalClients:
    """The Bitrix24 client and Google gateway of one portal, built once per worker."""

    def __init__(self, portal: PortalConfig) -> None:
        self.bitrix = BitrixClient(portal.bitrix.webhook_url, timeout=portal.bitrix.timeout_s)
        self.google: CalendarGateway = GoogleCalendarGateway(portal.google)

    def close(self) -> None:
        self.bitrix.close()


class Worker:
    def __init__(
        self,
        *,
        engine: Engine,
        portals: Sequence[PortalConfig],
        clients: Callable[[PortalConfig], PortalClients] = PortalClients,
        name: str | None = None,
    ) -> None:
        self.engine = engine
        self.portals = {portal.key: portal for portal in portals}
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self._make_clients = clients
        self._clients: dict[str, PortalClients] = {}
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        log.info("worker %s started for %d portal(s)", self.name, len(self.portals))
        try:
            while not self._stop.is_set():
                if not self.run_once():
                    self._stop.wait(POLL_INTERVAL)
        finally:
            for clients in self._clients.values():
                clients.close()
            log.info("worker %s stopped", self.name)

    def run_once(self) -> bool:
        """One pass over every portal with due work; True if anything was handled."""
        try:
            due = inbox.due_portals(self.engine)
        except SQLAlchemyError as exc:
            log.error("database unavailable: %s", exc.__class__.__name__)
            self._stop.wait(1.0)
            return False
        handled = False
        for key in due:
            if self._stop.is_set():
                break
            portal = self.portals.get(key)
            if portal is None:
                continue  # rows of a portal removed from the config wait for it to return
            if not inbox.claim_portal(self.engine, key, self.name, LEASE_TTL):
                continue
            try:
                handled = self.drain_portal(portal) or handled
            finally:
                inbox.release_portal(self.engine, key, self.name)
        return handled

    def drain_portal(self, portal: PortalConfig) -> bool:
        rows = inbox.fetch_due(self.engine, portal.key)
        if not rows:
            return False
        clients = self._clients.get(portal.key)
        if clients is None:
            clients = self._clients[portal.key] = self._make_clients(portal)
        by_section: dict[str, list[InboxEvent]] = defaultdict(list)
        for row in rows:
            by_section[row.section_id or ""].append(row)

        try:
            sections = resolve_sections(clients.bitrix, portal.mirror)
        except (BitrixError, SectionLookupFailed) as exc:
            error = exc.error if isinstance(exc, SectionLookupFailed) else exc
            self._fail(portal, [r for group in by_section.values() for r in group], error)
            return True

        for section_id, group in by_section.items():
            ids = [row.id for row in group if row.id is not None]
            section = sections.get(section_id)
            try:
                if section is not None:
                    outcome = converge_section(self.engine, portal, section, clients.google)
                elif any(row.event == SectionEvent.DELETE for row in group):
                    outcome = retire_section(self.engine, portal, section_id, clients.google) or ""
                else:
                    outcome = ""
            except (GoogleError, BitrixError) as exc:
                self._fail(portal, group, exc)
                continue
            if not outcome:
                inbox.finish(
                    self.engine, ids, InboxState.SKIPPED, _not_selected(portal, section_id, group)
                )
                log.info("portal %s: section %s skipped (not selected)", portal.key, section_id)
                continue
            inbox.finish(self.engine, ids, InboxState.DONE, outcome)
            log.info("portal %s: section %s: %s", portal.key, section_id, outcome)
        return True

    def _fail(self, portal: PortalConfig, rows: Sequence[InboxEvent], error: Exception) -> None:
        ids = [row.id for row in rows if row.id is not None]
        reason = str(error)
        if isinstance(error, GoogleQuotaExceeded):
            inbox.retry_later(self.engine, ids, reason, QUOTA_BACKOFF)
        elif isinstance(error, BitrixTimeBudgetExceeded):
            wait = (error.reset_at - time.time()) if error.reset_at else 60.0
            inbox.retry_later(self.engine, ids, reason, timedelta(seconds=max(1.0, wait)))
        elif isinstance(error, GOOGLE_TRANSIENT + BITRIX_TRANSIENT):
            inbox.retry_later(self.engine, ids, reason)
        else:
            inbox.finish(self.engine, ids, InboxState.PARKED, reason)
        log.warning("portal %s: %d event(s) not applied: %s", portal.key, len(ids), reason)


def _not_selected(portal: PortalConfig, section_id: str, rows: Sequence[InboxEvent]) -> str:
    if all(row.event == SectionEvent.DELETE for row in rows):
        return f"section {section_id} is gone and the bridge does not mirror it"
    mirror = portal.mirror
    selection = [
        *(["company calendar"] if mirror.company else []),
        *(["resources"] if mirror.resources else []),
        f"groups {_ids(mirror.groups)}",
        f"users {_ids(mirror.users)}",
    ]
    return f"section {section_id} is not in the portal's selection ({', '.join(selection)})"


def _ids(selection: object) -> str:
    if isinstance(selection, list):
        return ", ".join(str(i) for i in selection) or "none"
    return str(selection)
