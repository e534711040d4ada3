"""Entries in a reconciliation (the worker's periodic one and `bridge sync`): every mirrored
section's window listed in Bitrix24 and compared with the entry mappings and with Google.

Run by `sync.py` after the sections were applied, so a calendar made or replaced in this run
already takes its entries. Per (type, owner) of the active section mappings, one
`calendar.event.get` lists the window (`mirror.entries` past/future days; a series once); the
owners go a part at a time (one batch request of up to 50, sized to about 2,000 entries), each
part listed, planned and applied before the next is read, so memory stays flat however large
the portal. Each part's calendars are listed in Google by the portal's private property
(`entry_google.py`), except those this run inserted, which hold none yet. Each entry is planned
with `plan_entry`, given what Google holds (a hand edit is put again, a hand delete restored, an
event without its mapping adopted through the insert's 409). Mapped entries the listing did not
show are read by id: moved out of the window (kept up to date) or gone (deleted in Google);
Bitrix24 shows a deleted entry to nobody, so "not found" and a refusal both mean gone here, where
a successful listing of the entry's section agrees. Events with the portal's mark that no active
mapping and no listed entry claims (`StrayEvent`) are deleted; an instance override or a
cancelled occurrence never is one.

Safety: when a listing fails, the run stops there (reported): nothing is judged missing, and
the owners after it wait for the next run; deletes only ever follow a listing that succeeded
(a stray, or an entry that left the mirrored sections). Actions are applied a few hundred
at a time through Google batch requests, series and single entries before edited occurrences,
and each batch records its mappings, so a run stopped half-way is resumed by the next one without
duplicates (the event ids are derived; an insert that exists meets 409 and is put instead).

The first reconciliation of a portal with entries (`entries_backfilled_at` unset) is its
backfill; it is marked done once a run ends without entry failures.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, select

from bridge.bitrix_errors import BitrixError
from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.entries import Entry
from bridge.entry_batches import EntryPlan, Events, Progress, apply_plan
from bridge.entry_google import find_strays, marked_events
from bridge.entry_mappings import entry_mappings, mapped_entry
from bridge.entry_plan import EntryAction, EntryActionKind, EntryScope, plan_entry
from bridge.entry_reads import (
    BATCH,
    EntryListingFailed,
    OwnerSections,
    list_entries,
    read_entries,
)
from bridge.entry_step import (
    add_series,
    known_date_format,
    learn_date_format,
    mirrored_sections,
    overridden_days,
    parse_entries,
    scope_for,
    series_first,
)
from bridge.google_calendar import GoogleError
from bridge.lease import Lease, fenced_state
from bridge.models import (
    EntryMapping,
    EntryState,
    PortalState,
    utcnow,
)
from bridge.sync_report import SyncReport

_UNLISTED_CHUNK = 500  # mapped entries the listing missed, read by id at a time
# Owners are listed a part at a time, each part planned and applied before the next is read: the
# first part has FIRST_PART owners, the next ones as many as make about ROWS_PER_PART entries
# (at most one `batch` request of 50), so memory stays flat however many entries a portal has.
FIRST_PART = 10
ROWS_PER_PART = 2000


def reconcile_entries(
    lease: Lease,
    portal: PortalConfig,
    clients: PortalClients,
    report: SyncReport,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Converge every mirrored entry of the portal; what was planned and done goes to `report`."""
    if not portal.mirror.entries.enabled:
        return
    with Session(lease.engine) as session:
        state = session.get(PortalState, portal.key)
        report.entry_backfill = state is None or state.entries_backfilled_at is None
    run = _Run(lease, portal, clients, report, dry_run, stop)
    listing_failed = _stream(run, progress)
    if listing_failed is not None:
        report.failed.append(
            f"listing entries: {listing_failed} "
            "(nothing judged missing, no owner after it reconciled)"
        )
    stopped = stop is not None and stop.is_set()
    clean = not (run.failures or stopped or listing_failed or report.waiting)
    if report.entry_backfill and not dry_run and clean:
        with fenced_state(lease) as state:
            state.entries_backfilled_at = utcnow()


@dataclass
class _Run:
    """One reconciliation's entries, planned and applied a part at a time (memory stays flat):
    what it has seen so far and how many of its writes failed."""

    lease: Lease
    portal: PortalConfig
    clients: PortalClients
    report: SyncReport
    dry_run: bool
    stop: threading.Event | None
    seen: set[str] = field(default_factory=set)  # entry ids listed (or read with them)
    failures: int = 0

    def take(self, plan: EntryPlan) -> None:
        """Count a part's plan into the report, and apply it unless this is a dry run."""
        self.report.count_entries([*plan.actions, *plan.deletes], plan.strays)
        if not self.dry_run:
            self.failures += apply_plan(
                self.lease, self.portal, self.clients, self.report, plan, None, self.stop
            )


