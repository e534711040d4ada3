"""The one sync step: read a portal's selection, plan, guard and apply, for some sections or all.

`sync` is the only place that does this. Its scope is `Sections` (the event path: the
sections that inbox rows named, each settled with an outcome for its rows), `Entries` (the same
for entries, in `entry_sync.py`) or `Everything` (a
reconciliation: the worker's periodic one and `bridge sync`, which also repairs deliveries
Bitrix24 never made, calendars renamed or deleted by hand in Google, sections that left the
selection and calendars that carry our marker but lost their mapping, then converges the entries
in `entry_reconcile.py`; its report is recorded in the portal's state). A mapped section missing
only because its owner dropped out of a listing is read directly before it may be retired, and an
unconfirmed one is never retired. When the plan
would remove more calendars than the delete guard allows, the removals are held back and
everything else is applied.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, col, select

from bridge.bitrix import BitrixError
from bridge.clients import APPLYING_AT_ONCE, PortalClients
from bridge.config import PortalConfig
from bridge.creation_pace import creation_room
from bridge.entry_reconcile import reconcile_entries
from bridge.entry_sync import sync_entries
from bridge.google_calendar import CalendarListEntry, GoogleError
from bridge.lease import Lease, fenced_state
from bridge.mappings import mapped_calendar
from bridge.metrics import RECONCILE_CHANGES, RECONCILIATIONS
from bridge.mirror import Action, ActionKind, MappedCalendar, plan_portal, plan_section
from bridge.models import CalendarMapping, InboxState, MappingState, utcnow
from bridge.outcome import Outcome, StepKind
from bridge.quota import OwnerReadOnly, apply_within_quota
from bridge.removals import guard_removals
from bridge.selection import (
    Mapped,
    SectionLookupFailed,
    Selection,
    confirm_gone,
    resolve_sections,
    vanished,
)
from bridge.sync_report import OnSettled, Settled, SyncReport

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Sections:
    """The event path: these sections (in the order their rows came)."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class Everything:
    """A reconciliation: `dry_run` plans only, `force` overrides the delete guard; `progress`
    hears the sections applied, `entry_progress` the entry actions."""

    dry_run: bool = False
    force: bool = False
    progress: Progress | None = None
    entry_progress: Progress | None = None


@dataclass(frozen=True)
class Entries:
    """The event path for entries: these entry ids (in the order their rows came); `deleted`
    are those with a delete event among their rows (Bitrix24 shows a deleted entry to nobody,
    and says so only as "Access denied", so the event is what tells gone from hidden)."""

    ids: tuple[str, ...]
    deleted: frozenset[str] = frozenset()


Scope = Sections | Entries | Everything


def sync(
    lease: Lease,
    portal: PortalConfig,
    scope: Scope,
    clients: PortalClients,
    *,
    stop: threading.Event | None = None,
    on_settled: OnSettled | None = None,
) -> SyncReport:
    """Read, plan, guard and apply `scope`. For `Sections`, `on_settled` hears each section as it
    settles and `stop` ends the apply between sections (the rest are left unsettled, for the
    caller to put back). The lease is renewed between sections."""
    if isinstance(scope, Entries):
        report = SyncReport(portal_key=portal.key, on_settled=on_settled)
        sync_entries(lease, portal, scope.ids, clients, report, stop, deleted=scope.deleted)
        return report
    dry_run = isinstance(scope, Everything) and scope.dry_run
    report = SyncReport(portal_key=portal.key, dry_run=dry_run, on_settled=on_settled)
    try:
        selection, mappings, listed = _read(lease, portal, scope, clients)
    except (SectionLookupFailed, BitrixError, GoogleError) as exc:
        report.failed.append(f"reading the selection: {exc}")
        report.read_error = exc.error if isinstance(exc, SectionLookupFailed) else exc
        return _record(lease, scope, report)
    if isinstance(scope, Sections):
        report.actions = _plan_sections(portal, scope, selection, mappings, report)
    else:
        report.kept = [f"section {k}: {why}" for k, why in sorted(selection.unconfirmed.items())]
        report.actions = [
            action
            for action in plan_portal(portal, selection.sections, mappings, listed or [])
            if not (action.kind == ActionKind.RETIRE and action.section_id in selection.unconfirmed)
        ]
    forced = isinstance(scope, Everything) and scope.force
    report.blocked = None if forced else guard_removals(lease.engine, portal, report.actions)
    if not dry_run:
        _apply(lease, portal, scope, clients, report, listed, stop)
    if isinstance(scope, Everything) and not (stop is not None and stop.is_set()):
        progress = scope.entry_progress
        reconcile_entries(
            lease, portal, clients, report, dry_run=dry_run, progress=progress, stop=stop
        )
    return report if dry_run else _record(lease, scope, report)


