"""The worker schedules work: it claims a portal with due work, runs it, then sleeps or wakes.

The work of a claim is one of: a sync of the sections the taken inbox rows name
(`bridge.sync`, settling each row through `bridge.queue`), a portal event (bind the events after
a verified install, `bridge.portal_events`; pull the offline queue, `bridge.offline`), a scheduled
offline pull, or a periodic full
reconciliation. Guarantee: every pending row is eventually applied, skipped, or parked with its
reason; each section is synced once per pass however many events named it, because the sync is
state-based. New work wakes an idle worker (`bridge.wakeups`: a notification on PostgreSQL, a
50 ms poll on SQLite); alerts and the portal's
credential state are kept here, from what the sync and the queue report.
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
from sqlmodel import Session, select

from bridge import offline, queue
from bridge.addresses import alert as address_alert
from bridge.addresses import claim_unreported
from bridge.bitrix import BitrixAuthFailed, BitrixBlocked, BitrixError
from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.events import INSTALL, PORTAL_EVENTS
from bridge.google_calendar import GoogleAuthFailed
from bridge.lease import Lease, LeaseLost, claim_portal, fenced, release_portal
from bridge.metrics import APPLY_LATENCY, EVENTS_APPLIED
from bridge.models import InboxEvent, InboxState, PortalState, utcnow
from bridge.notify import Notifier
from bridge.oauth import app_problem, app_ready
from bridge.portal_events import bind_after_install, check_installs
from bridge.queue import TryLater
from bridge.sync import Everything, Sections, Settled, sync
from bridge.tokens import TokenCipher, require_cipher
from bridge.wakeups import FALLBACK_SECONDS, Wakeups

log = logging.getLogger("bridge.worker")

LEASE_TTL = timedelta(seconds=30)


class Worker:
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
        self.notifier = notifier
        self.lease_ttl = lease_ttl
        self.portals = {portal.key: portal for portal in portals}
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        self._make_clients = clients
        self._clients: dict[str, PortalClients] = {}
        self._stop = threading.Event()
        pulls = [p.bitrix.offline_poll_seconds for p in portals if p.bitrix.delivery == "offline"]
        self._wakeups = Wakeups(engine, fallback=min([poll_seconds, *pulls]))
        self._pulls = offline.PullSchedule()
        self._credential_trouble: set[str] = {
            key for key in self.portals if _has_credential_error(engine, key)
        }

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
            stale = self._portals_to_reconcile()
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
        self._report_addresses(portal)
        if portal.app_mode:
            rows = self._settle_installs(lease, portal, rows)
            if not rows:
                return True
        problem = app_problem(self.engine, portal)
        if problem is not None:
            _finish(lease, rows, InboxState.PARKED, problem)
            self._alert(portal, "app", problem)
            self._clients.pop(portal.key, None)  # tokens change with the next install
            return True
        clients = self.clients(portal)
        by_section: dict[str, list[InboxEvent]] = defaultdict(list)
        for row in rows:
            if row.event in PORTAL_EVENTS:
                self._portal_event(lease, portal, clients, row)
            else:
                by_section[row.section_id or ""].append(row)
        if by_section:
            self._sync_sections(lease, portal, clients, by_section)
        return True

    def _sync_sections(
        self,
        lease: Lease,
        portal: PortalConfig,
        clients: PortalClients,
        by_section: dict[str, list[InboxEvent]],
    ) -> None:
        """The event path: one sync of the named sections; each settles its rows as it ends."""

        def settle(section_id: str, settled: Settled) -> None:
            group = by_section[section_id]
            if settled.error is not None:
                self._fail(lease, group, settled.error)
            elif settled.state is not None:
                _finish(lease, group, settled.state, settled.outcome)
                self._log_settled(portal, section_id, group, settled)

        report = sync(
            lease,
            portal,
            Sections(tuple(by_section)),
            clients,
            stop=self._stop,
            on_settled=settle,
        )
        if report.read_error is not None:
            self._fail(
                lease, [row for group in by_section.values() for row in group], report.read_error
            )
            return
        left = [key for key in by_section if key not in report.settled]
        if left:
            queue.put_back(lease, [row.id for key in left for row in by_section[key] if row.id])
            log.info("portal %s: stopping; %d section(s) left for later", portal.key, len(left))
        self._credentials_ok(lease)

    def _log_settled(
        self, portal: PortalConfig, section_id: str, group: list[InboxEvent], settled: Settled
    ) -> None:
        if settled.state == InboxState.PARKED:  # only the delete guard parks without an error
            blocked = settled.outcome.removeprefix("mass-delete guard: ")
            log.warning("mass-delete guard tripped: %s", blocked, extra={"portal": portal.key})
            self._alert(
                portal,
                "delete_guard",
                f"the mass-delete guard held back removals (parked; everything else was "
                f"applied): {blocked}",
            )
        elif settled.action is not None:
            log.info(
                "section %s: %s",
                section_id,
                settled.outcome,
                extra={
                    "portal": portal.key,
                    "member_id": portal.member_id,
                    "section_id": section_id,
                    "event": ",".join(sorted({row.event for row in group})),
                    "outcome": settled.action.kind.value,
                    "duration_ms": settled.duration_ms,
                },
            )

    def _settle_installs(
        self, lease: Lease, portal: PortalConfig, rows: list[InboxEvent]
    ) -> list[InboxEvent]:
        """Installs first (`bridge.portal_events`); returns the rows that go on."""
        checked = check_installs(self.engine, require_cipher(self.cipher), portal, rows)
        if checked.verified:
            self._clients.pop(portal.key, None)  # its client caches the previous access token
        if checked.refused:
            self._alert(
                portal,
                "install_refused",
                f"{len(checked.refused)} install(s) could not be verified and are not trusted: "
                f"{checked.refused[-1]}. See `bridge status`.",
            )
        waiting = [row.id for row in checked.waiting if row.id]
        if waiting:
            queue.reschedule(lease, waiting, TryLater("install not verified yet"))
        for row, detail in checked.untrusted:
            _finish(lease, [row], InboxState.IGNORED, f"install not trusted: {detail}")
        return checked.go_on

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
            self._fail(lease, [row], exc)
            return
        _finish(lease, [row], InboxState.DONE, outcome)

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
                self._fail(lease, [row], exc)
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
            self._alert(
                portal,
                "offline_mode",
                "the plan refused extended offline events (WRONG_LICENSE); offline delivery "
                "switched to basic mode. See `bridge status`.",
            )
        return pulled

    def reconcile(self, lease: Lease, portal: PortalConfig) -> bool:
        report = sync(lease, portal, Everything(), self.clients(portal))
        log.info("periodic reconciliation: %s", report.summary(), extra={"portal": portal.key})
        self._report_addresses(portal)
        for line in report.failed:
            log.warning("%s", line, extra={"portal": portal.key})
        if report.blocked:
            self._alert(
                portal,
                "delete_guard",
                f"the mass-delete guard held back {len(report.held)} removal(s) in "
                f"reconciliation; everything else was applied: {report.blocked}",
            )
        return bool(report.actions)

    def _portals_to_reconcile(self) -> list[PortalConfig]:
        now = utcnow()
        with Session(self.engine) as session:
            last = {
                state.portal_key: state.reconciled_at
                for state in session.exec(select(PortalState)).all()
            }
        due = []
        for key, portal in self.portals.items():
            every = portal.mirror.reconcile_interval_minutes
            if every <= 0:
                continue
            previous = last.get(key)
            if (previous is None or now - previous >= timedelta(minutes=every)) and app_ready(
                self.engine, portal
            ):
                due.append(portal)
        return due

    def _fail(self, lease: Lease, rows: Sequence[InboxEvent], error: Exception) -> None:
        """The queue's policy decides the rows' fate; alerts and credentials are kept here."""
        ids = [row.id for row in rows if row.id is not None]
        reason = str(error)
        parked = queue.reschedule(lease, ids, error)
        portal = self.portals[lease.portal_key]
        log.warning("%d event(s) not applied: %s", len(ids), reason, extra={"portal": portal.key})
        if isinstance(error, BitrixAuthFailed | GoogleAuthFailed):
            self._credentials_failed(lease, reason)
        if isinstance(error, BitrixBlocked):
            self._alert(
                portal,
                "bitrix_blocked",
                f"{reason}. {parked} event(s) parked; `bridge replay` once the block is lifted.",
            )
        elif parked:
            self._alert(
                portal, "parked", f"{parked} event(s) parked: {reason}. See `bridge status`."
            )

    def _report_addresses(self, portal: PortalConfig) -> None:
        """One alert for the addresses first seen since the last report (by the web in events,
        or by a REST client after a redirect); the rows say which went out, across workers."""
        try:
            found = claim_unreported(self.engine, portal)
        except SQLAlchemyError as exc:  # the next pass asks again
            log.warning("addresses not reported: %s", exc.__class__.__name__)
            return
        if found:
            self._alert(portal, *address_alert(portal, found))

    def _alert(self, portal: PortalConfig, cause: str, message: str) -> None:
        if self.notifier is not None:
            self.notifier.notify(portal, cause, message)

    def _credentials_failed(self, lease: Lease, reason: str) -> None:
        with fenced(lease) as session:
            state = session.get(PortalState, lease.portal_key)
            if state is not None:
                state.credential_error = reason
                state.credential_error_at = state.credential_error_at or utcnow()
                session.add(state)
        self._credential_trouble.add(lease.portal_key)
        self._alert(
            self.portals[lease.portal_key], "credentials", f"credentials are refused: {reason}"
        )

    def _credentials_ok(self, lease: Lease) -> None:
        if lease.portal_key not in self._credential_trouble:
            return
        with fenced(lease) as session:
            state = session.get(PortalState, lease.portal_key)
            if state is not None:
                state.credential_error = state.credential_error_at = None
                session.add(state)
        self._credential_trouble.discard(lease.portal_key)


def _finish(lease: Lease, rows: Sequence[InboxEvent], state: InboxState, outcome: str) -> None:
    queue.finish(lease, [row.id for row in rows if row.id is not None], state, outcome)
    now = utcnow()
    for row in rows:
        EVENTS_APPLIED.labels(lease.portal_key, state.value).inc()
        if state == InboxState.DONE:
            APPLY_LATENCY.labels(lease.portal_key).observe((now - row.received_at).total_seconds())


def _has_credential_error(engine: Engine, portal_key: str) -> bool:
    with Session(engine) as session:
        state = session.get(PortalState, portal_key)
        return state is not None and state.credential_error is not None
