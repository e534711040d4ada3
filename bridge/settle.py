"""How the worker's work ends: what a sync step, an install check or a failure reported, turned
into the queue's decisions for the rows it took (finish, reschedule or park, put back), with their
metrics, logs and alerts; a periodic reconciliation's report into logs and alerts.

The queue's retry policy (`bridge.queue.decide`) decides a failed row's fate; this module only
hands it the error and tells the people who run the portal what came of it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlmodel import Session

from bridge import queue
from bridge.alerts import Alerts
from bridge.bitrix_errors import BitrixAuthFailed, BitrixBlocked
from bridge.config import PortalConfig
from bridge.google_errors import GoogleAuthFailed
from bridge.lease import Lease
from bridge.metrics import APPLY_LATENCY, EVENTS_APPLIED
from bridge.models import InboxEvent, InboxState, utcnow
from bridge.portal_events import CheckedInstalls
from bridge.queue import TryLater
from bridge.sync_report import Settled, SyncReport

log = logging.getLogger("bridge.worker")


def finish(
    lease: Lease,
    rows: Sequence[InboxEvent],
    state: InboxState,
    outcome: str,
    session: Session | None = None,
) -> None:
    queue.finish(lease, [row.id for row in rows if row.id is not None], state, outcome, session)
    now = utcnow()
    for row in rows:
        EVENTS_APPLIED.labels(lease.portal_key, state.value).inc()
        if state == InboxState.DONE:
            APPLY_LATENCY.labels(lease.portal_key).observe((now - row.received_at).total_seconds())


def fail(
    lease: Lease,
    portal: PortalConfig,
    rows: Sequence[InboxEvent],
    error: Exception,
    alerts: Alerts,
) -> None:
    """The queue's policy decides the rows' fate; refused credentials and parked rows alert."""
    ids = [row.id for row in rows if row.id is not None]
    reason = str(error)
    parked = queue.reschedule(lease, ids, error)
    log.warning("%d event(s) not applied: %s", len(ids), reason, extra={"portal": portal.key})
    if isinstance(error, BitrixAuthFailed | GoogleAuthFailed):
        alerts.credentials_failed(lease, portal, reason)
    if isinstance(error, BitrixBlocked):
        alerts.alert(
            portal,
            "bitrix_blocked",
            f"{reason}. {parked} event(s) parked; `bridge replay` once the block is lifted.",
        )
    elif parked:
        alerts.alert(portal, "parked", f"{parked} event(s) parked: {reason}. See `bridge status`.")


def installs(
    lease: Lease, portal: PortalConfig, checked: CheckedInstalls, alerts: Alerts
) -> list[InboxEvent]:
    """Rows whose install is not verified yet wait, untrusted ones end; returns the rows that
    go on."""
    if checked.refused:
        alerts.alert(
            portal,
            "install_refused",
            f"{len(checked.refused)} install(s) could not be verified and are not trusted: "
            f"{checked.refused[-1]}. See `bridge status`.",
        )
    waiting = [row.id for row in checked.waiting if row.id]
    if waiting:
        queue.reschedule(lease, waiting, TryLater("install not verified yet"))
    for row, detail in checked.untrusted:
        finish(lease, [row], InboxState.IGNORED, f"install not trusted: {detail}")
    return checked.go_on


def reconciled(portal: PortalConfig, report: SyncReport, alerts: Alerts) -> None:
    log.info("periodic reconciliation: %s", report.summary(), extra={"portal": portal.key})
    alerts.addresses(portal)
    for line in report.failed:
        log.warning("%s", line, extra={"portal": portal.key})
    if report.blocked:
        alerts.alert(
            portal,
            "delete_guard",
            f"the mass-delete guard held back {len(report.held)} removal(s) in "
            f"reconciliation; everything else was applied: {report.blocked}",
        )


class ObjectRows:
    """The event path's rows, grouped by the object they name (a section, or an entry), settled
    by one sync of those objects: each object's rows as it ends (`settled`), the rest once the
    sync is over (`ended`). `kind` is "section" or "entry", for logs."""

    def __init__(
        self,
        lease: Lease,
        portal: PortalConfig,
        groups: dict[str, list[InboxEvent]],
        alerts: Alerts,
        kind: str = "section",
    ) -> None:
        self.lease = lease
        self.portal = portal
        self.groups = groups
        self.alerts = alerts
        self.kind = kind

    def settled(self, object_id: str, settled: Settled, session: Session | None = None) -> None:
        """`session`: the transaction that recorded the object's work, when there is one."""
        group = self.groups.get(object_id)
        if group is None:  # an object the sync touched on its own account (an entry's series)
            return
        if settled.error is not None:
            fail(self.lease, self.portal, group, settled.error, self.alerts)
        elif settled.state is not None:
            finish(self.lease, group, settled.state, settled.outcome, session)
            self._log(object_id, group, settled)

    def ended(self, report: SyncReport) -> None:
        """A read that failed fails every row; objects the sync did not reach (it was stopped)
        go back to the queue untouched."""
        if report.read_error is not None:
            rows = [row for group in self.groups.values() for row in group]
            fail(self.lease, self.portal, rows, report.read_error, self.alerts)
            return
        left = [key for key in self.groups if key not in report.settled]
        if left:
            ids = [row.id for key in left for row in self.groups[key] if row.id]
            queue.put_back(self.lease, ids)
            log.info(
                "portal %s: stopping; %d %s(s) left for later",
                self.portal.key,
                len(left),
                self.kind,
            )
        self.alerts.credentials_ok(self.lease)

    def _log(self, object_id: str, group: list[InboxEvent], settled: Settled) -> None:
        portal = self.portal
        if settled.state == InboxState.PARKED and self.kind == "section":
            # only the delete guard parks a section without an error
            blocked = settled.outcome.removeprefix("mass-delete guard: ")
            log.warning("mass-delete guard tripped: %s", blocked, extra={"portal": portal.key})
            self.alerts.alert(
                portal,
                "delete_guard",
                f"the mass-delete guard held back removals (parked; everything else was "
                f"applied): {blocked}",
            )
        elif settled.action is not None or self.kind == "entry":
            kind = settled.action.kind.value if settled.action is not None else settled.state
            log.info(
                "%s %s: %s",
                self.kind,
                object_id,
                settled.outcome,
                extra={
                    "portal": portal.key,
                    "member_id": portal.member_id,
                    f"{self.kind}_id": object_id,
                    "event": ",".join(sorted({row.event for row in group})),
                    "outcome": kind,
                    "duration_ms": settled.duration_ms,
                },
            )
