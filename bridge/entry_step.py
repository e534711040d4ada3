"""What the two entry paths share (the event path, `entry_sync.py`, and the reconciliation,
`entry_reconcile.py`): read rows parsed with the portal's learned date format, the series an edited
occurrence needs, the portal's scope with room and attendee names, the days of a series that have
an override of their own, and series planned before their occurrences.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime

from sqlmodel import Session, col, select

from bridge.clients import PortalClients
from bridge.config import PortalConfig
from bridge.entries import Entry, MalformedEntry, parse_entry
from bridge.entry_mappings import Source, occurrence_days
from bridge.entry_plan import EntryScope
from bridge.entry_reads import read_entries, room_names, user_names
from bridge.event_body import AttendeeMode, EntryOptions, Privacy
from bridge.lease import Lease, fenced_state
from bridge.locale_dates import DateFormat
from bridge.models import CalendarMapping, MappingState, PortalState

_ROOM = re.compile(r"calendar_\d+")


def entry_options(portal: PortalConfig) -> EntryOptions:
    config = portal.mirror.entries
    return EntryOptions(
        privacy=Privacy(config.privacy),
        attendees=AttendeeMode(config.attendees),
        reminders=config.reminders,
        link_back=config.link_back,
        portal_address=f"https://{portal.domain}",
    )


def mirrored_sections(session: Session, portal_key: str) -> list[CalendarMapping]:
    """The section mappings whose calendar is in place: where entries can go."""
    return list(
        session.exec(
            select(CalendarMapping).where(
                CalendarMapping.portal_key == portal_key,
                CalendarMapping.state == MappingState.ACTIVE,
                col(CalendarMapping.google_calendar_id).is_not(None),
            )
        ).all()
    )


def mirrored_calendars(session: Session, portal_key: str) -> dict[str, str]:
    """Section id → Google calendar id, for every section whose calendar is in place."""
    rows = mirrored_sections(session, portal_key)
    return {row.section_id: str(row.google_calendar_id) for row in rows}


def entry_scope(
    session: Session,
    portal: PortalConfig,
    *,
    rooms: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
) -> EntryScope:
    config = portal.mirror.entries
    return EntryScope(
        portal_key=portal.key,
        now=datetime.now(UTC),
        calendars=mirrored_calendars(session, portal.key),
        options=entry_options(portal),
        rooms=dict(rooms or {}),
        names=dict(names or {}),
        past_days=config.past_days,
        future_days=config.future_days,
    )


def known_date_format(lease: Lease, portal_key: str) -> str | None:
    """The date format an earlier step learned from the portal's entries (None: not yet)."""
    with Session(lease.engine) as session:
        state = session.get(PortalState, portal_key)
        return state.entry_date_format if state is not None else None


def parse_entries(
    rows: Iterable[Mapping[str, object]], known: str | None
) -> tuple[dict[str, Entry], dict[str, str]]:
    """The rows as entries by id, and the malformed ones' ids with the reason."""
    date_format = DateFormat(known) if known else None
    entries: dict[str, Entry] = {}
    malformed: dict[str, str] = {}
    for row in rows:
        try:
            entry = parse_entry(dict(row), date_format)
        except MalformedEntry as exc:
            malformed[exc.entry_id] = str(exc)
            continue
        entries[entry.id] = entry
    return entries, malformed


def add_series(clients: PortalClients, entries: dict[str, Entry], known: str | None) -> None:
    """Read the series of the edited occurrences among `entries` that are not there yet."""
    series_ids = sorted(
        {
            entry.series_id
            for entry in entries.values()
            if entry.is_occurrence and entry.series_id and entry.series_id not in entries
        }
    )
    if series_ids:
        found, _ = parse_entries(read_entries(clients.bitrix, series_ids).found.values(), known)
        entries.update(found)


def learn_date_format(lease: Lease, known: str | None, entries: Iterable[Entry]) -> str | None:
    """Remember the portal's date format once an entry has told it (for ambiguous ones); the
    format now known."""
    told = next((e.date_format for e in entries if e.date_format is not None), None)
    if told is None or told.value == known:
        return known
    with fenced_state(lease) as state:
        state.entry_date_format = told.value
    return told.value


def scope_for(
    lease: Lease, portal: PortalConfig, clients: PortalClients, entries: Collection[Entry]
) -> EntryScope:
    """The portal's scope, with the names of booked rooms and (`attendees: names`) attendees."""
    rooms = room_names(clients.bitrix) if any(_ROOM.match(e.location) for e in entries) else {}
    names: dict[str, str] = {}
    if portal.mirror.entries.attendees == "names":
        ids = sorted({a.user_id for entry in entries for a in entry.attendees if a.user_id})
        names = user_names(clients.bitrix, ids)
    with Session(lease.engine) as session:
        return entry_scope(session, portal, rooms=rooms, names=names)


def overridden_days(
    source: Source, portal_key: str, entries: Mapping[str, Entry]
) -> dict[str, set[date]]:
    """Per series among `entries`: the days with an override of their own, from the mappings and
    from the edited occurrences among `entries` (they count before they are applied)."""
    overrides = {
        entry.id: set(occurrence_days(source, portal_key, entry))
        for entry in entries.values()
        if entry.is_series
    }
    for entry in entries.values():
        if entry.is_occurrence and entry.series_id in overrides and entry.original_date:
            overrides[entry.series_id].add(entry.original_date)
    return overrides


def series_first(ids: Sequence[str], entries: Mapping[str, Entry]) -> list[str]:
    """`ids` with the series first (a series an occurrence among them needs included), then the
    rest in order: an override is an instance of its series' event, which must exist first."""
    wanted = list(dict.fromkeys(ids))
    needed = [
        entry.series_id
        for entry_id in wanted
        if (entry := entries.get(entry_id)) is not None
        and entry.is_occurrence
        and entry.series_id is not None
    ]
    first = [
        i
        for i in dict.fromkeys([*needed, *wanted])
        if (entry := entries.get(i)) is not None and entry.is_series
    ]
    return [*first, *(i for i in wanted if i not in first)]
