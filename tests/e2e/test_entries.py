"""Entries, end to end over HTTP: an entry made in Bitrix24 appears in its section's Google
calendar as Google shows it (times, all-day days, recurrence, overrides, privacy), once, through
updates, moves, deletes and duplicate deliveries."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, select

from bridge.event_body import google_event_id
from bridge.models import EntryMapping, EntryState, InboxState
from tests.e2e.conftest import Bridge


def mirrored_section(bridge: Bridge, name: str = "Company") -> tuple[str, str]:
    """A company section and its Google calendar, created through the bridge."""
    section = bridge.add_section("company_calendar", 0, name)
    bridge.wait_applied(1)
    [calendar] = [c for c in bridge.calendars() if c["summary"] == name]
    return str(section["ID"]), str(calendar["id"])


def add_entry(bridge: Bridge, section_id: str, name: str, start: str, end: str, **fields: Any) -> str:
    entry = bridge.bitrix.add_entry(bridge.member_id, section_id, name, start, end, **fields)
    return str(entry["ID"])


def events(bridge: Bridge, calendar_id: str, *, show_deleted: bool = False) -> list[dict[str, Any]]:
    return bridge.google.events(calendar_id, show_deleted=show_deleted)


def event_of(bridge: Bridge, calendar_id: str, entry_id: str) -> dict[str, Any]:
    wanted = google_event_id(bridge.portal.key, entry_id)
    [event] = [e for e in events(bridge, calendar_id, show_deleted=True) if e["id"] == wanted]
    return event


def entry_rows(bridge: Bridge) -> list[Any]:
    return [row for row in bridge.inbox() if row.entry_id is not None]


def entry_mappings(bridge: Bridge) -> list[EntryMapping]:
    with Session(bridge.engine) as session:
        return list(session.exec(select(EntryMapping)).all())


def instances(bridge: Bridge, calendar_id: str, event_id: str) -> list[dict[str, Any]]:
    service = bridge.clients().google.service()  # type: ignore[attr-defined]
    answer = service.events().instances(calendarId=calendar_id, eventId=event_id).execute()
    return list(answer.get("items", []))


def test_a_timed_entry_becomes_one_event_at_the_same_instant(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge,
        section_id,
        "Quarterly review",
        "2031-03-14T17:59:00",
        "2031-03-14T18:59:00",
        zone="Europe/Berlin",
        description="Numbers first",
        accessibility="free",
    )

    rows = bridge.wait_applied(2)

    assert [r.state for r in rows if r.entry_id == entry_id] == [InboxState.DONE]
    event = event_of(bridge, calendar_id, entry_id)
    assert event["summary"] == "Quarterly review"
    assert event["status"] == "confirmed"
    assert event["start"]["timeZone"] == "Europe/Berlin"
    assert event["start"]["dateTime"].startswith("2031-03-14T17:59:00")
    assert event["end"]["dateTime"].startswith("2031-03-14T18:59:00")
    assert event["transparency"] == "transparent"
    assert event["description"].startswith("Numbers first")
    assert event["extendedProperties"]["private"]["b24_entry"] == entry_id
    inserts = [
        r
        for r in bridge.google_requests()
        if r["method"] == "POST" and r["path"].endswith("/events")
    ]
    assert len(inserts) == 1
    assert "sendUpdates=none" in inserts[0]["query"]
    [mapping] = entry_mappings(bridge)
    assert (mapping.entry_id, mapping.google_calendar_id) == (entry_id, calendar_id)
    assert mapping.state == EntryState.ACTIVE


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Tokyo"])
def test_an_all_day_entry_keeps_its_days_east_and_west_of_utc(bridge: Bridge, zone: str) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge, section_id, "Company holiday", "2031-12-24", "2031-12-26", zone=zone
    )

    bridge.wait_applied(2)

    event = event_of(bridge, calendar_id, entry_id)
    assert event["start"] == {"date": "2031-12-24"}
    assert event["end"] == {"date": "2031-12-27"}  # Google's end is exclusive


def test_a_weekly_series_with_a_cancelled_and_a_moved_occurrence(bridge: Bridge) -> None:
    bridge.bitrix.set_locale(bridge.member_id, "de")
    section_id, calendar_id = mirrored_section(bridge)
    series_id = add_entry(
        bridge,
        section_id,
        "Stand-up",
        "2031-03-17T09:00:00",
        "2031-03-17T09:15:00",
        zone="Europe/Berlin",
        rrule={"FREQ": "WEEKLY", "COUNT": 4, "BYDAY": ["MO"]},
    )
    bridge.wait_applied(2)
    bridge.bitrix.cancel_occurrence(bridge.member_id, series_id, "2031-03-24")
    edited = bridge.bitrix.edit_occurrence(
        bridge.member_id,
        series_id,
        "2031-03-31",
        start="2031-03-31T11:00:00",
        end="2031-03-31T11:30:00",
        zone="Europe/Berlin",
        name="Stand-up (moved)",
    )

    rows = bridge.wait_applied(5)

    assert all(r.state == InboxState.DONE for r in entry_rows(bridge)), [
        (r.event, r.state, r.outcome) for r in rows
    ]
    series_event = google_event_id(bridge.portal.key, series_id)
    shown = [
        (i["start"]["dateTime"][:16], i["summary"])
        for i in instances(bridge, calendar_id, series_event)
    ]
    # 17 Mar, (24 Mar cancelled), 31 Mar moved to 11:00 (summer time from 30 Mar), 7 Apr
    assert shown == [
        ("2031-03-17T09:00", "Stand-up"),
        ("2031-03-31T11:00", "Stand-up (moved)"),
        ("2031-04-07T09:00", "Stand-up"),
    ]
    assert str(edited["entry"]["ID"]) in {m.entry_id for m in entry_mappings(bridge)}


def test_update_move_and_delete_follow_the_entry(bridge: Bridge) -> None:
    first_id, first_calendar = mirrored_section(bridge, "Company")
    second = bridge.add_section("company_calendar", 0, "Company two")
    bridge.wait_applied(2)
    [second_calendar] = [c["id"] for c in bridge.calendars() if c["summary"] == "Company two"]
    entry_id = add_entry(bridge, first_id, "Offsite", "2031-05-05T08:00:00", "2031-05-05T16:00:00")
    bridge.wait_applied(3)

    bridge.bitrix.update_entry(bridge.member_id, entry_id, name="Offsite (Lisbon)")
    bridge.wait_applied(4)
    assert event_of(bridge, first_calendar, entry_id)["summary"] == "Offsite (Lisbon)"

    bridge.bitrix.update_entry(bridge.member_id, entry_id, section=second["ID"])
    bridge.wait_applied(5)
    moved = event_of(bridge, second_calendar, entry_id)
    assert moved["summary"] == "Offsite (Lisbon)" and moved["status"] == "confirmed"
    assert all(e["id"] != moved["id"] for e in events(bridge, first_calendar))

    bridge.bitrix.delete_entry(bridge.member_id, entry_id)
    bridge.wait_applied(6)
    assert event_of(bridge, second_calendar, entry_id)["status"] == "cancelled"
    assert [m.state for m in entry_mappings(bridge)] == [EntryState.CLOSED]


def test_duplicate_deliveries_and_a_lost_insert_answer_make_one_event(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    bridge.google_fault(method="POST", path_suffix="/events", mode="commit_then_drop", count=1)
    entry_id = add_entry(bridge, section_id, "Board", "2031-06-01T10:00:00", "2031-06-01T11:00:00")
    bridge.bitrix.update_entry(bridge.member_id, entry_id, name="Board meeting")
    bridge.bitrix.update_entry(bridge.member_id, entry_id, name="Board meeting")

    bridge.wait_applied(4)

    mirrored = [e for e in events(bridge, calendar_id) if e["status"] == "confirmed"]
    assert [e["summary"] for e in mirrored] == ["Board meeting"]


def test_entries_outside_mirrored_sections_and_synced_from_google_are_skipped(
    bridge: Bridge,
) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    bridge.add_group(99, "Not selected")
    hidden = bridge.add_section("group", 99, "Secret project")
    bridge.wait_applied(2)
    add_entry(bridge, str(hidden["ID"]), "Secret", "2031-06-02T10:00:00", "2031-06-02T11:00:00")
    add_entry(
        bridge,
        section_id,
        "From Google",
        "2031-06-03T10:00:00",
        "2031-06-03T11:00:00",
        g_event_id="abc123",
    )

    bridge.wait_applied(4)

    outcomes = sorted(r.outcome or "" for r in entry_rows(bridge))
    assert [r.state for r in entry_rows(bridge)] == [InboxState.SKIPPED] * 2
    assert "not_mirrored_section" in outcomes[0] or "not_mirrored_section" in outcomes[1]
    assert any("synced_from_google" in o for o in outcomes)
    assert events(bridge, calendar_id) == []


@pytest.mark.parametrize(
    ("privacy", "summary"),
    [("full", "Doctor"), ("respect_private", "Busy"), ("busy_only", "Busy")],
)
def test_a_private_entry_under_each_privacy_mode(
    make_bridge: Any, privacy: str, summary: str
) -> None:
    bridge: Bridge = make_bridge(
        mirror={"groups": [12], "reconcile_interval_minutes": 0, "entries": {"privacy": privacy}}
    )
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge,
        section_id,
        "Doctor",
        "2031-07-01T10:00:00",
        "2031-07-01T11:00:00",
        private=True,
        description="Dr. Who, room 4",
        location="Clinic",
    )

    bridge.wait_applied(2)

    event = event_of(bridge, calendar_id, entry_id)
    assert event["summary"] == summary
    if summary == "Busy":
        assert "Dr. Who" not in event.get("description", "")
        assert not event.get("location")
    assert event.get("visibility") == "private"


def test_a_room_booking_names_the_room(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    room = bridge.bitrix.add_room(bridge.member_id, "Everest")
    bridge.wait_applied(2)
    entry_id = add_entry(
        bridge,
        section_id,
        "Planning",
        "2031-08-01T10:00:00",
        "2031-08-01T11:00:00",
        room=room["ID"],
    )

    bridge.wait_applied(4)

    assert event_of(bridge, calendar_id, entry_id)["location"] == "Everest"
