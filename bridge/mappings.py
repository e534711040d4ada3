"""A section's row in the mapping table: read, changed in memory as `apply.py`'s steps go
(`MappingRecord`), written under the lease only where it must be durable, and turned into the
plain value the planner reads (`mapped_calendar`).

A created calendar costs two transactions: the row in state `creating` (with its nonce) and the
creation's reservation before `calendars.insert`; the calendar's id, what was applied and the
event path's inbox rows after the last Google call. Anything in between lives in memory: a crash
there leaves the row `creating`, and the next attempt adopts the calendar by its marker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, col, select

from bridge.calendar_state import CalendarState
from bridge.lease import Lease, fenced
from bridge.mirror import MappedCalendar
from bridge.models import CalendarMapping, utcnow
from bridge.selection import Section

# What `MappingRecord` writes: the fields a step may change.
_CHANGEABLE = ("state", "nonce", "google_calendar_id", "applied")

Writes = Callable[[Session], None]


def mapped_calendar(row: CalendarMapping) -> MappedCalendar:
    """The plain value the planner reads for a mapping row."""
    return MappedCalendar(
        section_id=row.section_id,
        state=row.state,
        nonce=row.nonce,
        calendar_id=row.google_calendar_id,
        applied=CalendarState.from_json(row.applied),
        section_type=row.section_type,
        owner_id=row.owner_id,
    )


@dataclass
class MappingRecord:
    """A mapping row as one action changes it: `set` changes it in memory, `save` writes what
    the database does not hold yet (with other writes that belong in the same transaction)."""

    row: CalendarMapping
    stored: tuple[object, ...] | None  # the changeable fields as the database holds them

    @property
    def fresh(self) -> bool:
        """Not in the database yet."""
        return self.stored is None

    @property
    def unsaved(self) -> bool:
        return self.stored != _changeable(self.row)

    def set(self, **values: object) -> None:
        for name, value in values.items():
            setattr(self.row, name, value)

    def save(self, lease: Lease, also: Writes | None = None) -> None:
        """Write the row (if anything changed) and `also`, in one transaction under the lease."""
        if not self.unsaved and also is None:
            return
        with fenced(lease) as session:
            if self.unsaved:
                _write(session, self.row, fresh=self.fresh)
            if also is not None:
                also(session)
        self.stored = _changeable(self.row)


def mapping_record(lease: Lease, section: Section, planned: MappedCalendar | None) -> MappingRecord:
    """The section's mapping, or a new one in state `creating` with a fresh nonce (not written:
    the first `save` does that, before any insert). `planned` is the mapping the action was
    planned with: None means the plan, made under this lease, saw no row, and only the lease's
    holder writes them, so there is none to read."""
    if planned is not None:
        query = select(CalendarMapping).where(
            CalendarMapping.portal_key == lease.portal_key,
            CalendarMapping.section_id == section.id,
        )
        with Session(lease.engine, expire_on_commit=False) as session:
            existing = session.exec(query).first()
        if existing is not None:
            return MappingRecord(existing, _changeable(existing))
    mapping = CalendarMapping(
        portal_key=lease.portal_key,
        section_id=section.id,
        section_type=section.type,
        owner_id=section.owner_id,
        nonce=uuid.uuid4().hex,
    )
    return MappingRecord(mapping, None)


def mapping_row(session: Session, portal_key: str, section_id: str) -> CalendarMapping | None:
    query = select(CalendarMapping).where(
        CalendarMapping.portal_key == portal_key, CalendarMapping.section_id == section_id
    )
    return session.exec(query).first()


def update_mapping(session: Session, row: CalendarMapping, **values: object) -> None:
    """Change a row read in `session`."""
    for name, value in values.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.add(row)


def _write(session: Session, mapping: CalendarMapping, *, fresh: bool) -> None:
    connection = session.connection()
    if fresh:
        values = {name: getattr(mapping, name) for name in _INSERTED}
        mapping.id = connection.execute(_INSERT, values).scalar_one()
        return
    # Only this lease's holder changes or removes mapping rows: the row in memory is the row.
    mapping.updated_at = utcnow()
    values = {name: getattr(mapping, name) for name in _UPDATED}
    result = connection.execute(_UPDATE, {"mapping_id": mapping.id, **values})
    assert result.rowcount == 1


# Built once: building a statement costs more than running it (two writes per created calendar).
_INSERTED = tuple(c.name for c in CalendarMapping.__table__.columns if c.name != "id")  # type: ignore[attr-defined]
_INSERT = insert(CalendarMapping).returning(col(CalendarMapping.id))
_UPDATED = (*_CHANGEABLE, "updated_at")
_UPDATE = update(CalendarMapping).where(col(CalendarMapping.id) == bindparam("mapping_id"))


def _changeable(row: CalendarMapping) -> tuple[object, ...]:
    return tuple(getattr(row, name) for name in _CHANGEABLE)
