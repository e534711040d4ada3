"""Calendar entries of the Bitrix24 emulator: typed storage (by id and by section), recurrence and
the series edits.

Entries keep instants, dates and zones; `entry_view.py` renders them in the portal's locale at the
edge. Field meanings follow `api-reference/calendar/_includes/calendar_event_fields.md`; the
series edits ("only this one", "this and following", a cancelled occurrence) follow the shared
design of issue 13 and the `RECURRENCE_ID` / `RELATIONS` fields of that page. Functions here never
deliver events: they return the `Change`s a caller turns into ONCALENDARENTRY* deliveries.
Knobs per portal (`PATCH /_control/portals/{member_id}`): `locale`, `expand_recurrence`,
`missing_entry` (what `calendar.event.getbyid` answers for an unknown or deleted id).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import (
    DAILY,
    FR,
    MO,
    MONTHLY,
    SA,
    SU,
    TH,
    TU,
    WE,
    WEEKLY,
    YEARLY,
    rrule,
    weekday,
)

LOCALES = ("en", "de", "ru", "br")
MISSING_ENTRY = ("access_denied", "null")
FREQUENCIES: dict[str, Literal[0, 1, 2, 3, 4, 5, 6]] = {
    "DAILY": DAILY,
    "WEEKLY": WEEKLY,
    "MONTHLY": MONTHLY,
    "YEARLY": YEARLY,
}
WEEKDAYS: dict[str, weekday] = {
    "MO": MO, "TU": TU, "WE": WE, "TH": TH, "FR": FR, "SA": SA, "SU": SU,
}  # fmt: skip
Change = tuple[str, int]  # ("ADD" | "UPDATE" | "DELETE", entry id): one ONCALENDARENTRY* event


class EntryError(ValueError):
    """A change the emulator refuses (not an occurrence of the series, a bad field)."""


@dataclass(frozen=True)
class Timed:
    start: datetime  # aware instants
    end: datetime
    zone_from: ZoneInfo
    zone_to: ZoneInfo


@dataclass(frozen=True)
class AllDay:
    first: date
    last: date  # inclusive, as Bitrix24 writes DATE_TO (calendar-resource-booking-list.md)
    zone: ZoneInfo


When = Timed | AllDay


@dataclass(frozen=True)
class Rule:
    freq: str
    interval: int = 1
    byday: tuple[str, ...] = ()
    count: int | None = None
    until: date | None = None  # the last possible occurrence day, inclusive


@dataclass
class Entry:
    id: int
    section_id: int
    name: str
    when: When
    created_by: int
    description: str = ""
    rule: Rule | None = None
    exdates: list[date] = field(default_factory=list)
    private: bool = False
    accessibility: str = "busy"
    importance: str = "normal"
    color: str = ""
    location: str = ""
    remind: list[dict[str, Any]] = field(default_factory=list)
    attendees: list[int] = field(default_factory=list)
    g_event_id: str = ""
    event_type: str | None = None
    recurrence_id: int | None = None  # the series this edited occurrence was cut from
    original_recursion_id: int | None = None  # the series a "this and following" split left
    original_start: datetime | None = None  # the edited occurrence's start, in the series zone
    original_day: date | None = None  # the edited occurrence's original date (COMMENT_XML_ID)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1
    deleted: bool = False


# The attributes a control body or REST call may set with `apply`.
SETTABLE = frozenset(
    {
        "section_id", "name", "when", "description", "rule", "exdates", "private",
        "accessibility", "importance", "color", "location", "remind", "attendees",
        "g_event_id", "event_type", "created_by",
    }
)  # fmt: skip


@dataclass
class EntryBook:
    entries: dict[int, Entry] = field(default_factory=dict)
    # Entries live in their own table (b_calendar_event), so their ids are a sequence of their
    # own and may equal a section's id [inferred].
    next_id: int = 1
    locale: str = "en"
    expand_recurrence: bool = True
    missing_entry: str = "access_denied"

    # section id → its entries (deleted ones too) by id, so `calendar.event.get` reads only the
    # sections it names; kept by `create` and `update`, the only places an entry is filed.
    by_section: dict[int, dict[int, Entry]] = field(default_factory=dict)

    def live(self, entry_id: int) -> Entry | None:
        entry = self.entries.get(entry_id)
        return None if entry is None or entry.deleted else entry

    def in_section(self, section_id: int) -> list[Entry]:
        """The section's entries, deleted ones too."""
        return list(self.by_section.get(section_id, {}).values())

    def file(self, entry: Entry, *, moved_from: int | None = None) -> None:
        if moved_from is not None:
            self.by_section.get(moved_from, {}).pop(entry.id, None)
        self.entries[entry.id] = entry
        self.by_section.setdefault(entry.section_id, {})[entry.id] = entry


