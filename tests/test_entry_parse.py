"""parse_entry: the doc examples and each field, case by case."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from bridge.entries import (
    Accessibility,
    Attendee,
    Frequency,
    MalformedEntry,
    Recurrence,
    Weekday,
    parse_entry,
)
from bridge.locale_dates import DateFormat
from tests.entry_samples import DOC_BOOKING, DOC_EVENT_GET, all_day, timed


def test_doc_event_get_example() -> None:
    entry = parse_entry(DOC_EVENT_GET)
    assert (entry.id, entry.section_id, entry.cal_type, entry.owner_id) == (
        "1265",
        "4",
        "user",
        "1",
    )
    assert entry.name == "Event Name"
    assert entry.description == "Description for event"
    assert entry.location == "test location"
    # The instants from the timestamps, not from "05:59:00 pm" (which is in another offset).
    assert entry.start == datetime(2024, 12, 11, 15, 59, tzinfo=UTC)
    assert entry.end == datetime(2024, 12, 11, 16, 59, tzinfo=UTC)
    assert (entry.zone_from, entry.zone_to, entry.all_day) == (
        "Europe/Berlin",
        "Europe/Berlin",
        False,
    )
    assert entry.recurrence == Recurrence(
        Frequency.WEEKLY, 1, (Weekday.MO, Weekday.WE), None, date(2024, 12, 24)
    )
    assert entry.exdates == (
        date(2024, 11, 28),
        date(2024, 12, 5),
        date(2024, 12, 12),
        date(2024, 12, 19),
        date(2024, 12, 26),
    )
    assert entry.date_format == DateFormat.MONTH_DAY_YEAR
    assert entry.accessibility == Accessibility.FREE
    assert entry.colour == "#9dcf00"
    assert entry.reminders == (50,)
    assert entry.attendees == (Attendee("1", "H"),)
    assert (entry.meeting_host, entry.host_name, entry.is_meeting) == ("1", "User Name", True)
    assert entry.private is False
    assert entry.version == "1"
    # It carries a rule, so it is a series (cut from 1271), not an edited occurrence.
    assert entry.is_series and not entry.is_occurrence
    assert entry.split_from == "1271"
    assert entry.original_date is None


def test_doc_booking_example_is_a_two_day_all_day_entry() -> None:
    entry = parse_entry(DOC_BOOKING)
    assert entry.all_day
    assert (entry.first_day, entry.last_day) == (date(2024, 12, 20), date(2024, 12, 21))
    assert (entry.cal_type, entry.owner_id, entry.section_id) == ("resource", "0", "198")
    assert entry.event_type == "#resourcebooking#"
    assert entry.recurrence is None and entry.exdates == ()
    assert entry.accessibility == Accessibility.BUSY  # not given


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Tokyo", "Pacific/Honolulu"])
def test_all_day_days_are_read_in_utc_whatever_the_zone(zone: str) -> None:
    entry = parse_entry(all_day("2024-03-10", zone=zone, locale="en"))  # US DST starts that day
    assert (entry.first_day, entry.last_day) == (date(2024, 3, 10), date(2024, 3, 10))


@pytest.mark.parametrize(
    ("zone", "first_ts", "last_ts"),
    [
        # A portal writing the zone's midnight instead of UTC's still gives the right days.
        ("Asia/Tokyo", "1734620400", "1734706800"),  # 2024-12-19 15:00Z, 2024-12-20 15:00Z
        ("America/Los_Angeles", "1734681600", "1734768000"),  # 2024-12-20 08:00Z, 12-21 08:00Z
    ],
)
def test_all_day_at_a_local_midnight_lands_on_its_day(
    zone: str, first_ts: str, last_ts: str
) -> None:
    raw = all_day("2024-12-20", "2024-12-21", zone=zone)
    raw.update(DATE_FROM_TS_UTC=first_ts, DATE_TO_TS_UTC=last_ts)
    entry = parse_entry(raw)
    assert (entry.first_day, entry.last_day) == (date(2024, 12, 20), date(2024, 12, 21))


def test_timed_entry_with_two_zones() -> None:
    raw = timed("2024-06-01 10:00", 9 * 60, "Europe/Berlin", end_zone="America/New_York")
    entry = parse_entry(raw)
    assert entry.start == datetime(2024, 6, 1, 8, 0, tzinfo=UTC)
    assert entry.end == datetime(2024, 6, 1, 17, 0, tzinfo=UTC)
    assert (entry.zone_from, entry.zone_to) == ("Europe/Berlin", "America/New_York")


def test_missing_or_unknown_zones_fall_back() -> None:
    raw = timed("2024-06-01 10:00", TZ_FROM="", TZ_TO="Mars/Olympus")
    entry = parse_entry(raw)
    assert (entry.zone_from, entry.zone_to) == ("UTC", "UTC")
    raw = timed("2024-06-01 10:00", TZ_FROM="", TZ_TO="Asia/Tokyo")
    assert parse_entry(raw).zone_from == "Asia/Tokyo"


def test_rule_fields() -> None:
    raw = timed(
        "2024-12-02 10:00",
        RRULE={"FREQ": "weekly", "INTERVAL": "2", "BYDAY": {"FR": "FR", "MO": "MO"}, "COUNT": "6"},
    )
    assert parse_entry(raw).recurrence == Recurrence(
        Frequency.WEEKLY, 2, (Weekday.MO, Weekday.FR), 6, None
    )
    raw = timed("2024-12-02 10:00", RRULE={"FREQ": "MONTHLY", "BYDAY": "SU,TU"})
    assert parse_entry(raw).recurrence == Recurrence(Frequency.MONTHLY, 1, (Weekday.TU, Weekday.SU))


def test_until_from_its_timestamp_alone() -> None:
    raw = timed("2024-12-02 10:00", RRULE={"FREQ": "DAILY", "UNTIL_TS": 1734998400})
    recurrence = parse_entry(raw).recurrence
    assert recurrence is not None and recurrence.until == date(2024, 12, 24)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ID": ""}, "ID"),
        ({"SECTION_ID": None}, "SECTION_ID"),
        ({"DATE_FROM_TS_UTC": "soon"}, "DATE_FROM_TS_UTC"),
        ({"DATE_TO_TS_UTC": None}, "DATE_TO_TS_UTC"),
        ({"DATE_TO_TS_UTC": "1000"}, "DATE_TO_TS_UTC"),  # before the start
        ({"RRULE": {"FREQ": "HOURLY"}}, "RRULE.FREQ"),
        ({"RRULE": "FREQ=DAILY"}, "RRULE"),
        ({"RRULE": {"FREQ": "DAILY", "INTERVAL": -1}}, "RRULE"),
        ({"RRULE": {"FREQ": "WEEKLY", "BYDAY": {"XX": "XX"}}}, "RRULE.BYDAY"),
        ({"RECURRENCE_ID": "55"}, "RELATIONS.COMMENT_XML_ID"),  # an occurrence of which day?
    ],
)
def test_malformed_entries_name_the_field(fields: dict[str, Any], field: str) -> None:
    raw = timed("2024-12-02 10:00", **{k: v for k, v in fields.items() if k != "ID"})
    if "ID" in fields:
        raw["ID"] = fields["ID"]
    with pytest.raises(MalformedEntry) as raised:
        parse_entry(raw)
    assert raised.value.field == field


def test_edited_occurrence_from_comment_xml_id() -> None:
    raw = timed(
        "2024-12-23 18:30",
        entry_id="1300",
        RECURRENCE_ID="1271",
        RELATIONS={"COMMENT_XML_ID": "EVENT_1271_12/23/2024"},
        ORIGINAL_DATE_FROM="12/23/2024 05:59:00 pm",
    )
    entry = parse_entry(raw)
    assert entry.is_occurrence and not entry.is_series
    assert (entry.series_id, entry.original_date) == ("1271", date(2024, 12, 23))


def test_edited_occurrence_moved_to_another_day_keeps_its_original_day() -> None:
    raw = timed(
        "2024-12-27 09:00",
        locale="de",
        entry_id="1300",
        RECURRENCE_ID=1271,
        RELATIONS={"COMMENT_XML_ID": "EVENT_1271_23.12.2024"},
    )
    entry = parse_entry(raw)
    assert entry.original_date == date(2024, 12, 23)
    assert entry.start.date() == date(2024, 12, 27)


def test_edited_occurrence_from_original_date_from() -> None:
    raw = timed(
        "2024-12-23 18:30",
        locale="de",
        RECURRENCE_ID="1271",
        ORIGINAL_DATE_FROM="23.12.2024 17:59:00",
    )
    entry = parse_entry(raw)
    assert (entry.series_id, entry.original_date) == ("1271", date(2024, 12, 23))


def test_series_id_from_comment_xml_id_when_recurrence_id_is_empty() -> None:
    raw = timed(
        "2024-12-23 18:30",
        RECURRENCE_ID=None,
        RELATIONS={"COMMENT_XML_ID": "EVENT_77_12/23/2024"},
    )
    entry = parse_entry(raw)
    assert (entry.series_id, entry.original_date) == ("77", date(2024, 12, 23))


def test_flags_colours_reminders_and_attendees() -> None:
    raw = timed(
        "2024-12-02 10:00",
        PRIVATE_EVENT="Y",
        ACCESSIBILITY="absent",
        COLOR="9DCF00",
        REMIND=[
            {"type": "day", "count": 1},
            {"type": "hour", "count": "2"},
            {"type": "min", "count": 15},
            {"type": "min", "count": 120},  # the same as two hours
            {"type": "week", "count": 1},  # no such unit: dropped
        ],
        ATTENDEE_LIST=[
            {"id": 1, "entryId": "100", "status": "H"},
            {"id": "7", "entryId": "101", "status": "n"},
        ],
        G_EVENT_ID="abc@google.com",
        DELETED="Y",
        EVENT_TYPE="#shared#",
        VERSION="5",
    )
    entry = parse_entry(raw)
    assert entry.private and entry.deleted and entry.synced_from_google
    assert entry.accessibility == Accessibility.ABSENT
    assert entry.colour == "#9dcf00"
    assert entry.reminders == (15, 120, 1440)
    assert entry.attendees == (Attendee("1", "H"), Attendee("7", "N"))
    assert (entry.event_type, entry.version) == ("#shared#", "5")


def test_attendees_from_the_entity_list_when_no_attendee_list() -> None:
    raw = timed(
        "2024-12-02 10:00",
        attendeesEntityList=[{"entityId": "user", "id": 3}, {"entityId": "department", "id": 9}],
    )
    assert parse_entry(raw).attendees == (Attendee("3"),)


@pytest.mark.parametrize("colour", ["", "red", "#12345", None, "#12345g"])
def test_odd_colours_are_no_colour(colour: str | None) -> None:
    assert parse_entry(timed("2024-12-02 10:00", COLOR=colour)).colour == ""
