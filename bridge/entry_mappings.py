"""An entry's row in the entry mapping table: read in bulk, turned into the plain value the planner
reads (`mapped_entry`), and written under the lease once Google confirmed a write
(`record_applied`, `close_mappings`) or a section's calendar was retired (`close_section_mappings`,
from `apply.py`). `entry_apply.py` records every applied action here.

The row for (portal, entry) is created on the first apply and updated after that; the unique
constraint on (portal, entry) keeps one. A closed row keeps its calendar and event id: Google
keeps a deleted event as a cancelled one, which the planner revives in place.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from bridge.entries import Entry
from bridge.entry_plan import EntryMappingState, MappedEntry
from bridge.event_body import google_event_id, instance_day
from bridge.lease import Lease, fenced
from bridge.models import EntryMapping, EntryState, utcnow

_IN_LIMIT = 500  # ids per `IN (…)`: well inside every database's parameter limit

Source = Session | Lease  # a caller's session, or a lease to read with a session of our own


@dataclass(frozen=True)
class AppliedEvent:
    """What Google confirmed for an entry: where its event is and what it was set to."""

    entry_id: str
    section_id: str
    calendar_id: str
    event_id: str
    fingerprint: str  # EventBody.fingerprint() of the body written
    version: str | None = None  # the entry's VERSION it was written from


def mapped_entry(row: EntryMapping) -> MappedEntry:
    """The plain value the planner reads for a mapping row."""
    return MappedEntry(
        entry_id=row.entry_id,
        state=EntryMappingState(row.state.value),
        calendar_id=row.google_calendar_id,
        event_id=row.google_event_id,
        fingerprint=row.applied or "",
    )


def entry_mappings(
    source: Source, portal_key: str, entry_ids: Collection[str]
) -> dict[str, EntryMapping]:
    """The rows of these entries that exist, by entry id."""
    wanted = sorted(set(entry_ids))
    found: dict[str, EntryMapping] = {}
    with _reading(source) as session:
        for start in range(0, len(wanted), _IN_LIMIT):
            query = select(EntryMapping).where(
                EntryMapping.portal_key == portal_key,
                col(EntryMapping.entry_id).in_(wanted[start : start + _IN_LIMIT]),
            )
            found.update((row.entry_id, row) for row in session.exec(query))
    return found


def occurrence_days(source: Source, portal_key: str, series: Entry) -> frozenset[date]:
    """The days (in the series' zone) of the series' occurrences that have an active override of
    their own: the active rows whose event id is an instance id of the series' event."""
    prefix = google_event_id(portal_key, series.id) + "_"
    query = select(EntryMapping.google_event_id).where(
        EntryMapping.portal_key == portal_key,
        EntryMapping.state == EntryState.ACTIVE,
        col(EntryMapping.google_event_id).startswith(prefix, autoescape=True),
    )
    with _reading(source) as session:
        event_ids = list(session.exec(query))
    days = (instance_day(event_id, series) for event_id in event_ids)
    return frozenset(day for day in days if day is not None)


def record_applied(lease: Lease, *applied: AppliedEvent) -> None:
    """Active rows saying what Google now has, created where missing, in one transaction."""
    if not applied:
        return
    with fenced(lease) as session:
        rows = entry_mappings(session, lease.portal_key, [each.entry_id for each in applied])
        now = utcnow()
        for each in applied:
            row = rows.get(each.entry_id)
            if row is None:
                row = EntryMapping(
                    portal_key=lease.portal_key,
                    entry_id=each.entry_id,
                    section_id=each.section_id,
                    google_calendar_id=each.calendar_id,
                    google_event_id=each.event_id,
                )
                rows[each.entry_id] = row
            row.section_id = each.section_id
            row.google_calendar_id = each.calendar_id
            row.google_event_id = each.event_id
            row.state = EntryState.ACTIVE
            row.applied = each.fingerprint
            row.version = each.version
            row.updated_at = now
            session.add(row)


def close_mappings(lease: Lease, *entry_ids: str) -> None:
    """The entries' events are deleted in Google: their rows say so (no row: nothing to close)."""
    if not entry_ids:
        return
    with fenced(lease) as session:
        now = utcnow()
        for row in entry_mappings(session, lease.portal_key, entry_ids).values():
            row.state = EntryState.CLOSED
            row.applied = None
            row.updated_at = now
            session.add(row)


def close_section_mappings(session: Session, portal_key: str, section_id: str) -> int:
    """A section's calendar was retired (deleted, archived or kept unmapped): its entries' events
    went with it, or stay there, so their rows are closed (in the caller's fenced session).
    How many were."""
    rows = session.exec(
        select(EntryMapping).where(
            EntryMapping.portal_key == portal_key,
            EntryMapping.section_id == section_id,
            EntryMapping.state == EntryState.ACTIVE,
        )
    ).all()
    now = utcnow()
    for row in rows:
        row.state = EntryState.CLOSED
        row.applied = None
        row.updated_at = now
        session.add(row)
    return len(rows)


@contextmanager
def _reading(source: Source) -> Iterator[Session]:
    if isinstance(source, Session):
        yield source
        return
    with Session(source.engine) as session:
        yield session
