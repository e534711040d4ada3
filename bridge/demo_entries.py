"""The demo's entries: the portal adds a meeting room, then a meeting, an all-day holiday, a weekly
series with one occurrence cancelled and one moved, and a meeting that books the room; each is
then printed as Google shows it. Days count from today, so the demo never goes stale."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, select

from bridge.config import PortalConfig
from bridge.google_calendar import GoogleCalendarGateway
from bridge.harness import Sandbox
from bridge.models import EntryMapping
from bridge.sandbox.bitrix import BitrixControl

ZONE = "Europe/Berlin"  # the entries' zone, and the demo portal's calendars'
ROOM = "Kilimanjaro"
Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoEntry:
    """An entry the demo made in Bitrix24, and what happened to it there that Google must show."""

    entry_id: str
    story: str = ""
    room: str = ""  # the meeting room it books, whose own calendar shows the booking too


def today() -> date:
    return datetime.now(ZoneInfo(ZONE)).date()


def add_room(bitrix: BitrixControl, member_id: str) -> str:
    """A meeting room (a section of type `location`: the portal mirrors rooms too)."""
    return str(bitrix.add_room(member_id, ROOM)["ID"])


def add_entries(
    bitrix: BitrixControl, member_id: str, *, holidays: str, team: str, room: str
) -> list[DemoEntry]:
    """The four entries, in the order they are printed; `holidays`, `team` and `room` are
    section ids."""
    day = today()

    def add(section: str, name: str, start: str, end: str, **fields: Any) -> str:
        return str(
            bitrix.add_entry(member_id, section, name, start, end, zone=ZONE, **fields)["ID"]
        )

    meeting_day, visit_day = day + timedelta(days=2), day + timedelta(days=4)
    meeting = add(team, "Pipeline review", _at(meeting_day, "10:00"), _at(meeting_day, "11:00"))
    in_three_weeks = day + timedelta(days=21)
    holiday = str(in_three_weeks + timedelta(days=(4 - in_three_weeks.weekday()) % 7))  # a Friday
    founders_day = add(holidays, "Founders' Day", holiday, holiday)  # one day, all day
    first = day + timedelta(days=3)
    mondays = [first + timedelta(days=(7 - first.weekday()) % 7, weeks=n) for n in range(4)]
    series = add(
        team,
        "Team stand-up",
        _at(mondays[0], "09:00"),
        _at(mondays[0], "09:15"),
        rrule={"FREQ": "WEEKLY", "COUNT": 4, "BYDAY": ["MO"]},
    )
    bitrix.cancel_occurrence(member_id, series, str(mondays[1]))
    bitrix.edit_occurrence(
        member_id,
        series,
        str(mondays[2]),
        start=_at(mondays[2], "11:00"),
        end=_at(mondays[2], "11:30"),
        zone=ZONE,
    )
    booking = add(
        team, "Customer visit", _at(visit_day, "14:00"), _at(visit_day, "15:30"), room=room
    )
    return [
        DemoEntry(meeting),
        DemoEntry(founders_day),
        DemoEntry(
            series,
            f"in Bitrix24: {mondays[1]:%a %Y-%m-%d} cancelled, "
            f"{mondays[2]:%a %Y-%m-%d} moved to 11:00",
        ),
        DemoEntry(booking, f"in Bitrix24: books the meeting room {ROOM}", room=ROOM),
    ]


def print_entries(
    sandbox: Sandbox, engine: Engine, portal: PortalConfig, entries: list[DemoEntry], say: Say
) -> None:
    with Session(engine) as session:
        mappings = {
            m.entry_id: m
            for m in session.exec(select(EntryMapping).where(EntryMapping.portal_key == portal.key))
        }
    calendars = sandbox.google.calendars()
    summaries = {c["id"]: c.get("summary", "") for c in calendars}
    google = GoogleCalendarGateway(portal.google)
    say(f"\nEntries as Google shows them ({len(entries)}):")
    for entry in entries:
        mapping = mappings.get(entry.entry_id)
        if mapping is None:
            say(f"  entry {entry.entry_id}: not mirrored")
            continue
        calendar_id = mapping.google_calendar_id
        found = [
            e for e in sandbox.google.events(calendar_id) if e["id"] == mapping.google_event_id
        ]
        if not found:
            say(f"  entry {entry.entry_id}: no event {mapping.google_event_id} in Google")
            continue
        event = found[0]
        say(f"  {event.get('summary', '')}  (calendar {summaries.get(calendar_id, calendar_id)})")
        _field(say, "when", [_when(event)])
        _field(say, "repeats", list(event.get("recurrence", [])))
        if event.get("recurrence"):
            answer = (
                google.service().events().instances(calendarId=calendar_id, eventId=event["id"])
            )
            _field(say, "instances", [_instance(i) for i in answer.execute().get("items", [])])
        _field(say, "where", [event["location"]] if event.get("location") else [])
        _field(say, "note", [entry.story] if entry.story else [])
        if entry.room:
            _field(say, "booked", _bookings(sandbox, calendars, entry.room))


def _bookings(sandbox: Sandbox, calendars: list[dict[str, Any]], room: str) -> list[str]:
    """What the room's own calendar shows."""
    return [
        f"calendar {room}: {event.get('summary', '')}, {_when(event)}"
        for calendar in calendars
        if calendar.get("summary") == room
        for event in sandbox.google.events(calendar["id"])
    ]


def _field(say: Say, label: str, lines: list[str]) -> None:
    for n, line in enumerate(lines):
        say(f"    {label if n == 0 else '':<10} {line}")


def _when(event: dict[str, Any]) -> str:
    start, end = event["start"], event["end"]
    if "date" in start:
        first, after = date.fromisoformat(start["date"]), date.fromisoformat(end["date"])
        last = after - timedelta(days=1)
        days = f"{first:%a %Y-%m-%d}" + ("" if last == first else f" to {last:%a %Y-%m-%d}")
        return f"{days}, all day (start.date {first}, end.date {after}: Google's end is exclusive)"
    return _span(start, end)


def _instance(instance: dict[str, Any]) -> str:
    shown = _span(instance["start"], instance["end"])
    original = instance.get("originalStartTime", {})
    if original.get("dateTime") and _local(original) != _local(instance["start"]):
        shown += f"  (moved from {_local(original):%H:%M})"
    return shown


def _span(start: dict[str, Any], end: dict[str, Any]) -> str:
    begins, ends = _local(start), _local(end)
    until = f"{ends:%H:%M}" if ends.date() == begins.date() else f"{ends:%a %Y-%m-%d %H:%M}"
    return f"{begins:%a %Y-%m-%d %H:%M}-{until} {start.get('timeZone', '')}".rstrip()


def _local(moment: dict[str, Any]) -> datetime:
    """A timed start or end in its own zone, as Google's web page shows it."""
    instant = datetime.fromisoformat(moment["dateTime"])
    return instant.astimezone(ZoneInfo(moment["timeZone"])) if moment.get("timeZone") else instant


def _at(day: date, clock: str) -> str:
    return f"{day.isoformat()}T{clock}:00"
