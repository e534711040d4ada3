"""Full reconciliation of a portal: every selected section against the mapping and Google.

It repairs what events cannot: deliveries Bitrix24 never made, calendars renamed or deleted by
hand in Google, sections that left the selection, and calendars that carry our marker but lost
their mapping. It plans with the same `mirror` step as the event path. A mapped section that is
missing only because its owner dropped out of a listing is read directly before it may be retired.
When the plan would remove more calendars than the portal's delete guard allows, the removals are
held back (listed in the outcome that `bridge status` shows) and everything else is applied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlmodel import Session, select

from bridge.apply import mapped_calendar
from bridge.bitrix import BitrixClient, BitrixError
from bridge.config import PortalConfig
from bridge.google_calendar import CalendarGateway, GoogleError
from bridge.lease import Lease, fenced
from bridge.metrics import RECONCILE_CHANGES, RECONCILIATIONS
from bridge.mirror import Action, ActionKind, plan_portal
from bridge.models import CalendarMapping, MappingState, PortalState, utcnow
from bridge.quota import OwnerReadOnly, apply_within_quota
from bridge.removals import guard_removals
from bridge.selection import (
    Mapped,
    SectionLookupFailed,
    confirm_gone,
    resolve_sections,
    vanished,
)

Progress = Callable[[int, int], None]


@dataclass
class ReconcileReport:
    portal_key: str
    actions: list[Action] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: str | None = None  # why the mass-delete guard tripped
    held: list[Action] = field(default_factory=list)  # removals it held back
    kept: list[str] = field(default_factory=list)  # unconfirmed sections kept, with the reason
    read_only: str | None = None  # the owner is in Google's read-only mode (bridge.quota)
    waiting: int = 0  # actions left for after the owner's probe
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
        if self.dry_run:
            guard = f"; the removals would be held back: {self.blocked}" if self.blocked else ""
            return f"{head} (dry run: nothing changed){guard}"
        head = f"{head}; {len(self.done)} done, {len(self.failed)} failed"
        if self.kept:
            head = f"{head}, {len(self.kept)} kept unconfirmed"
        if self.held:
            head = f"{head}; {len(self.held)} removal(s) held back: {self.blocked}"
        if self.read_only:
            head = f"{head}; {self.waiting} left, no Google writes: {self.read_only}"
        return head

    def details(self, portal_key: str) -> list[str]:
        """One line per failure, held-back removal and unconfirmed section kept."""
        return [
            *self.failed,
            *(f"{a.describe(portal_key)}: held back by the mass-delete guard" for a in self.held),
            *self.kept,
        ]


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
    try:
        candidates = vanished(selection, portal.mirror, mapped_sections(mappings))
        confirm_gone(bitrix, portal.mirror, selection, candidates)
    except (SectionLookupFailed, BitrixError) as exc:
        report.failed.append(f"reading the selection: {exc}")
        return _record(lease, report)
    report.kept = [f"section {key}: {why}" for key, why in sorted(selection.unconfirmed.items())]
    known = [mapped_calendar(mapping) for mapping in mappings]
    report.actions = [
        action
        for action in plan_portal(portal, selection.sections, known, listed)
        if not (action.kind == ActionKind.RETIRE and action.section_id in selection.unconfirmed)
    ]
    report.blocked = None if force else guard_removals(lease.engine, portal, report.actions)
    if dry_run:
        return report
    holding = report.blocked is not None
    report.held = [action for action in report.actions if holding and action.removes_calendar]
    applying = [action for action in report.actions if not (holding and action.removes_calendar)]
    by_id = {entry.id: entry for entry in listed}
    for index, action in enumerate(applying, start=1):
        try:
            lease.renew_if_due()
            observed = by_id.get(action.calendar_id or "")
            outcome = apply_within_quota(lease, portal, action, google, observed)
            report.done.append(f"{action.describe(portal.key)}: {outcome}")
            RECONCILE_CHANGES.labels(portal.key, action.kind.value).inc()
        except OwnerReadOnly as exc:  # no Google call was made for it, or the probe was refused
            report.read_only = str(exc)
            report.waiting += 1
        except (GoogleError, BitrixError) as exc:
            report.failed.append(f"{action.describe(portal.key)}: {exc}")
        if progress is not None:
            progress(index, len(applying))
    return _record(lease, report)


def mapped_sections(mappings: Iterable[CalendarMapping]) -> list[Mapped]:
    """The mapped sections that could still be retired (an archived one already was)."""
    return [
        Mapped(m.section_id, m.section_type, m.owner_id)
        for m in mappings
        if m.state != MappingState.ARCHIVED
    ]


def _record(lease: Lease, report: ReconcileReport) -> ReconcileReport:
    if report.dry_run:
        return report
    result = "blocked" if report.blocked else "failed" if report.failed else "ok"
    RECONCILIATIONS.labels(lease.portal_key, result).inc()
    with fenced(lease) as session:
        state = session.get(PortalState, lease.portal_key)
        assert state is not None  # the lease lives in this row
        state.reconciled_at = utcnow()
        lines = report.details(lease.portal_key)
        state.reconcile_outcome = report.summary() + "".join(f"\n{line}" for line in lines)
        session.add(state)
    return report