def _stream(run: _Run, progress: Progress | None) -> str | None:
    """List the owners a part at a time (about `ROWS_PER_PART` entries each, judged from the
    parts before), planning and applying each part before the next is read; then the mapped
    entries no listing showed, only when every listing succeeded. Why a listing failed, or None."""
    lease, portal = run.lease, run.portal
    config = portal.mirror.entries
    today = datetime.now(UTC).date()
    window = (today - timedelta(days=config.past_days), today + timedelta(days=config.future_days))
    owners = owner_sections(lease, portal.key)
    known = known_date_format(lease, portal.key)
    start, size, rows = 0, FIRST_PART, 0
    while start < len(owners):
        if run.stop is not None and run.stop.is_set():
            return None
        part = owners[start : start + size]
        plan = EntryPlan(seen=run.seen)
        try:
            known = _plan_owners(run, part, window, plan, known)
        except (EntryListingFailed, BitrixError, GoogleError) as exc:
            return str(exc)
        run.take(plan)
        start += len(part)
        rows += plan.listed
        size = max(1, min(BATCH, ROWS_PER_PART * start // max(rows, 1)))
        lease.renew_if_due()
        if progress is not None:
            progress(start, len(owners))
    plan = EntryPlan(seen=run.seen)
    try:
        _plan_unlisted(lease, portal, run.clients, plan, known)
    except BitrixError as exc:
        return f"reading mapped entries: {exc}"
    run.take(plan)
    return None


def owner_sections(lease: Lease, portal_key: str) -> list[OwnerSections]:
    """The active section mappings with a calendar, per (type, owner)."""
    with Session(lease.engine) as session:
        rows = mirrored_sections(session, portal_key)
    owners: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        owners.setdefault((row.section_type, row.owner_id), []).append(row.section_id)
    return [
        OwnerSections(kind, owner, tuple(sorted(sections, key=_numeric)))
        for (kind, owner), sections in sorted(owners.items())
    ]


def _plan_owners(
    run: _Run,
    owners: Sequence[OwnerSections],
    window: tuple[date, date],
    plan: EntryPlan,
    known: str | None,
) -> str | None:
    """List these owners' window and their calendars' events (not those of calendars this run
    inserted), plan their entries and find the strays; the date format now known."""
    lease, portal, clients = run.lease, run.portal, run.clients
    rows = list(list_entries(clients.bitrix, owners, *window))
    plan.listed += len(rows)
    entries, malformed = parse_entries(rows, known)
    del rows
    plan.seen.update(malformed)
    add_series(clients, entries, known)
    known = learn_date_format(lease, known, entries.values())
    scope = scope_for(lease, portal, clients, list(entries.values()))
    sections = (section for owner in owners for section in owner.section_ids)
    calendars = sorted({c for s in sections if (c := scope.calendars.get(s)) is not None})
    google = marked_events(clients, portal.key, calendars, run.report.inserted)
    _plan_entries(lease, scope, entries, plan, google)
    find_strays(lease, portal.key, google, plan)
    return known


def _plan_entries(
    lease: Lease,
    scope: EntryScope,
    entries: Mapping[str, Entry],
    plan: EntryPlan,
    google: Mapping[str, Events] | None,
) -> None:
    """Plan `entries`, series first; an entry that is gone is planned with None."""
    mappings = entry_mappings(lease, scope.portal_key, list(entries))
    overrides = overridden_days(lease, scope.portal_key, entries)
    for entry_id in series_first(list(entries), entries):
        if entry_id in plan.seen:
            continue  # a series read again for an occurrence, planned already
        entry = entries[entry_id]
        plan.seen.add(entry_id)
        series = entries.get(entry.series_id or "") if entry.is_occurrence else None
        home = series if series is not None else entry
        calendar_id = scope.calendars.get(home.section_id)
        listed = google.get(calendar_id) if google is not None and calendar_id else None
        mapping = mappings.get(entry_id)
        action = plan_entry(
            scope,
            entry_id,
            entry,
            mapped_entry(mapping) if mapping is not None else None,
            series=series,
            overridden=overrides.get(entry_id, set()),
            listed=listed,
        )
        _add(plan, action, entry)


def _add(plan: EntryPlan, action: EntryAction, entry: Entry | None) -> None:
    if action.kind == EntryActionKind.SKIP:
        return
    if action.kind == EntryActionKind.DELETE:
        plan.deletes.append(action)
        return
    plan.actions.append(action)
    plan.versions[action.entry_id] = entry.version if entry is not None else None
    if entry is not None and entry.is_occurrence:
        plan.occurrences.add(action.entry_id)


def _plan_unlisted(
    lease: Lease, portal: PortalConfig, clients: PortalClients, plan: EntryPlan, known: str | None
) -> None:
    """Mapped entries no listing showed: read by id; moved out of the window (kept up to date),
    or gone (a listing of their section succeeded and Bitrix24 will not show them)."""
    with Session(lease.engine) as session:
        active = session.exec(
            select(EntryMapping.entry_id).where(
                EntryMapping.portal_key == portal.key, EntryMapping.state == EntryState.ACTIVE
            )
        ).all()
    unlisted = sorted(set(active) - plan.seen, key=_numeric)
    for start in range(0, len(unlisted), _UNLISTED_CHUNK):
        ids = unlisted[start : start + _UNLISTED_CHUNK]
        reads = read_entries(clients.bitrix, ids)
        entries, malformed = parse_entries(reads.found.values(), known)
        add_series(clients, entries, known)
        scope = scope_for(lease, portal, clients, list(entries.values()))
        _plan_entries(lease, scope, entries, plan, None)
        mappings = entry_mappings(lease, portal.key, [*reads.gone, *reads.refused])
        for entry_id in sorted({*reads.gone, *reads.refused} - set(malformed)):
            mapping = mappings.get(entry_id)
            mapped = mapped_entry(mapping) if mapping is not None else None
            _add(plan, plan_entry(scope, entry_id, None, mapped), None)


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (1 << 62, value)
