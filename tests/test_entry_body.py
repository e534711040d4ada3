"""desired_event: the Google event body of an entry, field by field."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from bridge.entries import Entry, parse_entry
from bridge.event_body import (
    AttendeeMode,
    EntryOptions,
    MissingSeries,
    Privacy,
    desired_event,
    google_event_id,
)
from bridge.event_colours import EVENT_PALETTE, nearest_event_colour
from tests.entry_samples import DOC_BOOKING, DOC_EVENT_GET, all_day, rrule, timed

ACME = "https://acme.bitrix24.de"
PLAIN = EntryOptions(link_back=False)


def body(raw: dict[str, Any], options: EntryOptions = PLAIN, **kwargs: Any) -> dict[str, Any]:
    return desired_event("acme", parse_entry(raw), options, **kwargs).to_api()


# --- ids ------------------------------------------------------------------------------------------


def test_event_ids_are_pinned_forever() -> None:
    # Changing these orphans every mirrored event: inserts would no longer meet `409 duplicate`.
    assert google_event_id("acme", "1265") == "imrid31c0iu7qontffhj0rpood35o2c6"
    assert google_event_id("acme", "1271") == "dsuf31rtif9o03bg22volt2o6glrp545"
    assert google_event_id("other", "1265") == "v97ts76qf26alhqjtii0legigvrq3b2e"


@pytest.mark.parametrize(("portal", "entry"), [("a", "1"), ("acme", "999999999"), ("x-y_z", "0")])
def test_event_ids_are_base32hex_within_googles_length(portal: str, entry: str) -> None:
    event_id = google_event_id(portal, entry)
    assert 5 <= len(event_id) <= 1024
    assert set(event_id) <= set("0123456789abcdefghijklmnopqrstuv")


# --- the doc examples -----------------------------------------------------------------------------


def test_doc_event_get_example_as_google_sees_it() -> None:
    assert body(DOC_EVENT_GET, EntryOptions(portal_address=ACME + "/")) == {
        "id": "imrid31c0iu7qontffhj0rpood35o2c6",
        "status": "confirmed",
        "summary": "Event Name",
        "description": "Description for event\n\nOpen in Bitrix24: "
        "https://acme.bitrix24.de/company/personal/user/1/calendar/?EVENT_ID=1265",
        "location": "test location",
        # 1733932740 is 15:59 UTC: 16:59 in Berlin in December (DATE_FROM's 05:59 pm is not).
        "start": {"dateTime": "2024-12-11T16:59:00+01:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2024-12-11T17:59:00+01:00", "timeZone": "Europe/Berlin"},
        "recurrence": [
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20241224T225959Z",
            "EXDATE;TZID=Europe/Berlin:20241128T165900",
            "EXDATE;TZID=Europe/Berlin:20241205T165900",
            "EXDATE;TZID=Europe/Berlin:20241212T165900",
            "EXDATE;TZID=Europe/Berlin:20241219T165900",
            "EXDATE;TZID=Europe/Berlin:20241226T165900",
        ],
        "transparency": "transparent",  # ACCESSIBILITY free
        "visibility": "default",
        "colorId": "10",  # #9dcf00 is a green: basil
        "reminders": {"useDefault": False, "overrides": []},  # reminders off by default
        "extendedProperties": {
            "private": {"b24_portal": "acme", "b24_entry": "1265", "b24_version": "1"}
        },
    }


def test_doc_booking_example_as_google_sees_it() -> None:
    event = body(DOC_BOOKING, EntryOptions(portal_address=ACME))
    assert event["start"] == {"date": "2024-12-20"}
    assert event["end"] == {
        "date": "2024-12-22"
    }  # DATE_TO 21.12 is the last day; Google's is after
    assert event["summary"] == "Booking"
    assert event["description"] == (
        "Service: some\n\nOpen in Bitrix24: https://acme.bitrix24.de/calendar/?EVENT_ID=1408"
    )
    assert event["transparency"] == "opaque"
    assert "recurrence" not in event and "colorId" not in event


# --- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "first", "last", "start", "end"),
    [
        ("America/Los_Angeles", "2024-03-10", None, "2024-03-10", "2024-03-11"),  # US DST day
        ("America/Los_Angeles", "2024-12-20", None, "2024-12-20", "2024-12-21"),
        ("Asia/Tokyo", "2024-12-31", None, "2024-12-31", "2025-01-01"),
        ("Pacific/Kiritimati", "2024-02-28", "2024-03-01", "2024-02-28", "2024-03-02"),
        ("Europe/Berlin", "2024-03-30", "2024-04-01", "2024-03-30", "2024-04-02"),  # over DST
    ],
)
def test_all_day_dates(zone: str, first: str, last: str | None, start: str, end: str) -> None:
    event = body(all_day(first, last, zone=zone, locale="en"))
    assert event["start"] == {"date": start}
    assert event["end"] == {"date": end}


def test_timed_across_the_spring_change_in_berlin() -> None:
    event = body(timed("2024-03-30 22:00", 6 * 60, "Europe/Berlin"))
    assert event["start"] == {"dateTime": "2024-03-30T22:00:00+01:00", "timeZone": "Europe/Berlin"}
    assert event["end"] == {"dateTime": "2024-03-31T05:00:00+02:00", "timeZone": "Europe/Berlin"}


def test_timed_multi_day_with_two_zones() -> None:
    event = body(timed("2024-06-01 22:00", 30 * 60, "Asia/Tokyo", end_zone="America/Los_Angeles"))
    assert event["start"] == {"dateTime": "2024-06-01T22:00:00+09:00", "timeZone": "Asia/Tokyo"}
    assert event["end"] == {
        "dateTime": "2024-06-02T12:00:00-07:00",  # 13:00Z + 30 h
        "timeZone": "America/Los_Angeles",
    }


# --- recurrence -----------------------------------------------------------------------------------

BERLIN_WEEKLY = timed(
    "2024-03-18 10:00",  # a Monday, CET; DST starts on 31 March
    entry_id="500",
    RRULE=rrule("WEEKLY", days=("MO",), until="2024-04-30"),
    EXDATE="04/01/2024;03/25/2024",
)


def test_weekly_series_across_dst_keeps_its_wall_time() -> None:
    assert body(BERLIN_WEEKLY)["recurrence"] == [
        "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20240430T215959Z",  # end of 30 April, CEST, in UTC
        "EXDATE;TZID=Europe/Berlin:20240325T100000",
        "EXDATE;TZID=Europe/Berlin:20240401T100000",
    ]


@pytest.mark.parametrize(
    ("zone", "until"),
    [
        ("America/Los_Angeles", "UNTIL=20241225T075959Z"),  # west of UTC: the next UTC day
        ("Asia/Tokyo", "UNTIL=20241224T145959Z"),
        ("UTC", "UNTIL=20241224T235959Z"),
    ],
)
def test_until_is_the_end_of_its_day_in_the_series_zone(zone: str, until: str) -> None:
    raw = timed("2024-12-02 09:00", zone=zone, RRULE=rrule("DAILY", until="2024-12-24"))
    assert body(raw)["recurrence"] == [f"RRULE:FREQ=DAILY;{until}"]


def test_interval_byday_and_count() -> None:
    raw = timed(
        "2024-12-02 09:00",
        RRULE=rrule("WEEKLY", days=("FR", "MO", "WE"), interval=2, count=10),
    )
    assert body(raw)["recurrence"] == ["RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR;COUNT=10"]


def test_count_wins_over_until() -> None:
    raw = timed("2024-12-02 09:00", RRULE=rrule("DAILY", count=3, until="2025-01-31"))
    assert body(raw)["recurrence"] == ["RRULE:FREQ=DAILY;COUNT=3"]


def test_all_day_series_until_and_exdates_are_dates() -> None:
    raw = all_day(
        "2024-12-25",
        zone="America/Los_Angeles",
        locale="de",
        RRULE=rrule("YEARLY", until="2030-12-25", locale="de"),
        EXDATE="25.12.2026",
    )
    assert body(raw)["recurrence"] == [
        "RRULE:FREQ=YEARLY;UNTIL=20301225",
        "EXDATE;VALUE=DATE:20261225",
    ]


def test_overridden_days_are_not_excluded() -> None:
    recurrence = body(BERLIN_WEEKLY, overridden={date(2024, 4, 1)})["recurrence"]
    assert recurrence == [
        "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20240430T215959Z",
        "EXDATE;TZID=Europe/Berlin:20240325T100000",
    ]


# --- edited occurrences ---------------------------------------------------------------------------


def occurrence(start: str, original: str, series_id: str = "500", **fields: Any) -> dict[str, Any]:
    return timed(
        start,
        entry_id="600",
        RECURRENCE_ID=series_id,
        RELATIONS={"COMMENT_XML_ID": f"EVENT_{series_id}_{original}"},
        **fields,
    )


@pytest.mark.parametrize(
    ("original", "suffix", "original_start"),
    [
        ("03/25/2024", "20240325T090000Z", "2024-03-25T10:00:00+01:00"),  # before DST
        ("04/08/2024", "20240408T080000Z", "2024-04-08T10:00:00+02:00"),  # after DST
    ],
)
def test_edited_occurrence_is_the_instance_of_its_original_start(
    original: str, suffix: str, original_start: str
) -> None:
    series = parse_entry(BERLIN_WEEKLY)
    event = body(occurrence("2024-04-09 15:00", original, NAME="Moved"), series=series)
    series_id = google_event_id("acme", "500")
    assert event["id"] == f"{series_id}_{suffix}"
    assert event["recurringEventId"] == series_id
    assert event["originalStartTime"] == {"dateTime": original_start, "timeZone": "Europe/Berlin"}
    # It shows where it was moved to, and has no rule of its own.
    assert event["start"] == {"dateTime": "2024-04-09T15:00:00+02:00", "timeZone": "Europe/Berlin"}
    assert event["summary"] == "Moved"
    assert "recurrence" not in event
    assert event["extendedProperties"]["private"]["b24_entry"] == "600"


def test_edited_occurrence_of_a_series_in_another_zone_uses_the_series_zone() -> None:
    series = parse_entry(
        timed("2024-11-01 09:00", zone="America/Los_Angeles", entry_id="500", RRULE=rrule("DAILY"))
    )
    # Edited by someone in Berlin; the occurrence of 5 November is 09:00 PST = 17:00 UTC.
    event = body(occurrence("2024-11-05 18:00", "11/05/2024"), series=series)
    assert event["id"].endswith("_20241105T170000Z")
    assert event["originalStartTime"] == {
        "dateTime": "2024-11-05T09:00:00-08:00",
        "timeZone": "America/Los_Angeles",
    }


def test_edited_occurrence_of_an_all_day_series() -> None:
    series = parse_entry(all_day("2024-12-25", entry_id="500", RRULE=rrule("YEARLY", locale="de")))
    raw = all_day(
        "2026-12-24",
        entry_id="600",
        RECURRENCE_ID="500",
        RELATIONS={"COMMENT_XML_ID": "EVENT_500_25.12.2026"},
    )
    event = body(raw, series=series)
    assert event["id"] == google_event_id("acme", "500") + "_20261225"
    assert event["originalStartTime"] == {"date": "2026-12-25"}
    assert event["start"] == {"date": "2026-12-24"}


def test_edited_occurrence_needs_its_series() -> None:
    with pytest.raises(MissingSeries):
        body(occurrence("2024-04-09 15:00", "04/08/2024"))


# --- privacy --------------------------------------------------------------------------------------

SECRET = timed(
    "2024-12-02 09:00",
    NAME="Salary talk",
    DESCRIPTION="bring numbers",
    LOCATION="Room 4",
    PRIVATE_EVENT="Y",
    ATTENDEE_LIST=[{"id": 1, "status": "H"}],
)
OPEN = {**SECRET, "PRIVATE_EVENT": "N", "NAME": "Standup"}


@pytest.mark.parametrize(
    ("privacy", "raw", "summary", "hidden"),
    [
        (Privacy.FULL, SECRET, "Salary talk", False),
        (Privacy.BUSY_ONLY, SECRET, "Busy", True),
        (Privacy.BUSY_ONLY, OPEN, "Busy", True),
        (Privacy.RESPECT_PRIVATE, SECRET, "Busy", True),
        (Privacy.RESPECT_PRIVATE, OPEN, "Standup", False),
    ],
)
def test_privacy_modes(privacy: Privacy, raw: dict[str, Any], summary: str, hidden: bool) -> None:
    options = EntryOptions(privacy=privacy, attendees=AttendeeMode.NAMES, portal_address=ACME)
    event = body(raw, options)
    assert event["summary"] == summary
    if hidden:
        assert (event["description"], event["location"]) == ("", "")
    else:
        assert event["description"].startswith("bring numbers\n\nAttendees: user 1\n\nOpen in")
        assert event["location"] == "Room 4"
    assert event["visibility"] == ("private" if raw["PRIVATE_EVENT"] == "Y" else "default")
    assert event["start"]["dateTime"] == "2024-12-02T09:00:00+01:00"  # the time is always there


# --- description, location, colour, reminders -----------------------------------------------------

MEETING = timed(
    "2024-12-02 09:00",
    DESCRIPTION="Agenda",
    MEETING_HOST="1",
    MEETING={"HOST_NAME": "Anna Host"},
    ATTENDEE_LIST=[
        {"id": 1, "entryId": "100", "status": "H"},
        {"id": 2, "entryId": "101", "status": "Y"},
        {"id": 3, "entryId": "102", "status": "N"},
        {"id": 4, "entryId": "103", "status": "Q"},
    ],
)


def test_attendee_names_when_asked_declined_left_out() -> None:
    options = EntryOptions(attendees=AttendeeMode.NAMES, link_back=False)
    event = body(MEETING, options, names={"2": "Boris", "3": "Carla"})
    assert event["description"] == "Agenda\n\nAttendees: Anna Host, Boris, user 4"
    assert "attendees" not in event  # nobody is ever invited


def test_no_attendees_by_default() -> None:
    assert body(MEETING, names={"2": "Boris"})["description"] == "Agenda"


@pytest.mark.parametrize(
    ("cal_type", "owner", "path"),
    [
        ("user", "7", "/company/personal/user/7/calendar/"),
        ("group", "12", "/workgroups/group/12/calendar/"),
        ("company_calendar", "0", "/calendar/"),
        ("location", "0", "/calendar/"),
    ],
)
def test_link_back_to_the_entry(cal_type: str, owner: str, path: str) -> None:
    raw = timed("2024-12-02 09:00", entry_id="321", CAL_TYPE=cal_type, OWNER_ID=owner)
    event = body(raw, EntryOptions(portal_address=ACME))
    assert event["description"] == f"Open in Bitrix24: {ACME}{path}?EVENT_ID=321"


def test_no_link_without_an_address_or_when_off() -> None:
    raw = timed("2024-12-02 09:00", DESCRIPTION="x")
    assert body(raw, EntryOptions(portal_address=""))["description"] == "x"
    assert body(raw, EntryOptions(link_back=False, portal_address=ACME))["description"] == "x"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("calendar_12", "Blue room"),
        ("calendar_12_3456", "Blue room"),
        ("calendar_99", ""),  # a room the bridge cannot name: no identifier shown
        ("Cafe Central", "Cafe Central"),
        ("calendar_12 and more", "calendar_12 and more"),
    ],
)
def test_meeting_rooms_by_name(location: str, expected: str) -> None:
    raw = timed("2024-12-02 09:00", LOCATION=location)
    assert body(raw, rooms={"12": "Blue room"})["location"] == expected


def test_every_palette_colour_is_its_own_nearest() -> None:
    for color_id, colour in EVENT_PALETTE.items():
        assert nearest_event_colour(colour) == color_id
    assert len(EVENT_PALETTE) == 11


@pytest.mark.parametrize(
    ("colour", "color_id"),
    [
        ("#ff0000", "11"),  # tomato
        ("#0000ff", "9"),  # blueberry
        ("#ffffff", "8"),  # graphite
        ("#e89b06", "5"),  # banana
        ("#9dcf00", "10"),  # basil
        ("#00afc7", "7"),  # peacock
    ],
)
def test_nearest_event_colour(colour: str, color_id: str) -> None:
    assert body(timed("2024-12-02 09:00", COLOR=colour))["colorId"] == color_id


def test_no_colour_leaves_the_calendars() -> None:
    assert "colorId" not in body(timed("2024-12-02 09:00", COLOR=""))


def test_reminders_copied_when_on() -> None:
    raw = timed(
        "2024-12-02 09:00",
        REMIND=[
            {"type": "min", "count": 5},
            {"type": "min", "count": 10},
            {"type": "hour", "count": 1},
            {"type": "hour", "count": 2},
            {"type": "day", "count": 1},
            {"type": "day", "count": 60},  # beyond Google's four weeks
        ],
    )
    reminders = body(raw, EntryOptions(reminders=True, link_back=False))["reminders"]
    assert reminders == {
        "useDefault": False,
        "overrides": [{"method": "popup", "minutes": m} for m in (5, 10, 60, 120, 1440)],
    }
    assert body(raw)["reminders"] == {"useDefault": False, "overrides": []}


def test_far_reminder_is_capped_at_four_weeks() -> None:
    raw = timed("2024-12-02 09:00", REMIND=[{"type": "day", "count": 60}])
    overrides = body(raw, EntryOptions(reminders=True))["reminders"]["overrides"]
    assert overrides == [{"method": "popup", "minutes": 40_320}]


def test_fingerprint_follows_what_is_written() -> None:
    entry: Entry = parse_entry(timed("2024-12-02 09:00"))
    first = desired_event("acme", entry, PLAIN)
    assert first.fingerprint() == desired_event("acme", entry, PLAIN).fingerprint()
    renamed = desired_event("acme", parse_entry(timed("2024-12-02 09:00", NAME="New")), PLAIN)
    assert renamed.fingerprint() != first.fingerprint()
    busy = desired_event("acme", entry, EntryOptions(privacy=Privacy.BUSY_ONLY, link_back=False))
    assert busy.fingerprint() != first.fingerprint()
