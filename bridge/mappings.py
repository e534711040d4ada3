"""A section's row in the mapping table: found or created, changed under the lease, and turned
into the plain value the planner reads (`mapped_calendar`). `apply.py` records every step here."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from bridge.calendar_state import CalendarState
from bridge.lease import Lease, fenced
from bridge.mirror import MappedCalendar
from bridge.models import CalendarMapping, utcnow
from bridge.selection import Section


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


def mapping_for(lease: Lease, section: Section) -> tuple[CalendarMapping, bool]:
    """The section's mapping row, and whether this call created it (committed before any insert)."""
    query = select(CalendarMapping).where(
        CalendarMapping.portal_key == lease.portal_key, CalendarMapping.section_id == section.id
    )
    with fenced(lease) as session:
        existing = session.exec(query).first()
        if existing is not None:
            return existing, False
        mapping = CalendarMapping(
            portal_key=lease.portal_key,
            section_id=section.id,
            section_type=section.type,
            owner_id=section.owner_id,
            nonce=uuid.uuid4().hex,
        )
        session.add(mapping)
    return mapping, True


def mapping_row(session: Session, portal_key: str, section_id: str) -> CalendarMapping | None:
    query = select(CalendarMapping).where(
        CalendarMapping.portal_key == portal_key, CalendarMapping.section_id == section_id
    )
    return session.exec(query).first()


def save_mapping(lease: Lease, mapping: CalendarMapping, **values: object) -> None:
    with fenced(lease) as session:
        update_mapping(session, mapping, **values)


def update_mapping(session: Session, mapping: CalendarMapping, **values: object) -> None:
    row = session.get(CalendarMapping, mapping.id)
    assert row is not None
    for name, value in values.items():
        setattr(row, name, value)
        setattr(mapping, name, value)
    row.updated_at = utcnow()
    session.add(row)
