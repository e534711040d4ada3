"""The worker is a thin scheduler: it claims a portal with due work, runs that work through the
module that owns it, then sleeps until new work wakes it.

Due work is inbox rows (a sync of the sections they name, `bridge.sync`, settled by
`bridge.settle`; a portal event, `bridge.portal_events` and `bridge.offline`), a scheduled offline
pull (`bridge.offline`) or a periodic reconciliation (`bridge.schedule`). Wake-ups come from
`bridge.wakeups`; alerts and credential state from `bridge.alerts`.
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

from bridge import offline, queue, settle
from bridge.alerts import Alerts
from bridge.bitrix_errors import BitrixError
from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.credentials import app_problem
from bridge.events import INSTALL, PORTAL_EVENTS, EntryEvent
from bridge.lease import Lease, LeaseLost, claim_portal, release_portal
from bridge.models import InboxEvent, InboxState
from bridge.notify import Notifier
from bridge.portal_events import bind_after_install, check_installs
from bridge.schedule import reconciliations_due
from bridge.sync import Entries, Everything, Sections, sync
from bridge.tokens import TokenCipher, require_cipher
from bridge.wakeups import FALLBACK_SECONDS, Wakeups

DELETES = frozenset({EntryEvent.DELETE.value})
log = logging.getLogger("bridge.worker")

LEASE_TTL = timedelta(seconds=30)


class Worker:
    """Every pending row is eventually applied, skipped, or parked with its reason; each section
    is synced once per pass however many events named it, because the sync is state-based."""

    def __init__(
        self,
        *,
        engine: Engine,
        portals: Sequence[PortalConfig],
        clients: Callable[[Engine, PortalConfig, TokenCipher | None], PortalClients] = (
            PortalClients
        ),
        name: str | None = None,
        lease_ttl: timedelta = LEASE_TTL,
        notifier: Notifier | None = None,
        cipher: TokenCipher | None = None,
        poll_seconds: float = FALLBACK_SECONDS,
    ) -> None:
        """`cipher` opens and seals the OAuth tokens of app-mode portals (required with one).
        `poll_seconds`: how often an idle worker looks without a wake-up (PostgreSQL), at most
        the shortest scheduled offline pull's interval."""
        if any(portal.app_mode for portal in portals):
            require_cipher(cipher)
        self.engine = engine
        self.cipher = cipher
        self.lease_ttl = lease_ttl
        self.portals = {portal.key: portal for portal in portals}
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self._make_clients = clients
        self._clients: dict[str, PortalClients] = {}
        self._stop = threading.Event()
        pulls = [p.bitrix.offline_poll_seconds for p in portals if p.bitrix.delivery == "offline"]
        self._wakeups = Wakeups(engine, fallback=min([poll_seconds, *pulls]))
        self._pulls = offline.PullSchedule()
        self.alerts = Alerts(engine, self.portals, notifier)

    def stop(self) -> None:
        self._stop.set()
        self._wakeups.wake()

    def run(self) -> None:
        log.info("worker %s started for %d portal(s)", self.name, len(self.portals))
        try:
            while not self._stop.is_set():
                try:
                    busy = self.run_once()
                except SQLAlchemyError as exc:  # the database went away mid-pass: rows stay
                    log.error("database error, retrying in a second: %s", exc.__class__.__name__)
                    self._stop.wait(1.0)
                    continue
                except Exception:  # a bug must not end the worker: taken rows return by lease
                    log.exception("unexpected error in a worker pass; continuing")
                    self._stop.wait(1.0)
                    continue
                if not busy:
                    self._wakeups.wait()
        finally:
            self._wakeups.close()
            for clients in self._clients.values():
                clients.close()
            log.info("worker %s stopped", self.name)

    def run_once(self) -> bool:
        """One pass: drain every portal with due work, then reconcile those that are due."""
        try:
            due = queue.due_portals(self.engine)
            stale = reconciliations_due(self.engine, list(self.portals.values()))
        except SQLAlchemyError as exc:
            log.error("database unavailable: %s", exc.__class__.__name__)
            self._stop.wait(1.0)
            return False
        handled = False
        for key in due:
            if key in self.portals:  # rows of a portal removed from the config wait for it
                handled = self._with_lease(self.portals[key], self.drain_portal) or handled
        for portal in self._pulls.due(self.engine, list(self.portals.values())):
            handled = self._with_lease(portal, self.pull) or handled
        for portal in stale:
            handled = self._with_lease(portal, self.reconcile) or handled
        return handled

    def _with_lease(
        self, portal: PortalConfig, work: Callable[[Lease, PortalConfig], bool]
    ) -> bool:
        if self._stop.is_set():
            return False
        lease = claim_portal(self.engine, portal.key, self.name, self.lease_ttl)
        if lease is None:
            return False
        try:
            queue.requeue_abandoned(lease)
            return work(lease, portal)
        except LeaseLost as exc:
            log.warning("portal %s: %s; stopped without recording", portal.key, exc)
            return True
        finally:
            release_portal(lease)

    def clients(self, portal: PortalConfig) -> PortalClients:
        if portal.key not in self._clients:
            self._clients[portal.key] = self._make_clients(self.engine, portal, self.cipher)
        return self._clients[portal.key]

    def drain_portal(self, lease: Lease, portal: PortalConfig) -> bool:
        self.clients(portal).bitrix.wait_ready()
        rows = queue.take_due(lease)
        if not rows:
            return False
        self.alerts.addresses(portal)
        if portal.app_mode:
            rows = self._settle_installs(lease, portal, rows)
            if not rows:
                return True
        problem = app_problem(self.engine, portal)
        if problem is not None:
            settle.finish(lease, rows, InboxState.PARKED, problem)
            self.alerts.alert(portal, "app", problem)
            self._clients.pop(portal.key, None)  # tokens change with the next install
            return True
        clients = self.clients(portal)
        by_section: dict[str, list[InboxEvent]] = defaultdict(list)
        by_entry: dict[str, list[InboxEvent]] = defaultdict(list)
        for row in rows:
            if row.event in PORTAL_EVENTS:
                self._portal_event(lease, portal, clients, row)
            elif row.entry_id is not None:
                by_entry[row.entry_id].append(row)
            else:
                by_section[row.section_id or ""].append(row)
        # Sections first: an entry's calendar may be the one its section's row creates.
        if by_section:
            self._sync_rows(lease, portal, clients, by_section, "section")
        if by_entry and not self._stop.is_set():
            self._sync_rows(lease, portal, clients, by_entry, "entry")
        elif by_entry:
            left = [row.id for group in by_entry.values() for row in group if row.id]
            queue.put_back(lease, left)
        return True

    def _sync_rows(
        self,
        lease: Lease,
        portal: PortalConfig,
        clients: PortalClients,
        groups: dict[str, list[InboxEvent]],
        kind: str,
    ) -> None:
        """The event path: one sync of the named sections or entries; each settles its rows as
        it ends."""
        rows = settle.ObjectRows(lease, portal, groups, self.alerts, kind)
        scope: Sections | Entries = Sections(tuple(groups))
        if kind == "entry":
            deleted = {key for key, rows in groups.items() if any(r.event in DELETES for r in rows)}
            scope = Entries(tuple(groups), frozenset(deleted))
        report = sync(lease, portal, scope, clients, stop=self._stop, on_settled=rows.settled)
        rows.ended(report)

    def _settle_installs(
        self, lease: Lease, portal: PortalConfig, rows: list[InboxEvent]
    ) -> list[InboxEvent]:
        """Installs first (`bridge.portal_events`); returns the rows that go on."""
        checked = check_installs(self.engine, require_cipher(self.cipher), portal, rows)
        if checked.verified:
            self._clients.pop(portal.key, None)  # its client caches the previous access token
        return settle.installs(lease, portal, checked, self.alerts)

    def _portal_event(
        self, lease: Lease, portal: PortalConfig, clients: PortalClients, row: InboxEvent
    ) -> None:
        """After an install: bind the events. On an offline notice (or a replayed scheduled pull):
        pull the queue now."""
        try:
            if row.event == INSTALL:
                outcome = bind_after_install(lease, portal, clients)
            else:
                outcome = offline.outcome(self._pull(lease, portal, clients))
        except BitrixError as exc:
            settle.fail(lease, portal, [row], exc, self.alerts)
            return
        settle.finish(lease, [row], InboxState.DONE, outcome)

    def pull(self, lease: Lease, portal: PortalConfig) -> bool:
        """A scheduled pull. A transient failure waits for the next one; a lasting one (rights,
        credentials, a refused method) is parked as an inbox row, with the reason and an alert,
        and stops the scheduled pulls until a pull succeeds (`bridge replay` retries it)."""
        try:
            pulled = self._pull(lease, portal, self.clients(portal))
        except BitrixError as exc:
            if not isinstance(queue.decide(exc, attempts=1), queue.Park):
                log.warning("offline pull failed: %s", exc, extra={"portal": portal.key})
                return False
            row = offline.scheduled_pull_row(self.engine, portal)
            if row is not None:
                settle.fail(lease, portal, [row], exc, self.alerts)
            self._pulls.parked.add(portal.key)
            return True
        return pulled is not None and pulled.taken > 0

    def _pull(
        self, lease: Lease, portal: PortalConfig, clients: PortalClients
    ) -> offline.Pulled | None:
        self._pulls.pulled[portal.key] = time.monotonic()
        pulled = offline.pull(lease, portal, clients)
        if pulled is None:
            return None
        self._pulls.parked.discard(portal.key)
        if pulled.downgraded:
            self.alerts.alert(
                portal,
                "offline_mode",
                "the plan refused extended offline events (WRONG_LICENSE); offline delivery "
                "switched to basic mode. See `bridge status`.",
            )
        return pulled

    def reconcile(self, lease: Lease, portal: PortalConfig) -> bool:
        report = sync(lease, portal, Everything(), self.clients(portal))
        settle.reconciled(portal, report, self.alerts)
        return bool(report.actions)
