"""A Bitrix24 calendar entry as plain, typed values (what `entries.parse_entry` reads from an
answer); no I/O. Times are UTC instants; an all-day entry's days are UTC midnights (see
`entries.py` for why)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from bridge.locale_dates import DateFormat


class MalformedEntry(ValueError):
    """The answer cannot be read as an entry; `field` names the part that is wrong."""

    def __init__(self, entry_id: str, field: str, problem: str) -> None:
        super().__init__(f"entry {entry_id or '?'}: {field}: {problem}")
        self.entry_id = entry_id
        self.field = field
        self.problem = problem


class AmbiguousDateFormat(MalformedEntry):
    """A date-only string reads as two different dates (`12/11/2024`: m/d/Y or d/m/Y) and nothing
    in the entry tells which: the caller passes the portal's format, learned from other entries."""


class Frequency(StrEnum):
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    YEARLY = "YEARLY"


class Weekday(StrEnum):
    """In the order RRULE lines list them (Monday first)."""

    MO = "MO"
    TU = "TU"
    WE = "WE"
    TH = "TH"
    FR = "FR"
    SA = "SA"
    SU = "SU"


class Accessibility(StrEnum):
    BUSY = "busy"
    FREE = "free"
    QUEST = "quest"  # tentative
    ABSENT = "absent"


@dataclass(frozen=True)
class Recurrence:
    frequency: Frequency
    interval: int = 1
    weekdays: tuple[Weekday, ...] = ()  # Monday first, no repeats
    count: int | None = None
    until: date | None = None  # the last day an occurrence may fall on, inclusive


@dataclass(frozen=True)
class Attendee:
    user_id: str
    status: str = ""  # Y accepted, N declined, Q invited, H host (ATTENDEE_LIST)


@dataclass(frozen=True)
class Entry:
    id: str
    section_id: str
    cal_type: str
    owner_id: str
    name: str
    start: datetime  # UTC; all-day: the first day at 00:00 UTC
    end: datetime  # UTC; all-day: the last day (inclusive) at 00:00 UTC
    zone_from: str
    zone_to: str
    all_day: bool = False
    description: str = ""
    location: str = ""
    parent_id: str = ""
    recurrence: Recurrence | None = None
    exdates: tuple[date, ...] = ()  # sorted, no repeats
    series_id: str | None = None  # an occurrence edited on its own: its series (RECURRENCE_ID)
    original_date: date | None = None  # …: the day of the occurrence it replaces
    split_from: str | None = None  # a "this and following" series: the series it was cut from
    private: bool = False
    accessibility: Accessibility = Accessibility.BUSY
    colour: str = ""  # "#rrggbb" or ""
    reminders: tuple[int, ...] = ()  # minutes before the start, ascending
    attendees: tuple[Attendee, ...] = ()
    meeting_host: str = ""
    host_name: str = ""
    is_meeting: bool = False
    g_event_id: str = ""
    event_type: str = ""
    version: str = ""
    deleted: bool = False
    date_format: DateFormat | None = None  # the portal's format, when this entry tells it

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return self.end.date()

    @property
    def is_series(self) -> bool:
        return self.recurrence is not None

    @property
    def is_occurrence(self) -> bool:
        """An occurrence of a series edited on its own: a separate entry without a rule."""
        return self.series_id is not None and self.recurrence is None

    @property
    def synced_from_google(self) -> bool:
        return bool(self.g_event_id)