def _read(
    lease: Lease, portal: PortalConfig, scope: Scope, clients: PortalClients
) -> tuple[Selection, list[MappedCalendar], list[CalendarListEntry] | None]:
    """The selection (with vanished mapped sections read directly), the scope's mappings, and
    for `Everything` the calendars listed in Google, read while Bitrix24 is: the two reads do not
    depend on each other, and for a large portal each takes seconds (the Bitrix24 one at the
    bucket's pace, Google's at 250 calendars a page)."""
    listed = None
    if isinstance(scope, Everything):
        with ThreadPoolExecutor(1, "google-list") as pool:
            listing = pool.submit(_owned_calendars, clients)
            selection = resolve_sections(clients.bitrix, portal.mirror)
            listed = listing.result()
    else:  # the event path: no Google list, no thread
        selection = resolve_sections(clients.bitrix, portal.mirror)
    query = select(CalendarMapping).where(CalendarMapping.portal_key == portal.key)
    if isinstance(scope, Sections):
        query = query.where(col(CalendarMapping.section_id).in_(scope.ids))
    with Session(lease.engine) as session:
        mappings = list(session.exec(query).all())
    candidates = vanished(selection, portal.mirror, mapped_sections(mappings))
    confirm_gone(clients.bitrix, portal.mirror, selection, candidates)
    return selection, [mapped_calendar(row) for row in mappings], listed


def _owned_calendars(clients: PortalClients) -> list[CalendarListEntry]:
    return list(clients.google.owned_calendars())


def _plan_sections(
    portal: PortalConfig,
    scope: Sections,
    selection: Selection,
    mappings: list[MappedCalendar],
    report: SyncReport,
) -> list[Action]:
    """One action per named section that needs one; the others are settled at once."""
    by_section = {mapping.section_id: mapping for mapping in mappings}
    actions = []
    for section_id in scope.ids:
        if section_id in selection.unconfirmed:
            reason = f"section {section_id}: {selection.unconfirmed[section_id]}"
            report.settle(section_id, Settled(InboxState.SKIPPED, reason))
            continue
        section = selection.sections.get(section_id)
        action = plan_section(portal, section_id, section, by_section.get(section_id))
        if action is not None:
            actions.append(action)
        elif section is not None:
            report.settle(section_id, Settled(InboxState.DONE, "calendar is up to date"))
        else:
            why = _why_skipped(portal, selection, section_id)
            report.settle(section_id, Settled(InboxState.SKIPPED, why))
    return actions


def _apply(
    lease: Lease,
    portal: PortalConfig,
    scope: Scope,
    clients: PortalClients,
    report: SyncReport,
    listed: list[CalendarListEntry] | None,
    stop: threading.Event | None,
) -> None:
    """Apply the report's actions on `clients.applying`'s threads (each section is its own
    action: no two touch one calendar). One goes alone until a Google write has gone through,
    and again after the owner turned out read-only, so that a read-only owner meets one write
    (`quota.py`); then up to APPLYING_AT_ONCE go at once, unless the run would create more
    calendars than the creation pace has room for: then the room goes to the sections in the
    plan's order, one at a time. Outcomes are recorded in the plan's order, and a stop lets the
    actions already started finish."""
    holding = report.blocked is not None
    report.held = [action for action in report.actions if holding and action.removes_calendar]
    applying = [action for action in report.actions if not (holding and action.removes_calendar)]
    reconciling = isinstance(scope, Everything)
    progress = scope.progress if isinstance(scope, Everything) else None
    by_id = {entry.id: entry for entry in listed or []}
    started: deque[Future[_Applied]] = deque()
    applied, width, widest = 0, 1, _widest(lease, portal, applying)

    def record_oldest() -> None:
        nonlocal applied, width
        result = started.popleft().result()
        _record_applied(portal, report, result, counted=reconciling)
        if isinstance(result.error, OwnerReadOnly):
            width = 1
        elif result.outcome is not None and result.outcome.wrote:
            width = widest
        applied += 1
        if progress is not None:
            progress(applied, len(applying))

    try:
        for action in report.actions:
            if stop is not None and stop.is_set():
                break  # the unsettled sections are the caller's to put back
            lease.renew_if_due()
            if holding and action.removes_calendar:
                reason = f"mass-delete guard: {report.blocked}"
                report.settle(action.section_id, Settled(InboxState.PARKED, reason, action=action))
                continue
            while len(started) >= width:
                record_oldest()
            observed = by_id.get(action.calendar_id or "")
            args = (lease, portal, clients, report, action, observed)
            started.append(clients.applying.submit(_apply_one, *args))
        while started:
            record_oldest()
    finally:
        wait(started)  # an action that raised leaves the others to finish, not to run on