def configure(book: EntryBook, body: Mapping[str, Any]) -> None:
    if "locale" in body:
        if body["locale"] not in LOCALES:
            raise ValueError(f"locale must be one of {list(LOCALES)}")
        book.locale = body["locale"]
    if "expand_recurrence" in body:
        if not isinstance(body["expand_recurrence"], bool):
            raise ValueError("expand_recurrence must be true or false")
        book.expand_recurrence = body["expand_recurrence"]
    if "missing_entry" in body:
        if body["missing_entry"] not in MISSING_ENTRY:
            raise ValueError(f"missing_entry must be one of {list(MISSING_ENTRY)}")
        book.missing_entry = body["missing_entry"]


def view(book: EntryBook) -> dict[str, Any]:
    return {
        "locale": book.locale,
        "expand_recurrence": book.expand_recurrence,
        "missing_entry": book.missing_entry,
    }


# changes


def create(book: EntryBook, attrs: Mapping[str, Any]) -> Entry:
    for name in ("section_id", "name", "when", "created_by"):
        if name not in attrs:
            raise EntryError(f"{name} is required")
    entry = Entry(
        id=book.next_id,
        section_id=attrs["section_id"],
        name=attrs["name"],
        when=attrs["when"],
        created_by=attrs["created_by"],
    )
    book.next_id += 1
    apply(entry, attrs)
    book.file(entry)
    return entry


def apply(entry: Entry, attrs: Mapping[str, Any]) -> None:
    unknown = set(attrs) - SETTABLE
    if unknown:
        raise EntryError(f"unknown entry fields: {sorted(unknown)}")
    for name, value in attrs.items():
        setattr(entry, name, value)


def update(book: EntryBook, entry: Entry, attrs: Mapping[str, Any]) -> list[Change]:
    section_id = entry.section_id
    apply(entry, attrs)
    if entry.section_id != section_id:
        book.file(entry, moved_from=section_id)
    _touch(entry)
    return [("UPDATE", entry.id)]


def delete(book: EntryBook, entry: Entry) -> list[Change]:
    """Deleting a series deletes its edited occurrences too [inferred]."""
    doomed = [entry] + [
        e for e in book.entries.values() if e.recurrence_id == entry.id and not e.deleted
    ]
    for each in doomed:
        each.deleted = True
        _touch(each)
    return [("DELETE", each.id) for each in doomed]


def cancel_occurrence(series: Entry, day: date) -> list[Change]:
    """The occurrence's date joins the series' EXDATE."""
    _occurrence(series, day)
    series.exdates = sorted({*series.exdates, day})
    _touch(series)
    return [("UPDATE", series.id)]


def edit_occurrence(
    book: EntryBook, series: Entry, day: date, attrs: Mapping[str, Any]
) -> tuple[Entry, list[Change]]:
    """ "Only this one": the date joins the series' EXDATE and a new single entry carries
    `RECURRENCE_ID` and `RELATIONS.COMMENT_XML_ID` (calendar_event_fields.md)."""
    original = _occurrence(series, day)
    series.exdates = sorted({*series.exdates, day})
    _touch(series)
    copy = _copy_attrs(series)
    copy.update({"when": original, "rule": None, "exdates": [], **attrs})
    single = create(book, copy)
    single.recurrence_id = series.id
    single.original_day = day
    single.original_start = _start_wall(original)
    return single, [("UPDATE", series.id), ("ADD", single.id)]


