"""Entry fields, end to end over HTTP: what a user sees in Google for multi-day and all-day entries
across a daylight-saving change, series with COUNT, UNTIL and EXDATE (in every portal locale),
"this and following", deletes and revivals, and each `mirror.entries` option."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.event_body import google_event_id
from bridge.models import InboxState
from tests.e2e.conftest import Bridge
from tests.e2e.test_entries import (
    add_entry,
    at,
    entry_rows,
    event_of,
    events,
    instances,
    mirrored_section,
    settle,
    soon,
)

# A zone for each portal locale: where such a portal's people would be.
LOCALE_ZONES = {
    "en": "America/New_York",
    "de": "Europe/Berlin",
    "ru": "Europe/Moscow",
    "br": "America/Sao_Paulo",
}


def next_offset_change(zone: str) -> date:
    """The next day (a week ahead at least) on which `zone` changes its UTC offset."""
    tz = ZoneInfo(zone)
    day = datetime.now(UTC).date() + timedelta(days=7)
    for _ in range(366):
        noon_before = datetime.combine(day - timedelta(days=1), datetime.min.time(), tz)
        noon_after = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)
        if noon_before.utcoffset() != noon_after.utcoffset():
            return day
        day += timedelta(days=1)
    raise AssertionError(f"{zone} has no offset change within a year")


def next_day_of_year(month: int, day: int) -> date:
    """The next `month`/`day` at least a week ahead."""
    today = datetime.now(UTC).date()
    found = date(today.year, month, day)
    return found if found > today + timedelta(days=7) else date(today.year + 1, month, day)


def next_weekday(after: date, weekday: int) -> date:
    return after + timedelta(days=(weekday - after.weekday()) % 7)


def shown(bridge: Bridge, calendar_id: str, entry_id: str) -> list[tuple[str, str]]:
    """A series' occurrences as Google lists them: (start, summary), cancelled ones left out."""
    series_event = google_event_id(bridge.portal.key, entry_id)
    return [
        (_start_text(i["start"]), i["summary"])
        for i in instances(bridge, calendar_id, series_event)
        if i.get("status") != "cancelled"
    ]


def _start_text(start: dict[str, str]) -> str:
    return start["date"] if "date" in start else start["dateTime"][:16]


def all_done(bridge: Bridge) -> None:
    rows = entry_rows(bridge)
    assert rows and all(r.state == InboxState.DONE for r in rows), [
        (r.event, r.entry_id, r.state, r.outcome) for r in rows
    ]


def visible(bridge: Bridge, calendar_id: str) -> list[str]:
    """The summaries of the calendar's stored events a user sees (not cancelled)."""
    return sorted(e["summary"] for e in events(bridge, calendar_id))


# Times and days


def test_a_multi_day_timed_entry_keeps_both_ends_and_zones(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge,
        section_id,
        "Flight to Berlin",
        at(soon(12), "20:00"),
        at(soon(14), "09:30"),
        zone="America/Sao_Paulo",
        zone_to="Europe/Berlin",
    )

    settle(bridge)

    event = event_of(bridge, calendar_id, entry_id)
    assert event["start"]["timeZone"] == "America/Sao_Paulo"
    assert event["start"]["dateTime"].startswith(at(soon(12), "20:00"))
    assert event["end"]["timeZone"] == "Europe/Berlin"
    assert event["end"]["dateTime"].startswith(at(soon(14), "09:30"))


def test_a_multi_day_all_day_entry_across_a_dst_change_west_of_utc(bridge: Bridge) -> None:
    zone = "America/Los_Angeles"
    change = next_offset_change(zone)
    section_id, calendar_id = mirrored_section(bridge)
    first, last = change - timedelta(days=2), change + timedelta(days=1)
    entry_id = add_entry(bridge, section_id, "Trade fair", str(first), str(last), zone=zone)

    settle(bridge)

    event = event_of(bridge, calendar_id, entry_id)
    assert event["start"] == {"date": str(first)}
    assert event["end"] == {"date": str(last + timedelta(days=1))}  # exclusive


