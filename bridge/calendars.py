"""Plain values about mirrored calendars, shared by the planner, the Google gateway and storage.

No I/O and no database row here: `mirror.py` plans from these values, `google_calendar.py` returns
`CalendarListEntry`, and `models.py` stores `MappingState` in the mapping table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MappingState(StrEnum):
    CREATING = "creating"  # committed before calendars.insert; the marker carries `nonce`
    ACTIVE = "active"
    ARCHIVED = "archived"  # the section is gone; the calendar stays, renamed (on_delete: archive)


@dataclass(frozen=True)
class CalendarListEntry:
    """A calendar as its owner's calendar list shows it."""

    id: str
    summary: str
    description: str
    time_zone: str
    background: str
    foreground: str
    hidden: bool
