"""Entries, end to end over HTTP: an entry made in Bitrix24 appears in its section's Google
calendar as Google shows it (times, all-day days, recurrence, overrides, privacy), once, through
updates, moves, deletes and duplicate deliveries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bridge.event_body import google_event_id
from bridge.harness import wait_for
from bridge.models import EntryMapping, EntryState, InboxState
from bridge.sandbox.bitrix import http_build_query
from tests.e2e.conftest import Bridge


def soon(days: int) -> date:
    """A day `days` from today: inside the default window (30 days back, 365 ahead) whatever
    the date the suite runs on."""
    return datetime.now(UTC).date() + timedelta(days=days)


def at(day: date, clock: str) -> str:
    return f"{day.isoformat()}T{clock}:00"


def next_spring_forward() -> date:
    """The next last Sunday of March (Europe/Berlin moves to summer time), within a year."""
    today = datetime.now(UTC).date()
    for year in (today.year, today.year + 1):
        last = date(year, 3, 31)
        sunday = last - timedelta(days=(last.weekday() + 1) % 7)
        if sunday > today + timedelta(days=7):
            return sunday
    raise AssertionError("unreachable")


def settle(bridge: Bridge) -> list[Any]:
    """Every delivery made so far is in the inbox (the emulator has sent them all) and none
    waits: re-deliveries of one body may have collapsed into one row."""
    return bridge.wait_applied(1)


def mirrored_section(bridge: Bridge, name: str = "Company") -> tuple[str, str]:
    """A company section and its Google calendar, created through the bridge."""
    section = bridge.add_section("company_calendar", 0, name)
    bridge.wait_applied(1)
    [calendar] = [c for c in bridge.calendars() if c["summary"] == name]
    return str(section["ID"]), str(calendar["id"])


def add_entry(
    bridge: Bridge, section_id: str, name: str, start: str, end: str, **fields: Any
) -> str:
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
        at(soon(10), "17:59"),
        at(soon(10), "18:59"),
        zone="Europe/Berlin",
        description="Numbers first",
        accessibility="free",
    )

    rows = settle(bridge)

    assert [r.state for r in rows if r.entry_id == entry_id] == [InboxState.DONE]
    event = event_of(bridge, calendar_id, entry_id)
    assert event["summary"] == "Quarterly review"
    assert event["status"] == "confirmed"
    assert event["start"]["timeZone"] == "Europe/Berlin"
    assert event["start"]["dateTime"].startswith(at(soon(10), "17:59"))
    assert event["end"]["dateTime"].startswith(at(soon(10), "18:59"))
    assert event["transparency"] == "transparent"
    assert event["description"].startswith("Numbers first")
    assert event["extendedProperties"]["private"]["b24_entry"] == entry_id
    inserts = [
        r
        for r in bridge.google_requests()
        if r["method"] == "POST" and r["path"].endswith("/events")
    ]
    assert len(inserts) == 1
    assert inserts[0]["query"].get("sendUpdates") == "none"
    [mapping] = entry_mappings(bridge)
    assert (mapping.entry_id, mapping.google_calendar_id) == (entry_id, calendar_id)
    assert mapping.state == EntryState.ACTIVE


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Tokyo"])
def test_an_all_day_entry_keeps_its_days_east_and_west_of_utc(bridge: Bridge, zone: str) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge, section_id, "Company holiday", str(soon(20)), str(soon(22)), zone=zone
    )

    settle(bridge)

    event = event_of(bridge, calendar_id, entry_id)
    assert event["start"] == {"date": str(soon(20))}
    assert event["end"] == {"date": str(soon(23))}  # Google's end is exclusive


def test_a_weekly_series_with_a_cancelled_and_a_moved_occurrence(bridge: Bridge) -> None:
    bridge.bitrix.set_locale(bridge.member_id, "de")
    section_id, calendar_id = mirrored_section(bridge)
    switch = next_spring_forward()  # a Sunday
    mondays = [switch - timedelta(days=13) + timedelta(weeks=n) for n in range(4)]
    series_id = add_entry(
        bridge,
        section_id,
        "Stand-up",
        at(mondays[0], "09:00"),
        at(mondays[0], "09:15"),
        zone="Europe/Berlin",
        rrule={"FREQ": "WEEKLY", "COUNT": 4, "BYDAY": ["MO"]},
    )
    settle(bridge)
    bridge.bitrix.cancel_occurrence(bridge.member_id, series_id, str(mondays[1]))
    edited = bridge.bitrix.edit_occurrence(
        bridge.member_id,
        series_id,
        str(mondays[2]),
        start=at(mondays[2], "11:00"),
        end=at(mondays[2], "11:30"),
        zone="Europe/Berlin",
        name="Stand-up (moved)",
    )

    rows = settle(bridge)

    assert all(r.state == InboxState.DONE for r in entry_rows(bridge)), [
        (r.event, r.state, r.outcome) for r in rows
    ]
    series_event = google_event_id(bridge.portal.key, series_id)
    shown = [
        (i["start"]["dateTime"][:16], i["summary"])
        for i in instances(bridge, calendar_id, series_event)
    ]
    # the second Monday cancelled, the third (after the clocks changed) moved to 11:00; the
    # wall-clock time stays 09:00 across the change
    assert shown == [
        (at(mondays[0], "09:00")[:16], "Stand-up"),
        (at(mondays[2], "11:00")[:16], "Stand-up (moved)"),
        (at(mondays[3], "09:00")[:16], "Stand-up"),
    ]
    assert str(edited["entry"]["ID"]) in {m.entry_id for m in entry_mappings(bridge)}


def test_update_move_and_delete_follow_the_entry(bridge: Bridge) -> None:
    first_id, first_calendar = mirrored_section(bridge, "Company")
    second = bridge.add_section("company_calendar", 0, "Company two")
    settle(bridge)
    [second_calendar] = [c["id"] for c in bridge.calendars() if c["summary"] == "Company two"]
    entry_id = add_entry(bridge, first_id, "Offsite", at(soon(40), "08:00"), at(soon(40), "16:00"))
    settle(bridge)

    bridge.bitrix.update_entry(bridge.member_id, entry_id, name="Offsite (Lisbon)")
    settle(bridge)
    assert event_of(bridge, first_calendar, entry_id)["summary"] == "Offsite (Lisbon)"

    bridge.bitrix.update_entry(bridge.member_id, entry_id, section=second["ID"])
    settle(bridge)
    moved = event_of(bridge, second_calendar, entry_id)
    assert moved["summary"] == "Offsite (Lisbon)" and moved["status"] == "confirmed"
    assert all(e["id"] != moved["id"] for e in events(bridge, first_calendar))

    bridge.bitrix.delete_entry(bridge.member_id, entry_id)
    settle(bridge)
    assert event_of(bridge, second_calendar, entry_id)["status"] == "cancelled"
    assert [m.state for m in entry_mappings(bridge)] == [EntryState.CLOSED]


def test_a_lost_insert_answer_makes_one_event(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    events_path = f"/calendar/v3/calendars/{calendar_id}/events"
    bridge.google_fault(method="POST", path=events_path, count=1, action="commit_then_drop")
    entry_id = add_entry(bridge, section_id, "Board", at(soon(41), "10:00"), at(soon(41), "11:00"))

    [row] = [r for r in settle(bridge) if r.entry_id == entry_id]

    assert row.state == InboxState.DONE, row.outcome
    mirrored = [e for e in events(bridge, calendar_id, show_deleted=True)]
    assert [e["summary"] for e in mirrored] == ["Board"]
    posts = [r for r in bridge.google_requests() if r["path"] == events_path]
    # the insert took effect but its answer was lost; the retry met 409 and put the body
    assert [(r["method"], r["status"]) for r in posts][:2] == [("POST", 200), ("POST", 409)]
    assert any(r["method"] == "PUT" for r in bridge.google_requests())


def test_duplicate_and_reordered_deliveries_make_one_event(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge, section_id, "Board", at(soon(42), "10:00"), at(soon(42), "11:00"), deliver=False
    )
    bridge.bitrix.update_entry(bridge.member_id, entry_id, name="Board meeting", deliver=False)

    def body(event: str, ts: str) -> str:
        return http_build_query(
            {
                "event": event,
                "data": {"id": entry_id},
                "ts": ts,
                "auth": {
                    "domain": bridge.portal.domain,
                    "member_id": bridge.portal.member_id,
                    "application_token": bridge.portal.application_token,
                },
            }
        )

    # the update arrives before the add, and twice
    for event, ts in [
        ("ONCALENDARENTRYUPDATE", "1767000002"),
        ("ONCALENDARENTRYADD", "1767000001"),
        ("ONCALENDARENTRYUPDATE", "1767000002"),
    ]:
        assert bridge.post_event(body(event, ts)).status_code == 200

    settle(bridge)

    mirrored = [e for e in events(bridge, calendar_id, show_deleted=True)]
    assert [(e["summary"], e["status"]) for e in mirrored] == [("Board meeting", "confirmed")]
    inserts = [r for r in bridge.google_requests() if r["method"] == "POST"]
    assert len([r for r in inserts if r["path"].endswith("/events")]) == 1


def test_entries_outside_mirrored_sections_and_synced_from_google_are_skipped(
    bridge: Bridge,
) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    bridge.add_group(99, "Not selected")
    hidden = bridge.add_section("group", 99, "Secret project")
    settle(bridge)
    add_entry(bridge, str(hidden["ID"]), "Secret", at(soon(42), "10:00"), at(soon(42), "11:00"))
    add_entry(
        bridge,
        section_id,
        "From Google",
        at(soon(43), "10:00"),
        at(soon(43), "11:00"),
        g_event_id="abc123",
    )

    settle(bridge)

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
        at(soon(44), "10:00"),
        at(soon(44), "11:00"),
        private=True,
        description="Dr. Who, room 4",
        location="Clinic",
    )

    settle(bridge)

    event = event_of(bridge, calendar_id, entry_id)
    assert event["summary"] == summary
    if summary == "Busy":
        assert "Dr. Who" not in event.get("description", "")
        assert not event.get("location")
    assert event.get("visibility") == "private"


def test_a_room_booking_names_the_room(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    room = bridge.bitrix.add_room(bridge.member_id, "Everest")
    settle(bridge)
    entry_id = add_entry(
        bridge,
        section_id,
        "Planning",
        at(soon(45), "10:00"),
        at(soon(45), "11:00"),
        room=room["ID"],
    )

    settle(bridge)

    assert event_of(bridge, calendar_id, entry_id)["location"] == "Everest"


def test_too_many_new_events_wait_for_the_owner_like_a_calendar_quota(make_bridge: Any) -> None:
    # Probes after 1.2 s, then 2.4 s (the defaults are 5 and 120 minutes).
    bridge: Bridge = make_bridge(
        google={"read_only_probe": {"first_minutes": 0.02, "max_minutes": 0.04}}
    )
    section_id, calendar_id = mirrored_section(bridge)
    # Google's "Calendar usage limits exceeded" after two new events within half a second
    bridge.google.event_creation_budget(2, window_s=0.5)
    try:
        ids = [
            add_entry(
                bridge, section_id, f"Talk {n}", at(soon(50), f"1{n}:00"), at(soon(50), f"1{n}:30")
            )
            for n in range(4)
        ]
        bridge.flush_deliveries()
        wait_for(lambda: refused(bridge) != [], 20, "Google's first refusal")
        bridge.google.read_only(bridge.subject, seconds=1)  # Google lifts the mode after 1 s
        rows = [r for r in settle(bridge) if r.entry_id is not None]
    finally:
        bridge.google.event_creation_budget(10_000, window_s=3600)

    # the refused entries waited for the owner's probe without spending an attempt
    assert [(r.state, r.attempts) for r in rows] == [(InboxState.DONE, 0)] * 4, [
        (r.state, r.outcome) for r in rows
    ]
    assert sorted(e["summary"] for e in events(bridge, calendar_id)) == [
        f"Talk {n}" for n in range(4)
    ]
    assert all(r["path"].endswith("/events") for r in refused(bridge))
    assert {m.entry_id for m in entry_mappings(bridge)} == set(ids)
    assert bridge.status_json()["google_owner"]["read_only"] is False


def refused(bridge: Bridge) -> list[dict[str, Any]]:
    return [r for r in bridge.google_requests() if r["status"] == 403]


def test_an_entry_waits_for_its_section_calendar_being_made(bridge: Bridge) -> None:
    bridge.google_fault(
        method="POST", path="/calendar/v3/calendars", count=1, action="error", status=500
    )
    section = bridge.add_section("company_calendar", 0, "Company")
    bridge.flush_deliveries()
    wait_for(  # the first insert failed: the section's mapping waits in `creating`
        lambda: [m.state.value for m in bridge.mappings()] == ["creating"], 20, "the failure"
    )
    entry_id = add_entry(
        bridge, str(section["ID"]), "Kick-off", at(soon(5), "09:00"), at(soon(5), "10:00")
    )

    wait_for(
        lambda: (
            all(r.state == InboxState.DONE for r in bridge.inbox()) and len(bridge.inbox()) == 2
        ),
        30,
        "both rows",
    )

    [calendar] = bridge.calendars()
    assert event_of(bridge, calendar["id"], entry_id)["summary"] == "Kick-off"