def split_series(
    book: EntryBook, series: Entry, day: date, attrs: Mapping[str, Any]
) -> tuple[Entry, list[Change]]:
    """ "This and following" from `day`: the series ends the day before (COUNT dropped); a new
    series starts at that occurrence with `RELATIONS.ORIGINAL_RECURSION_ID` (issue 13 design)."""
    if series.rule is None:
        raise EntryError("entry is not a recurring series")
    start = _occurrence(series, day, allow_excluded=True)
    rule = series.rule
    count = None
    if rule.count is not None:
        before = sum(1 for d, _ in _all_occurrences(series) if d < day)
        count = max(1, rule.count - before)
    series.rule = replace(rule, count=None, until=day - timedelta(days=1))
    kept = [d for d in series.exdates if d < day]
    moved = [d for d in series.exdates if d >= day]
    series.exdates = kept
    _touch(series)
    copy = _copy_attrs(series)
    copy.update({"when": start, "rule": replace(rule, count=count), "exdates": moved, **attrs})
    following = create(book, copy)
    following.original_recursion_id = series.id
    return following, [("UPDATE", series.id), ("ADD", following.id)]


def _touch(entry: Entry) -> None:
    entry.version += 1
    entry.modified = datetime.now(UTC)


def _copy_attrs(entry: Entry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in SETTABLE}


# recurrence


def occurrences(entry: Entry) -> Iterator[tuple[date, When]]:
    """The entry's occurrences in order, EXDATE left out; a single entry is its one occurrence.
    Expanded in the series zone's wall time, so a series keeps its local time across DST."""
    for day, when in _all_occurrences(entry):
        if day not in entry.exdates:
            yield day, when


def overlaps(when: When, first: date, last: date) -> bool:
    """Whether an occurrence meets the window of days `first`..`last` (both inclusive, UTC
    days [inferred]: `calendar.event.get` names only dates)."""
    if isinstance(when, AllDay):
        return when.first <= last and when.last >= first
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    return when.start < end and when.end > start


def start_day(when: When) -> date:
    return when.first if isinstance(when, AllDay) else when.start.astimezone(when.zone_from).date()


def _all_occurrences(entry: Entry) -> Iterator[tuple[date, When]]:
    when, rule = entry.when, entry.rule
    if rule is None:
        yield start_day(when), when
        return
    if isinstance(when, AllDay):
        length = when.last - when.first
        for wall in _rrule(rule, datetime.combine(when.first, time())):
            day = wall.date()
            yield day, replace(when, first=day, last=day + length)
        return
    zone, duration = when.zone_from, when.end - when.start
    for wall in _rrule(rule, when.start.astimezone(zone).replace(tzinfo=None)):
        start = wall.replace(tzinfo=zone).astimezone(UTC)
        yield wall.date(), replace(when, start=start, end=start + duration)


def _rrule(rule: Rule, dtstart: datetime) -> Iterator[datetime]:
    until = None if rule.until is None else datetime.combine(rule.until, time.max)
    days = [WEEKDAYS[code] for code in rule.byday] or None
    yield from rrule(
        FREQUENCIES[rule.freq],
        dtstart=dtstart,
        interval=rule.interval,
        count=rule.count,
        until=until,
        byweekday=days,
    )


def _occurrence(series: Entry, day: date, *, allow_excluded: bool = False) -> When:
    if series.rule is None:
        raise EntryError("entry is not a recurring series")
    if day in series.exdates and not allow_excluded:
        raise EntryError(f"{day} is already excluded from the series")
    for found, when in _all_occurrences(series):
        if found == day:
            return when
        if found > day:
            break
    raise EntryError(f"the series has no occurrence on {day}")


def _start_wall(when: When) -> datetime:
    """An occurrence's start, aware in the series' zone (ORIGINAL_DATE_FROM is shown in it)."""
    if isinstance(when, AllDay):
        return datetime.combine(when.first, time(), when.zone)
    return when.start.astimezone(when.zone_from)
