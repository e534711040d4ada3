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

import re
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

from sqlmodel import Session, col, select

from bridge.bitrix_errors import BitrixError
from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.entries import Entry, MalformedEntry, parse_entry
from bridge.entry_apply import SeriesNotMirrored, apply_entry
from bridge.entry_mappings import entry_mappings, mapped_entry, occurrence_days
from bridge.entry_plan import EntryAction, EntryActionKind, EntryScope, plan_entry
from bridge.entry_reads import EntryReads, read_entries, room_names, user_names
from bridge.event_body import AttendeeMode, EntryOptions, Privacy, google_event_id, instance_day
from bridge.google_calendar import GoogleError
from bridge.lease import Lease, fenced
from bridge.locale_dates import DateFormat
from bridge.models import CalendarMapping, InboxState, MappingState, PortalState
from bridge.sync_report import Settled, SyncReport

_ROOM = re.compile(r"calendar_\d+")
_SKIPPED_KINDS = frozenset({EntryActionKind.SKIP})


def entry_options(portal: PortalConfig) -> EntryOptions:
    config = portal.mirror.entries
    return EntryOptions(
        privacy=Privacy(config.privacy),
        attendees=AttendeeMode(config.attendees),
        reminders=config.reminders,
        link_back=config.link_back,
        portal_address=f"https://{portal.domain}",
    )


def mirrored_calendars(session: Session, portal_key: str) -> dict[str, str]:
    """Section id → Google calendar id, for every section whose calendar is in place."""
    rows = session.exec(
        select(CalendarMapping).where(
            CalendarMapping.portal_key == portal_key,
            CalendarMapping.state == MappingState.ACTIVE,
            col(CalendarMapping.google_calendar_id).is_not(None),
        )
    ).all()
    return {row.section_id: str(row.google_calendar_id) for row in rows}


def entry_scope(
    session: Session,
    portal: PortalConfig,
    *,
    rooms: dict[str, str] | None = None,
    names: dict[str, str] | None = None,
) -> EntryScope:
    config = portal.mirror.entries
    return EntryScope(
        portal_key=portal.key,
        now=datetime.now(UTC),
        calendars=mirrored_calendars(session, portal.key),
        options=entry_options(portal),
        rooms=rooms or {},
        names=names or {},
        past_days=config.past_days,
        future_days=config.future_days,
    )


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
        self.overrides: dict[str, set[date]] = {
            entry.id: set(occurrence_days(session, portal.key, entry))
            for entry in entries.values()
            if entry.is_series
        }
        for entry in entries.values():  # this step's occurrences count before they are applied
            if entry.is_occurrence and entry.series_id in self.overrides and entry.original_date:
                self.overrides[entry.series_id].add(entry.original_date)
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
        wanted = list(dict.fromkeys(ids))
        series = [
            entry.series_id
            for entry_id in wanted
            if (entry := self.entries.get(entry_id)) is not None
            and entry.is_occurrence
            and entry.series_id is not None
        ]
        first = [i for i in dict.fromkeys([*series, *wanted]) if self._is_series(i)]
        return [*first, *(i for i in wanted if i not in first)]

    def _is_series(self, entry_id: str) -> bool:
        entry = self.entries.get(entry_id)
        return entry is not None and entry.is_series

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
    with Session(lease.engine) as session:
        state = session.get(PortalState, portal.key)
        known = state.entry_date_format if state is not None else None
    date_format = DateFormat(known) if known else None
    reads = read_entries(clients.bitrix, ids)
    for entry_id in deleted & set(reads.refused):
        del reads.refused[entry_id]
        reads.gone.add(entry_id)
    entries, malformed = _parse(reads.found.values(), date_format)
    series_ids = sorted(
        {
            entry.series_id
            for entry in entries.values()
            if entry.is_occurrence and entry.series_id and entry.series_id not in entries
        }
    )
    if series_ids:
        more = read_entries(clients.bitrix, series_ids)
        found, _ = _parse(more.found.values(), date_format)
        entries.update(found)
    _learn_date_format(lease, portal.key, known, entries.values())
    rooms = room_names(clients.bitrix) if _books_rooms(entries.values()) else {}
    names: dict[str, str] = {}
    if portal.mirror.entries.attendees == "names":
        names = user_names(clients.bitrix, _attendee_ids(entries.values()))
    with Session(lease.engine) as session:
        scope = entry_scope(session, portal, rooms=rooms, names=names)
        return _Step(portal, reads, entries, malformed, scope, session)


def _parse(
    rows: Iterable[dict[str, object]], date_format: DateFormat | None
) -> tuple[dict[str, Entry], dict[str, str]]:
    entries: dict[str, Entry] = {}
    malformed: dict[str, str] = {}
    for row in rows:
        try:
            entry = parse_entry(row, date_format)
        except MalformedEntry as exc:
            malformed[exc.entry_id] = str(exc)
            continue
        entries[entry.id] = entry
    return entries, malformed


def _learn_date_format(
    lease: Lease, portal_key: str, known: str | None, entries: Iterable[Entry]
) -> None:
    """Remember the portal's date format once an entry has told it (for ambiguous ones)."""
    told = next((e.date_format for e in entries if e.date_format is not None), None)
    if told is None or told.value == known:
        return
    with fenced(lease) as session:
        state = session.get(PortalState, portal_key)
        if state is not None:
            state.entry_date_format = told.value
            session.add(state)


def _books_rooms(entries: Iterable[Entry]) -> bool:
    return any(_ROOM.match(entry.location) for entry in entries)


def _attendee_ids(entries: Iterable[Entry]) -> list[str]:
    return sorted({a.user_id for entry in entries for a in entry.attendees if a.user_id})


def _settle_one(lease: Lease, clients: PortalClients, step: _Step, entry_id: str) -> Settled:
    if entry_id in step.reads.refused:
        reason = step.reads.refused[entry_id]
        return Settled(InboxState.SKIPPED, f"Bitrix24 did not show the entry: {reason}")
    if entry_id in step.malformed:
        return Settled(
            InboxState.PARKED, f"the entry cannot be mirrored: {step.malformed[entry_id]}"
        )
    action = step.action(entry_id)
    if action.kind in _SKIPPED_KINDS:
        state = InboxState.DONE if action.reason == "unchanged" else InboxState.SKIPPED
        return Settled(state, action.describe(step.portal.key))
    entry = step.entries.get(entry_id)
    try:
        outcome = apply_entry(lease, clients.events, action, entry.version if entry else None)
    except (GoogleError, SeriesNotMirrored) as exc:
        return Settled(None, str(exc), exc)
    return Settled(InboxState.DONE, str(outcome))


def _timed(settled: Settled, started: float) -> Settled:
    return Settled(
        settled.state,
        settled.outcome,
        settled.error,
        settled.action,
        (time.monotonic() - started) * 1000,
    )