# Series


def test_a_series_with_count(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    first = soon(6)
    entry_id = add_entry(
        bridge,
        section_id,
        "Sprint check",
        at(first, "08:30"),
        at(first, "09:00"),
        zone="Asia/Kolkata",
        rrule={"FREQ": "DAILY", "INTERVAL": 2, "COUNT": 4},
    )

    settle(bridge)

    days = [first + timedelta(days=2 * n) for n in range(4)]
    assert shown(bridge, calendar_id, entry_id) == [
        (at(day, "08:30")[:16], "Sprint check") for day in days
    ]


def test_a_series_with_until_includes_its_last_day_in_the_evening_west_of_utc(
    bridge: Bridge,
) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    monday = next_weekday(soon(5), 0)
    until = monday + timedelta(days=10)  # the Thursday of the following week
    entry_id = add_entry(
        bridge,
        section_id,
        "Evening class",
        at(monday, "18:30"),  # 23:30 UTC or later: the next day in UTC
        at(monday, "20:00"),
        zone="America/New_York",
        rrule={"FREQ": "WEEKLY", "BYDAY": ["MO", "TH"], "UNTIL": str(until)},
    )

    settle(bridge)

    days = [monday, monday + timedelta(days=3), monday + timedelta(days=7), until]
    assert shown(bridge, calendar_id, entry_id) == [
        (at(day, "18:30")[:16], "Evening class") for day in days
    ]


@pytest.mark.parametrize(
    ("locale", "start_day"),
    [
        ("en", 10),
        ("en", 11),  # 11/11: only the am/pm of the times tells m/d/Y
        ("de", 10),
        ("ru", 10),
        ("br", 10),  # DATE_FROM 10/11 beside its timestamp tells d/m/Y
        ("br", 11),  # 11/11 tells nothing; EXDATE 12/11 is 12 November, not 11 December
    ],
)
def test_exdate_in_each_portal_locale(bridge: Bridge, locale: str, start_day: int) -> None:
    bridge.bitrix.set_locale(bridge.member_id, locale)
    zone = LOCALE_ZONES[locale]
    section_id, calendar_id = mirrored_section(bridge)
    first = next_day_of_year(11, start_day)
    skipped = date(first.year, 11, 12)
    entry_id = add_entry(
        bridge,
        section_id,
        "Daily",
        at(first, "09:00"),
        at(first, "09:30"),
        zone=zone,
        rrule={"FREQ": "DAILY", "COUNT": 5},
        exdates=[str(skipped)],
    )

    settle(bridge)

    all_done(bridge)
    days = [first + timedelta(days=n) for n in range(5)]
    assert shown(bridge, calendar_id, entry_id) == [
        (at(day, "09:00")[:16], "Daily") for day in days if day != skipped
    ]


def test_this_and_following_makes_two_series_that_do_not_overlap(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    first = next_weekday(soon(3), 2)  # a Wednesday
    series_id = add_entry(
        bridge,
        section_id,
        "Design review",
        at(first, "10:00"),
        at(first, "11:00"),
        zone="Europe/Berlin",
        rrule={"FREQ": "WEEKLY", "BYDAY": ["WE"], "COUNT": 6},
    )
    settle(bridge)
    wednesdays = [first + timedelta(weeks=n) for n in range(6)]
    split = bridge.bitrix.split_series(
        bridge.member_id,
        series_id,
        str(wednesdays[3]),
        start=at(wednesdays[3], "14:00"),
        end=at(wednesdays[3], "15:00"),
        name="Design review (afternoon)",
    )

    settle(bridge)

    all_done(bridge)
    assert shown(bridge, calendar_id, series_id) == [
        (at(day, "10:00")[:16], "Design review") for day in wednesdays[:3]
    ]
    assert shown(bridge, calendar_id, str(split["entry"]["ID"])) == [
        (at(day, "14:00")[:16], "Design review (afternoon)") for day in wednesdays[3:]
    ]


def test_an_edited_occurrence_then_deleted_stays_away(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    first = soon(8)
    series_id = add_entry(
        bridge,
        section_id,
        "Yoga",
        at(first, "07:00"),
        at(first, "08:00"),
        zone="Europe/Berlin",
        rrule={"FREQ": "DAILY", "COUNT": 3},
    )
    settle(bridge)
    second = first + timedelta(days=1)
    edited = bridge.bitrix.edit_occurrence(
        bridge.member_id,
        series_id,
        str(second),
        start=at(second, "18:00"),
        end=at(second, "19:00"),
        name="Yoga (evening)",
    )
    settle(bridge)
    assert [s for _, s in shown(bridge, calendar_id, series_id)] == [
        "Yoga",
        "Yoga (evening)",
        "Yoga",
    ]

    bridge.bitrix.delete_entry(bridge.member_id, edited["entry"]["ID"])
    settle(bridge)
    bridge.bitrix.update_entry(bridge.member_id, series_id, name="Morning yoga")
    settle(bridge)

    all_done(bridge)
    third = first + timedelta(days=2)
    assert shown(bridge, calendar_id, series_id) == [
        (at(first, "07:00")[:16], "Morning yoga"),
        (at(third, "07:00")[:16], "Morning yoga"),
    ]


def test_deleting_a_series_takes_its_overrides(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    first = soon(9)
    series_id = add_entry(
        bridge,
        section_id,
        "Standup",
        at(first, "09:00"),
        at(first, "09:15"),
        zone="Europe/Berlin",
        rrule={"FREQ": "DAILY", "COUNT": 3},
    )
    settle(bridge)
    second = first + timedelta(days=1)
    bridge.bitrix.edit_occurrence(
        bridge.member_id,
        series_id,
        str(second),
        name="Standup (long)",
        start=at(second, "09:00"),
        end=at(second, "10:00"),
    )
    settle(bridge)
    assert len(events(bridge, calendar_id)) == 2  # the series and its override

    bridge.bitrix.delete_entry(bridge.member_id, series_id)
    settle(bridge)

    all_done(bridge)
    assert events(bridge, calendar_id) == []
    assert {e["status"] for e in events(bridge, calendar_id, show_deleted=True)} == {"cancelled"}


# Deletes and revivals


def test_an_entry_deleted_and_a_new_one_in_its_place(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    old_id = add_entry(bridge, section_id, "Lunch", at(soon(11), "12:00"), at(soon(11), "13:00"))
    settle(bridge)
    bridge.bitrix.delete_entry(bridge.member_id, old_id)
    new_id = add_entry(
        bridge, section_id, "Lunch (team)", at(soon(11), "12:00"), at(soon(11), "13:00")
    )

    settle(bridge)

    all_done(bridge)
    assert visible(bridge, calendar_id) == ["Lunch (team)"]
    assert event_of(bridge, calendar_id, old_id)["status"] == "cancelled"
    new = event_of(bridge, calendar_id, new_id)
    assert new["status"] == "confirmed"
    assert new["start"]["dateTime"].startswith(at(soon(11), "12:00"))


def test_an_event_deleted_in_google_comes_back_when_the_entry_changes(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(bridge, section_id, "1:1", at(soon(13), "15:00"), at(soon(13), "15:30"))
    settle(bridge)
    event_id = google_event_id(bridge.portal.key, entry_id)
    bridge.google.delete_event(calendar_id, event_id)
    assert visible(bridge, calendar_id) == []

    bridge.bitrix.update_entry(bridge.member_id, entry_id, name="1:1 (moved)")
    settle(bridge)

    all_done(bridge)
    event = event_of(bridge, calendar_id, entry_id)
    assert (event["status"], event["summary"]) == ("confirmed", "1:1 (moved)")
    assert visible(bridge, calendar_id) == ["1:1 (moved)"]


# Options


def entries_bridge(make_bridge: Any, **entries: Any) -> Bridge:
    bridge: Bridge = make_bridge(
        mirror={"groups": [12], "reconcile_interval_minutes": 0, "entries": entries}
    )
    return bridge


@pytest.mark.parametrize("mode", ["none", "names"])
def test_attendees_are_never_invited_and_named_only_when_asked(make_bridge: Any, mode: str) -> None:
    bridge = entries_bridge(make_bridge, attendees=mode, link_back=False)
    bridge.add_owners(
        "users",
        [
            {"ID": "7", "NAME": "Anna", "LAST_NAME": "Schmidt"},
            {"ID": "8", "NAME": "Boris", "LAST_NAME": "Ivanov"},
        ],
    )
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge,
        section_id,
        "Planning",
        at(soon(15), "10:00"),
        at(soon(15), "11:00"),
        description="Agenda in the doc",
        attendees=[7, 8],
        created_by=7,
    )

    settle(bridge)

    all_done(bridge)
    event = event_of(bridge, calendar_id, entry_id)
    assert not event.get("attendees")
    if mode == "names":
        assert event["description"] == "Agenda in the doc\n\nAttendees: Anna Schmidt, Boris Ivanov"
    else:
        assert event["description"] == "Agenda in the doc"
    sent = [r for r in bridge.google_requests() if r["method"] in ("POST", "PUT", "PATCH")]
    assert all(r["query"].get("sendUpdates") == "none" for r in sent if "/events" in r["path"])


@pytest.mark.parametrize("copy", [True, False])
def test_reminders_copied_only_when_asked(make_bridge: Any, copy: bool) -> None:
    bridge = entries_bridge(make_bridge, reminders=copy)
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge,
        section_id,
        "Dentist",
        at(soon(16), "08:00"),
        at(soon(16), "08:45"),
        remind=[{"type": "min", "count": 15}, {"type": "hour", "count": 2}],
    )

    settle(bridge)

    reminders = event_of(bridge, calendar_id, entry_id)["reminders"]
    assert reminders["useDefault"] is False
    expected = [15, 120] if copy else []
    assert sorted(o["minutes"] for o in reminders.get("overrides", [])) == expected


@pytest.mark.parametrize("link_back", [True, False])
def test_link_back_to_the_entry(make_bridge: Any, link_back: bool) -> None:
    bridge = entries_bridge(make_bridge, link_back=link_back)
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge, section_id, "All hands", at(soon(17), "16:00"), at(soon(17), "17:00")
    )

    settle(bridge)

    description = event_of(bridge, calendar_id, entry_id).get("description", "")
    link = f"https://{bridge.portal.domain}/calendar/?EVENT_ID={entry_id}"
    if link_back:
        assert description == f"Open in Bitrix24: {link}"
    else:
        assert "Bitrix24" not in description and link not in description


@pytest.mark.parametrize(
    ("colour", "color_id"),
    [("#dc2127", "11"), ("#a0bdf8", "1"), ("#4fb84c", "10"), ("#ffb070", "6"), ("", None)],
)
def test_a_colour_becomes_the_nearest_google_colour(
    bridge: Bridge, colour: str, color_id: str | None
) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge, section_id, "Coloured", at(soon(18), "10:00"), at(soon(18), "11:00"), color=colour
    )

    settle(bridge)

    assert event_of(bridge, calendar_id, entry_id).get("colorId") == color_id


# Bookings


def test_a_resource_booking_lands_in_the_resource_calendar(bridge: Bridge) -> None:
    _, company_calendar = mirrored_section(bridge)
    resource = bridge.add_section("resource", 0, "Projector")
    settle(bridge)
    [resource_calendar] = [c["id"] for c in bridge.calendars() if c["summary"] == "Projector"]
    entry_id = add_entry(
        bridge,
        str(resource["ID"]),
        "Projector for the demo",
        at(soon(19), "13:00"),
        at(soon(19), "14:30"),
        zone="Europe/Berlin",
        event_type="#resourcebooking#",
    )

    settle(bridge)

    all_done(bridge)
    booking = event_of(bridge, resource_calendar, entry_id)
    assert booking["summary"] == "Projector for the demo"
    assert booking["start"]["dateTime"].startswith(at(soon(19), "13:00"))
    assert booking["end"]["dateTime"].startswith(at(soon(19), "14:30"))
    assert events(bridge, company_calendar) == []


def test_a_meeting_room_booking_shows_the_room_name_and_fills_the_room_calendar(
    bridge: Bridge,
) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    room = bridge.bitrix.add_room(bridge.member_id, "Kilimanjaro")
    settle(bridge)
    [room_calendar] = [c["id"] for c in bridge.calendars() if c["summary"] == "Kilimanjaro"]
    entry_id = add_entry(
        bridge,
        section_id,
        "Roadmap",
        at(soon(21), "10:00"),
        at(soon(21), "12:00"),
        zone="Europe/Berlin",
        room=room["ID"],
    )

    settle(bridge)

    all_done(bridge)
    meeting = event_of(bridge, calendar_id, entry_id)
    assert meeting["location"] == "Kilimanjaro"
    [booking] = events(bridge, room_calendar)
    assert booking["summary"] == "Roadmap"
    assert booking["start"]["dateTime"].startswith(at(soon(21), "10:00"))


def test_a_series_west_of_utc_across_a_dst_change_with_a_cancelled_and_a_moved_occurrence(
    bridge: Bridge,
) -> None:
    zone = "America/Los_Angeles"
    change = next_offset_change(zone)
    section_id, calendar_id = mirrored_section(bridge)
    first = change - timedelta(days=3)
    series_id = add_entry(
        bridge,
        section_id,
        "Late sync",
        at(first, "17:30"),  # after 00:00 UTC: the UTC day is the next one
        at(first, "18:00"),
        zone=zone,
        rrule={"FREQ": "DAILY", "COUNT": 6},
    )
    settle(bridge)
    days = [first + timedelta(days=n) for n in range(6)]
    bridge.bitrix.cancel_occurrence(bridge.member_id, series_id, str(days[4]))
    bridge.bitrix.edit_occurrence(
        bridge.member_id,
        series_id,
        str(days[5]),
        start=at(days[5], "16:00"),
        end=at(days[5], "16:30"),
        name="Late sync (early)",
    )

    settle(bridge)

    all_done(bridge)
    # the wall-clock time stays 17:30 on both sides of the change
    assert shown(bridge, calendar_id, series_id) == [
        *[(at(day, "17:30")[:16], "Late sync") for day in days[:4]],
        (at(days[5], "16:00")[:16], "Late sync (early)"),
    ]


def test_an_all_day_series_with_an_edited_occurrence(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    first = next_weekday(soon(4), 4)  # a Friday
    series_id = add_entry(
        bridge,
        section_id,
        "Remote Friday",
        str(first),
        str(first),
        zone="America/Chicago",
        rrule={"FREQ": "WEEKLY", "COUNT": 3},
    )
    settle(bridge)
    fridays = [first + timedelta(weeks=n) for n in range(3)]
    bridge.bitrix.edit_occurrence(
        bridge.member_id,
        series_id,
        str(fridays[1]),
        name="Remote Friday (and Monday)",
        start=str(fridays[1]),
        end=str(fridays[1] + timedelta(days=3)),
    )

    settle(bridge)

    all_done(bridge)
    listed = instances(bridge, calendar_id, google_event_id(bridge.portal.key, series_id))
    assert [(i["start"], i["end"], i["summary"]) for i in listed] == [
        ({"date": str(fridays[0])}, {"date": str(fridays[0] + timedelta(days=1))}, "Remote Friday"),
        (
            {"date": str(fridays[1])},
            {"date": str(fridays[1] + timedelta(days=4))},
            "Remote Friday (and Monday)",
        ),
        ({"date": str(fridays[2])}, {"date": str(fridays[2] + timedelta(days=1))}, "Remote Friday"),
    ]
