"""The sync step for entries named by inbox rows: read them, plan each, apply each.

Entries are read by id in batches (`entry_reads`); an edited occurrence brings its series along,
because its Google event is an instance of the series' event. A series is planned before its
occurrences and knows which of its days have an override (from the mappings, and from the
occurrences in this step), so the day an override takes is never an exception date as well.
A series pulled in only for its occurrence is applied too, but settles no rows. Entries Bitrix24
refuses to show (no access) are skipped, never taken for deleted ones; a delete needs the entry
to be gone, or to have left every mirrored section.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import date

from sqlmodel import Session

from bridge.bitrix_errors import BitrixError
from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.entries import Entry
from bridge.entry_apply import apply_entry
from bridge.entry_mappings import entry_mappings, mapped_entry
from bridge.entry_plan import EntryAction, EntryActionKind, EntryScope, SkipReason, plan_entry
from bridge.entry_reads import EntryReads, read_entries
from bridge.entry_step import (
    add_series,
    known_date_format,
    learn_date_format,
    overridden_days,
    parse_entries,
    scope_for,
    series_first,
)
from bridge.event_body import google_event_id, instance_day
from bridge.google_calendar import GoogleError
from bridge.lease import Lease
from bridge.mappings import mapping_row
from bridge.models import InboxState, MappingState
from bridge.queue import TryLater
from bridge.quota import owner_writes
from bridge.sync_report import Settled, SyncReport

_SKIPPED_KINDS = frozenset({EntryActionKind.SKIP})


def sync_entries(
    lease: Lease,
    portal: PortalConfig,
    ids: Sequence[str],
    clients: PortalClients,
    report: SyncReport,
    stop: threading.Event | None = None,
    *,
    deleted: frozenset[str] = frozenset(),
) -> None:
    """Read, plan and apply these entries; each id settles its rows through `report`. An entry
    in `deleted` (a delete event named it) that Bitrix24 will not show is gone."""
    if not portal.mirror.entries.enabled:
        for entry_id in ids:
            report.settle(
                entry_id,
                Settled(InboxState.SKIPPED, "entries are not mirrored (mirror.entries.enabled)"),
            )
        return
    try:
        step = _read_step(lease, portal, ids, clients, deleted)
    except BitrixError as exc:
        report.failed.append(f"reading entries: {exc}")
        report.read_error = exc
        return
    for entry_id in step.order(ids):
        if stop is not None and stop.is_set():
            return  # the unsettled entries are the caller's to put back
        lease.renew_if_due()
        started = time.monotonic()
        settled = _settle_one(lease, clients, step, entry_id)
        report.settle(entry_id, _timed(settled, started))
        if settled.state == InboxState.DONE:
            report.done.append(f"entry {entry_id}: {settled.outcome}")
        elif settled.error is not None:
            report.failed.append(f"entry {entry_id}: {settled.outcome}")


class _Step:
    """What one entry step read: the entries, their series, mappings and the portal's scope."""

    def __init__(
        self,
        portal: PortalConfig,
        reads: EntryReads,
        entries: dict[str, Entry],
        malformed: dict[str, str],
        scope: EntryScope,
        session: Session,
    ) -> None:
        self.portal = portal
        self.reads = reads
        self.entries = entries
        self.malformed = malformed
        self.scope = scope
        touched = set(entries) | reads.gone | set(malformed)
        self.mappings = entry_mappings(session, portal.key, sorted(touched))
        self.overrides: dict[str, set[date]] = overridden_days(session, portal.key, entries)
        for entry_id in reads.gone:  # … and this step's deleted ones no longer do
            self._forget_override(entry_id)

    def _forget_override(self, entry_id: str) -> None:
        mapping = self.mappings.get(entry_id)
        if mapping is None:
            return
        for series_id, days in self.overrides.items():
            prefix = google_event_id(self.portal.key, series_id) + "_"
            if mapping.google_event_id.startswith(prefix):
                day = instance_day(mapping.google_event_id, self.entries[series_id])
                days.discard(day) if day is not None else None

    def order(self, ids: Sequence[str]) -> list[str]:
        """Series first (with a series pulled in for an occurrence), then the rest in order."""
        return series_first(ids, self.entries)

    def action(self, entry_id: str) -> EntryAction:
        entry = self.entries.get(entry_id)
        series = None
        if entry is not None and entry.is_occurrence and entry.series_id is not None:
            series = self.entries.get(entry.series_id)
        mapping = self.mappings.get(entry_id)
        return plan_entry(
            self.scope,
            entry_id,
            entry,
            mapped_entry(mapping) if mapping is not None else None,
            series=series,
            overridden=self.overrides.get(entry_id, set()),
        )


def _read_step(
    lease: Lease,
    portal: PortalConfig,
    ids: Sequence[str],
    clients: PortalClients,
    deleted: frozenset[str],
) -> _Step:
    known = known_date_format(lease, portal.key)
    reads = read_entries(clients.bitrix, ids)
    for entry_id in deleted & set(reads.refused):
        del reads.refused[entry_id]
        reads.gone.add(entry_id)
    entries, malformed = parse_entries(reads.found.values(), known)
    add_series(clients, entries, known)
    learn_date_format(lease, known, entries.values())
    scope = scope_for(lease, portal, clients, list(entries.values()))
    with Session(lease.engine) as session:
        return _Step(portal, reads, entries, malformed, scope, session)


def _settle_one(lease: Lease, clients: PortalClients, step: _Step, entry_id: str) -> Settled:
    if entry_id in step.reads.refused:
        reason = step.reads.refused[entry_id]
        return Settled(InboxState.SKIPPED, f"Bitrix24 did not show the entry: {reason}")
    if entry_id in step.malformed:
        return Settled(
            InboxState.PARKED, f"the entry cannot be mirrored: {step.malformed[entry_id]}"
        )
    action = step.action(entry_id)
    entry = step.entries.get(entry_id)
    if action.reason == SkipReason.NOT_MIRRORED_SECTION and entry is not None:
        waiting = _calendar_being_made(lease, step.portal.key, entry.section_id)
        if waiting is not None:
            return Settled(None, str(waiting), waiting)
    if action.kind in _SKIPPED_KINDS:
        state = InboxState.DONE if action.reason == "unchanged" else InboxState.SKIPPED
        return Settled(state, action.describe(step.portal.key))
    try:
        with owner_writes(lease, step.portal) as mark:  # Google's read-only mode, as for calendars
            outcome = apply_entry(lease, clients.events, action, entry.version if entry else None)
            mark.wrote = True
    except (GoogleError, TryLater) as exc:
        return Settled(None, str(exc), exc)
    return Settled(InboxState.DONE, str(outcome))


class CalendarNotReady(TryLater):
    """The entry's section is getting its calendar (its mapping is still `creating`)."""


def _calendar_being_made(lease: Lease, portal_key: str, section_id: str) -> TryLater | None:
    """A retry for an entry whose section's calendar is being made right now, rather than a
    skip that only the next reconciliation would make up for."""
    with Session(lease.engine) as session:
        row = mapping_row(session, portal_key, section_id)
    if row is None or row.state != MappingState.CREATING:
        return None
    return CalendarNotReady(f"section {section_id}'s calendar is still being made")


def _timed(settled: Settled, started: float) -> Settled:
    return Settled(
        settled.state,
        settled.outcome,
        settled.error,
        settled.action,
        (time.monotonic() - started) * 1000,
    )
