"""Full reconciliation of a portal: every selected section against the mapping and Google.

It repairs what events cannot: deliveries Bitrix24 never made, calendars renamed or deleted by
hand in Google, sections that left the selection, and calendars that carry our marker but lost
their mapping. It plans with the same `mirror` step as the event path and stops before touching
anything when the plan would remove more calendars than the portal's delete guard allows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import Session, select

from bridge.apply import apply_action
from bridge.bitrix import BitrixClient, BitrixError
from bridge.config import PortalConfig
from bridge.google_calendar import CalendarGateway, GoogleError
from bridge.lease import Lease, fenced
from bridge.metrics import RECONCILE_CHANGES, RECONCILIATIONS
from bridge.mirror import Action, ActionKind, guard_deletions, plan_portal
from bridge.models import CalendarMapping, MappingState, PortalState, utcnow
from bridge.selection import SectionLookupFailed, resolve_sections

Progress = Callable[[int, int], None]


@dataclass
class ReconcileReport:
    portal_key: str
    actions: list[Action] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: str | None = None
    dry_run: bool = False

    def summary(self) -> str:
        counts = Counter(action.kind for action in self.actions)
        removing = sum(1 for action in self.actions if action.removes_calendar)
        parts = [
            f"{counts[ActionKind.CREATE] + counts[ActionKind.RECREATE]} to create",
            f"{counts[ActionKind.ADOPT]} to adopt",
            f"{counts[ActionKind.UPDATE]} to update",
            f"{removing} to delete or archive",
            f"{counts[ActionKind.RETIRE] - removing} to forget",
        ]
        head = f"{self.portal_key}: {', '.join(parts)}"
        if self.blocked:
            return f"{head}; stopped: {self.blocked}"
        if self.dry_run:
            return f"{head} (dry run: nothing changed)"
        return f"{head}; {len(self.done)} done, {len(self.failed)} failed"


def reconcile_portal(
    lease: Lease,
    portal: PortalConfig,
    bitrix: BitrixClient,
    google: CalendarGateway,
    *,
    dry_run: bool = False,
    force: bool = False,
    progress: Progress | None = None,
) -> ReconcileReport:
    report = ReconcileReport(portal_key=portal.key, dry_run=dry_run)
    try:
        selection = resolve_sections(bitrix, portal.mirror)
        listed = list(google.owned_calendars())
    except SectionLookupFailed as exc:
        report.failed.append(f"reading the selection: {exc}")
        return _record(lease, report)
    except (BitrixError, GoogleError) as exc:
        report.failed.append(f"reading the selection: {exc}")
        return _record(lease, report)
    with Session(lease.engine) as session:
        mappings = list(
            session.exec(
                select(CalendarMapping).where(CalendarMapping.portal_key == portal.key)
            ).all()
        )
    report.actions = plan_portal(portal, selection.sections, mappings, listed)
    mapped = sum(1 for m in mappings if m.state != MappingState.ARCHIVED and m.google_calendar_id)
    report.blocked = None if force else guard_deletions(portal, report.actions, mapped)
    if dry_run or report.blocked:
        return _record(lease, report)
    by_id = {entry.id: entry for entry in listed}
    for index, action in enumerate(report.actions, start=1):
        try:
            lease.renew_if_due()
            observed = by_id.get(action.calendar_id or "")
            outcome = apply_action(lease, portal, action, google, observed)
            report.done.append(f"{action.describe(portal.key)}: {outcome}")
            RECONCILE_CHANGES.labels(portal.key, action.kind.value).inc()
        except (GoogleError, BitrixError) as exc:
            report.failed.append(f"{action.describe(portal.key)}: {exc}")
        if progress is not None:
            progress(index, len(report.actions))
    return _record(lease, report)


def _record(lease: Lease, report: ReconcileReport) -> ReconcileReport:
    if report.dry_run:
        return report
    result = "blocked" if report.blocked else "failed" if report.failed else "ok"
    RECONCILIATIONS.labels(lease.portal_key, result).inc()
    with fenced(lease) as session:
        state = session.get(PortalState, lease.portal_key)
        assert state is not None  # the lease lives in this row
        state.reconciled_at = utcnow()
        state.reconcile_outcome = report.summary() + "".join(f"\n{line}" for line in report.failed)
        session.add(state)
    return report