def _widest(lease: Lease, portal: PortalConfig, actions: list[Action]) -> int:
    """How many actions may go at once: APPLYING_AT_ONCE, or 1 when the calendars they may
    create are more than the creation pace has room for (whichever went first would take it)."""
    creating = sum(1 for action in actions if action.kind in _MAY_CREATE)
    if not creating:
        return APPLYING_AT_ONCE
    pace = portal.google.creation_pace
    window = timedelta(minutes=pace.minutes)
    room = creation_room(lease.engine, portal.google.subject, pace.calendars, window)
    return APPLYING_AT_ONCE if creating <= room else 1


_MAY_CREATE = frozenset({ActionKind.CREATE, ActionKind.ADOPT, ActionKind.RECREATE})


@dataclass(frozen=True)
class _Applied:
    action: Action
    outcome: Outcome | None = None
    error: GoogleError | BitrixError | None = None


def _apply_one(
    lease: Lease,
    portal: PortalConfig,
    clients: PortalClients,
    report: SyncReport,
    action: Action,
    observed: CalendarListEntry | None,
) -> _Applied:
    """One action, on one of `clients.applying`'s threads. Its success settles the section's
    rows in the transaction that records it; the rest is `_record_applied`'s, on the caller's."""
    started = time.monotonic()

    def settle(session: Session, outcome: Outcome) -> None:
        """The section's rows end in the transaction that records the outcome."""
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        settled = Settled(InboxState.DONE, str(outcome), action=action, duration_ms=duration_ms)
        report.settle(action.section_id, settled, session)

    try:
        outcome = apply_within_quota(lease, portal, action, clients.google, observed, settle)
    except (GoogleError, BitrixError) as exc:  # OwnerReadOnly among them
        return _Applied(action, error=exc)
    return _Applied(action, outcome)


def _record_applied(
    portal: PortalConfig, report: SyncReport, applied: _Applied, *, counted: bool
) -> None:
    action, exc = applied.action, applied.error
    if isinstance(exc, OwnerReadOnly):  # no Google call was made for it, or the probe was refused
        report.read_only = str(exc)
        report.waiting += 1
        report.settle(action.section_id, Settled(None, str(exc), exc, action))
    elif exc is not None:
        report.failed.append(f"{action.describe(portal.key)}: {exc}")
        report.settle(action.section_id, Settled(None, str(exc), exc, action))
    else:
        outcome = applied.outcome
        assert outcome is not None
        report.done.append(f"{action.describe(portal.key)}: {outcome}")
        report.inserted.update(
            s.calendar_id for s in outcome.steps if s.kind == StepKind.CREATED and s.calendar_id
        )
        if counted:
            RECONCILE_CHANGES.labels(portal.key, action.kind.value).inc()


def mapped_sections(mappings: Iterable[CalendarMapping]) -> list[Mapped]:
    """The mapped sections that could still be retired (an archived one already was)."""
    return [
        Mapped(m.section_id, m.section_type, m.owner_id)
        for m in mappings
        if m.state != MappingState.ARCHIVED
    ]


def _record(lease: Lease, scope: Scope, report: SyncReport) -> SyncReport:
    """A reconciliation's outcome, kept in the portal's state for `bridge status`."""
    if report.dry_run or isinstance(scope, Sections):
        return report
    result = "blocked" if report.blocked else "failed" if report.failed else "ok"
    RECONCILIATIONS.labels(lease.portal_key, result).inc()
    with fenced_state(lease) as state:
        state.reconciled_at = utcnow()
        lines = report.details(lease.portal_key)
        state.reconcile_outcome = report.summary() + "".join(f"\n{line}" for line in lines)
    return report


def _why_skipped(portal: PortalConfig, selection: Selection, section_id: str) -> str:
    if section_id in selection.excluded:
        return f"section {section_id} is not mirrored: {selection.excluded[section_id]}"
    mirror = portal.mirror
    chosen = [
        *(["company calendar"] if mirror.company else []),
        *(["meeting rooms"] if mirror.locations else []),
        *(["resources"] if mirror.resources else []),
        f"groups {_ids(mirror.groups)}",
        f"users {_ids(mirror.users)}",
    ]
    return f"section {section_id} is not in the portal's selection ({', '.join(chosen)}) or is gone"


def _ids(selection: object) -> str:
    if isinstance(selection, list):
        return ", ".join(str(i) for i in selection) or "none"
    return str(selection)
