"""Entries in the reconciliation (`bridge sync`, the worker's periodic run), end to end over HTTP:
hand edits and hand deletes in Google repaired, lost deliveries made up for, strays and entries
deleted without a delivery removed, a dry run that only lists, a backfill stopped half-way by
Google's usage limit and resumed without duplicates, and a retired section's entries closed."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from bridge.event_body import google_event_id
from bridge.harness import wait_for
from bridge.models import EntryState, PortalState
from tests.e2e.conftest import Bridge
from tests.e2e.test_entries import (
    add_entry,
    at,
    entry_mappings,
    event_of,
    events,
    mirrored_section,
    settle,
    soon,
)


def writes(bridge: Bridge) -> list[dict[str, Any]]:
    """Every Google call that could change something, batch parts included."""
    return [r for r in bridge.google_requests() if r["method"] != "GET"]


def event_inserts(bridge: Bridge) -> list[dict[str, Any]]:
    return [
        r
        for r in bridge.google_requests()
        if r["method"] == "POST" and r["path"].endswith("/events")
    ]


def backfilled_at(bridge: Bridge) -> Any:
    with Session(bridge.engine) as session:
        state = session.get(PortalState, bridge.portal.key)
        return state.entries_backfilled_at if state is not None else None


def test_a_hand_edit_in_google_is_repaired_by_sync(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(
        bridge,
        section_id,
        "Budget review",
        at(soon(12), "14:00"),
        at(soon(12), "15:00"),
        zone="Europe/Berlin",
        location="Room 4",
    )
    settle(bridge)
    event_id = google_event_id(bridge.portal.key, entry_id)
    bridge.google.patch_event(
        calendar_id,
        event_id,
        summary="Budget review (moved by hand)",
        location="Cafeteria",
        start={"dateTime": at(soon(12), "16:00") + "+00:00", "timeZone": "UTC"},
        end={"dateTime": at(soon(12), "17:00") + "+00:00", "timeZone": "UTC"},
        colorId="11",
    )

    code, output = bridge.sync()

    assert code == 0, output
    event = event_of(bridge, calendar_id, entry_id)
    assert (event["summary"], event["location"]) == ("Budget review", "Room 4")
    assert event["start"]["timeZone"] == "Europe/Berlin"
    assert event["start"]["dateTime"].startswith(at(soon(12), "14:00"))
    assert "colorId" not in event
    assert f"acme: entry {entry_id} 'Budget review': update event in {calendar_id}" in output
    # converged: the next run finds nothing to do for entries
    code, again = bridge.sync(dry_run=True)
    assert code == 0 and "entries" not in again, again


def test_an_event_deleted_by_hand_in_google_is_restored(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(bridge, section_id, "Retro", at(soon(13), "10:00"), at(soon(13), "11:00"))
    settle(bridge)
    bridge.google.delete_event(calendar_id, google_event_id(bridge.portal.key, entry_id))
    assert event_of(bridge, calendar_id, entry_id)["status"] == "cancelled"

    code, output = bridge.sync()

    assert code == 0, output
    shown = [(e["summary"], e["status"]) for e in events(bridge, calendar_id, show_deleted=True)]
    assert shown == [("Retro", "confirmed")]
    assert f"entry {entry_id} 'Retro': restore deleted event" in output
    [mapping] = entry_mappings(bridge)
    assert mapping.state == EntryState.ACTIVE


def test_entries_made_while_deliveries_were_lost_appear_after_sync(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    single = add_entry(
        bridge, section_id, "Launch", at(soon(5), "09:00"), at(soon(5), "10:00"), deliver=False
    )
    holiday = add_entry(bridge, section_id, "Holiday", str(soon(30)), str(soon(31)), deliver=False)
    series = add_entry(
        bridge,
        section_id,
        "Weekly",
        at(soon(7), "08:00"),
        at(soon(7), "08:30"),
        zone="Europe/Berlin",
        rrule={"FREQ": "WEEKLY", "COUNT": 3},
        deliver=False,
    )
    edited = bridge.bitrix.edit_occurrence(
        bridge.member_id,
        series,
        str(soon(14)),
        start=at(soon(14), "12:00"),
        end=at(soon(14), "12:30"),
        zone="Europe/Berlin",
        name="Weekly (later)",
        deliver=False,
    )
    assert events(bridge, calendar_id) == []

    code, output = bridge.sync()

    assert code == 0, output
    assert event_of(bridge, calendar_id, single)["summary"] == "Launch"
    assert event_of(bridge, calendar_id, holiday)["start"] == {"date": str(soon(30))}
    assert event_of(bridge, calendar_id, series)["recurrence"][0].startswith("RRULE:FREQ=WEEKLY")
    override = [e for e in events(bridge, calendar_id) if e.get("recurringEventId")]
    assert [e["summary"] for e in override] == ["Weekly (later)"]
    mapped = {m.entry_id: m.state for m in entry_mappings(bridge)}
    occurrence = str(edited["entry"]["ID"])
    assert mapped == {i: EntryState.ACTIVE for i in (single, holiday, series, occurrence)}
    assert "entries (backfill): 4 to create, 0 to update, 0 to delete, 0 to move" in output
    assert backfilled_at(bridge) is not None


def test_a_calendar_made_by_sync_takes_its_entries_without_being_listed(bridge: Bridge) -> None:
    """Only the bridge marks events, so a calendar it has just inserted holds none of them:
    its listing is skipped, while a calendar that existed before is listed."""
    _, existing = mirrored_section(bridge)
    new = bridge.add_section("company_calendar", 0, "Projects", deliver=False)
    entry_id = add_entry(
        bridge,
        str(new["ID"]),
        "Kick-off",
        at(soon(4), "09:00"),
        at(soon(4), "10:00"),
        deliver=False,
    )
    before = len(bridge.google_requests())

    code, output = bridge.sync()

    assert code == 0, output
    [made] = [c["id"] for c in bridge.calendars() if c["summary"] == "Projects"]
    assert event_of(bridge, made, entry_id)["summary"] == "Kick-off"
    listed = [
        r["path"]
        for r in bridge.google_requests()[before:]
        if r["method"] == "GET" and r["path"].endswith("/events")
    ]
    assert [path for path in listed if made in path] == []
    assert [path for path in listed if existing in path] != []


def test_a_stray_event_is_deleted_and_the_mirrored_ones_stay(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    kept = add_entry(bridge, section_id, "Kept", at(soon(8), "09:00"), at(soon(8), "10:00"))
    settle(bridge)
    stray_id = google_event_id(bridge.portal.key, "999999")
    clients = bridge.clients()
    try:  # an event the bridge made for an entry whose mapping was lost, then deleted in Bitrix24
        clients.events.insert_event(
            calendar_id,
            {
                "id": stray_id,
                "summary": "Gone long ago",
                "start": {"dateTime": at(soon(9), "09:00") + "Z"},
                "end": {"dateTime": at(soon(9), "10:00") + "Z"},
                "extendedProperties": {
                    "private": {"b24_portal": bridge.portal.key, "b24_entry": "999999"}
                },
            },
        )
    finally:
        clients.close()

    code, output = bridge.sync()

    assert code == 0, output
    shown = {e["id"]: e["status"] for e in events(bridge, calendar_id, show_deleted=True)}
    assert shown == {stray_id: "cancelled", google_event_id(bridge.portal.key, kept): "confirmed"}
    assert f"stray event {stray_id} (entry 999999) 'Gone long ago'" in output


def test_an_entry_deleted_while_its_delivery_was_lost_is_deleted_by_sync(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    gone = add_entry(bridge, section_id, "Cancelled", at(soon(15), "09:00"), at(soon(15), "10:00"))
    stays = add_entry(bridge, section_id, "Stays", at(soon(16), "09:00"), at(soon(16), "10:00"))
    settle(bridge)
    bridge.bitrix.delete_entry(bridge.member_id, gone, deliver=False)

    code, output = bridge.sync()

    assert code == 0, output
    assert event_of(bridge, calendar_id, gone)["status"] == "cancelled"
    assert event_of(bridge, calendar_id, stays)["status"] == "confirmed"
    states = {m.entry_id: m.state for m in entry_mappings(bridge)}
    assert states == {gone: EntryState.CLOSED, stays: EntryState.ACTIVE}
    assert "0 to create, 0 to update, 1 to delete, 0 to move" in output


def test_a_failed_listing_deletes_nothing(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    entry_id = add_entry(bridge, section_id, "Stays", at(soon(17), "09:00"), at(soon(17), "10:00"))
    settle(bridge)
    bridge.bitrix_fault(
        method="calendar.event.get", status=500, error="INTERNAL_SERVER_ERROR", description="Boom"
    )

    code, output = bridge.sync()

    assert code == 1
    assert "listing entries" in output
    assert "nothing judged missing, no owner after it reconciled" in output
    assert event_of(bridge, calendar_id, entry_id)["status"] == "confirmed"
    assert [m.state for m in entry_mappings(bridge)] == [EntryState.ACTIVE]


def test_dry_run_lists_entry_actions_and_changes_nothing(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    edited = add_entry(bridge, section_id, "Edited", at(soon(20), "09:00"), at(soon(20), "10:00"))
    settle(bridge)
    bridge.google.patch_event(
        calendar_id, google_event_id(bridge.portal.key, edited), summary="Edited by hand"
    )
    lost = add_entry(
        bridge, section_id, "Lost", at(soon(21), "09:00"), at(soon(21), "10:00"), deliver=False
    )
    before = len(writes(bridge))

    code, plan = bridge.sync(dry_run=True)

    assert code == 0, plan
    assert plan.strip().splitlines() == [
        f"acme: entry {edited} 'Edited': update event in {calendar_id}",
        f"acme: entry {lost} 'Lost': create event in {calendar_id}",
        "acme: 0 to create, 0 to adopt, 0 to update, 0 to delete or archive, 0 to forget;"
        " entries (backfill): 1 to create, 1 to update, 0 to delete, 0 to move"
        " (dry run: nothing changed)",
    ]
    assert len(writes(bridge)) == before
    assert event_of(bridge, calendar_id, edited)["summary"] == "Edited by hand"
    assert [m.entry_id for m in entry_mappings(bridge)] == [edited]
    assert backfilled_at(bridge) is None


def probe_due(bridge: Bridge) -> bool:
    owner = bridge.status_json()["google_owner"]
    return datetime.fromisoformat(owner["probe_at"]) <= datetime.now(UTC)


def test_a_backfill_stopped_half_way_resumes_without_duplicates(make_bridge: Any) -> None:
    # Google's read-only mode is probed after 0.6 s here (default: 5 minutes)
    bridge: Bridge = make_bridge(
        google={"read_only_probe": {"first_minutes": 0.01, "max_minutes": 0.02}}
    )
    sections = [mirrored_section(bridge, f"Team {n}") for n in range(3)]
    made: dict[str, str] = {}  # entry id → calendar id
    for n in range(120):
        section_id, calendar_id = sections[n % 3]
        day = soon(1 + n % 60)
        entry_id = add_entry(
            bridge, section_id, f"Entry {n}", at(day, "09:00"), at(day, "10:00"), deliver=False
        )
        made[entry_id] = calendar_id
    # Google's "Calendar usage limits exceeded" ends the first run after 50 new events
    bridge.google.event_creation_budget(50)
    try:
        code, first = bridge.sync()
        # the rest waits for the owner, as calendars do when Google makes it read-only
        assert code == 0 and "50 done, 0 failed; 70 left, no Google writes" in first, first
        assert backfilled_at(bridge) is None
        recorded = {m.entry_id for m in entry_mappings(bridge)}
        assert len(recorded) == 50
        bridge.google.event_creation_budget(10_000)
        bridge.google.read_only(bridge.subject, seconds=0)  # the cool-off is over
        assert "READ-ONLY" in bridge.status_text()  # the bridge holds the owner's writes …
        wait_for(  # … until its probe is due
            lambda: probe_due(bridge),
            10,
            "the owner's probe to be due",
        )
        inserts_before = len(event_inserts(bridge))

        code, second = bridge.sync()
    finally:
        bridge.google.event_creation_budget(10_000)

    assert code == 0, second
    assert "entries (backfill): 70 to create, 0 to update, 0 to delete, 0 to move" in second
    assert len(event_inserts(bridge)) - inserts_before == 70  # only what was missing
    per_entry = Counter(
        e["extendedProperties"]["private"]["b24_entry"]
        for _, calendar_id in sections
        for e in events(bridge, calendar_id, show_deleted=True)
    )
    assert per_entry == Counter(dict.fromkeys(made, 1))
    for entry_id, calendar_id in made.items():
        assert event_of(bridge, calendar_id, entry_id)["status"] == "confirmed"
    assert {m.entry_id for m in entry_mappings(bridge)} == set(made)
    assert backfilled_at(bridge) is not None
    code, again = bridge.sync(dry_run=True)
    assert "entries" not in again, again


def test_a_retired_section_closes_its_entry_mappings(bridge: Bridge) -> None:
    section_id, calendar_id = mirrored_section(bridge)
    add_entry(bridge, section_id, "One", at(soon(3), "09:00"), at(soon(3), "10:00"))
    add_entry(bridge, section_id, "Two", at(soon(4), "09:00"), at(soon(4), "10:00"))
    settle(bridge)
    assert [m.state for m in entry_mappings(bridge)] == [EntryState.ACTIVE] * 2

    bridge.delete_section(section_id)
    settle(bridge)

    assert [m.state for m in entry_mappings(bridge)] == [EntryState.CLOSED] * 2
    before = len(writes(bridge))
    code, output = bridge.sync()
    assert code == 0 and "entries" not in output, output
    # nothing is done to the events that went (or stay) with the retired calendar
    assert [r["path"] for r in writes(bridge)[before:] if calendar_id in r["path"]] == []


def test_entries_disabled_are_neither_listed_nor_touched(make_bridge: Any) -> None:
    bridge: Bridge = make_bridge(
        mirror={"groups": [12], "reconcile_interval_minutes": 0, "entries": {"enabled": False}}
    )
    section_id, calendar_id = mirrored_section(bridge)
    add_entry(bridge, section_id, "Hidden", at(soon(3), "09:00"), at(soon(3), "10:00"))
    settle(bridge)

    code, output = bridge.sync()

    assert code == 0, output
    assert events(bridge, calendar_id) == []
    assert not [r for r in bridge.google_requests() if r["path"].endswith("/events")]
