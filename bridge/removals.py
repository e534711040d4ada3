"""The mass-delete guard over time: calendars removed per portal, counted in the database.

Every calendar the bridge deletes or archives for a retired section leaves a `CalendarRemoval`
row, written in the same fenced transaction as the mapping change. Before a run (the worker's
event path or a reconciliation, `bridge sync` included) removes anything, `guard_removals` adds
what the portal already lost within `delete_guard.window_hours` to what the run plans, so
removals spread over many passes, workers and commands add up. The rule itself is
`bridge.mirror.guard_deletions`, which is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, func, select

from bridge.config import PortalConfig
from bridge.mirror import Action, guard_deletions
from bridge.models import CalendarMapping, CalendarRemoval, MappingState, utcnow


def guard_removals(engine: Engine, portal: PortalConfig, actions: Sequence[Action]) -> str | None:
    """Why the planned removals must be held back, or None: the one place that counts."""
    if not any(action.removes_calendar for action in actions):
        return None
    window = timedelta(hours=portal.mirror.delete_guard.window_hours)
    with Session(engine) as session:
        mapped = mapped_calendars(session, portal.key)
        removed = session.exec(
            select(func.count()).where(
                CalendarRemoval.portal_key == portal.key,
                col(CalendarRemoval.removed_at) > utcnow() - window,
            )
        ).one()
    return guard_deletions(portal, actions, mapped, int(removed))


def mapped_calendars(session: Session, portal_key: str) -> int:
    """The portal's calendars that a retirement could still remove: active, with a calendar."""
    count = session.exec(
        select(func.count()).where(
            CalendarMapping.portal_key == portal_key,
            CalendarMapping.state == MappingState.ACTIVE,
            col(CalendarMapping.google_calendar_id).is_not(None),
        )
    ).one()
    return int(count)


def record_removal(session: Session, portal: PortalConfig, section_id: str) -> None:
    """Count one removal (in the caller's fenced transaction) and drop rows past the window."""
    now = utcnow()
    window = timedelta(hours=portal.mirror.delete_guard.window_hours)
    session.execute(
        delete(CalendarRemoval).where(
            col(CalendarRemoval.portal_key) == portal.key,
            col(CalendarRemoval.removed_at) <= now - window,
        )
    )
    session.add(CalendarRemoval(portal_key=portal.key, section_id=section_id, removed_at=now))
