"""plan_entry: one action per entry, from the entry, its mapping and the portal's scope."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from bridge.entries import Entry, parse_entry
from bridge.entry_plan import (
    EntryActionKind,
    EntryMappingState,
    EntryScope,
    MappedEntry,
    SkipReason,
    plan_entry,
)
from bridge.event_body import EntryOptions, Privacy, desired_event, google_event_id
from tests.entry_samples import all_day, rrule, timed

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
SCOPE = EntryScope(
    portal_key="acme",
    now=NOW,
    calendars={"4": "cal-team@group", "8": "cal-rooms@group"},
    google_synced=frozenset({"9"}),
    past_days=30,
    future_days=365,
)
EVENT_ID = google_event_id("acme", "100")


def entry(start: str = "2025-01-20 10:00", **fields: Any) -> Entry:
    return parse_entry(timed(start, entry_id="100", **fields))


def applied(
    current: Entry, calendar: str = "cal-team@group", scope: EntryScope = SCOPE
) -> MappedEntry:
    body = desired_event(scope.portal_key, current, scope.options, scope.rooms, names=scope.names)
    return MappedEntry("100", EntryMappingState.ACTIVE, calendar, body.event_id, body.fingerprint())


def test_new_entry_is_created_in_its_sections_calendar() -> None:
    action = plan_entry(SCOPE, "100", entry(), None)
    assert action.kind == EntryActionKind.CREATE
    assert (action.calendar_id, action.section_id, action.event_id) == (
        "cal-team@group",
        "4",
        EVENT_ID,
    )
    assert action.body is not None and action.body.summary == "Planning"
    assert action.describe("acme") == "acme: entry 100 'Planning': create event in cal-team@group"


def test_applied_and_unchanged_is_skipped() -> None:
    current = entry()
    action = plan_entry(SCOPE, "100", current, applied(current))
    assert (action.kind, action.reason) == (EntryActionKind.SKIP, SkipReason.UNCHANGED)


def test_changed_entry_is_updated() -> None:
    before = entry()
    action = plan_entry(SCOPE, "100", entry(NAME="Planning (moved)"), applied(before))
    assert action.kind == EntryActionKind.UPDATE
    assert action.body is not None and action.body.summary == "Planning (moved)"
    assert (action.calendar_id, action.event_id) == ("cal-team@group", EVENT_ID)


def test_changed_options_update_without_a_new_version() -> None:
    current = entry()
    busy = EntryScope("acme", NOW, SCOPE.calendars, EntryOptions(privacy=Privacy.BUSY_ONLY))
    action = plan_entry(busy, "100", current, applied(current))
    assert action.kind == EntryActionKind.UPDATE
    assert action.body is not None and action.body.summary == "Busy"


def test_moved_to_another_mirrored_section_moves() -> None:
    before = entry()
    action = plan_entry(SCOPE, "100", entry(SECTION_ID="8"), applied(before))
    assert action.kind == EntryActionKind.MOVE
    assert (action.from_calendar, action.calendar_id) == ("cal-team@group", "cal-rooms@group")
    assert action.event_id == EVENT_ID
    assert action.body_changed is False  # the section is not part of the body


def test_moved_and_renamed_moves_then_updates() -> None:
    before = entry()
    action = plan_entry(SCOPE, "100", entry(SECTION_ID="8", NAME="Renamed"), applied(before))
    assert action.kind == EntryActionKind.MOVE and action.body_changed is True


def test_moved_to_a_section_that_is_not_mirrored_deletes() -> None:
    before = entry()
    action = plan_entry(SCOPE, "100", entry(SECTION_ID="77"), applied(before))
    assert action.kind == EntryActionKind.DELETE
    assert (action.calendar_id, action.event_id) == ("cal-team@group", EVENT_ID)


def test_entry_of_a_section_that_is_not_mirrored_is_skipped() -> None:
    action = plan_entry(SCOPE, "100", entry(SECTION_ID="77"), None)
    assert (action.kind, action.reason) == (EntryActionKind.SKIP, SkipReason.NOT_MIRRORED_SECTION)


@pytest.mark.parametrize(
    "fields",
    [{"G_EVENT_ID": "abc123@google.com"}, {"SECTION_ID": "9"}],  # synced entry; synced section
)
def test_synced_from_google_is_never_mirrored(fields: dict[str, Any]) -> None:
    scope = EntryScope(
        "acme", NOW, {**SCOPE.calendars, "9": "cal-g@group"}, google_synced=frozenset({"9"})
    )
    action = plan_entry(scope, "100", entry(**fields), None)
    assert (action.kind, action.reason) == (EntryActionKind.SKIP, SkipReason.SYNCED_FROM_GOOGLE)


def test_mirrored_entry_that_turns_out_synced_from_google_is_deleted() -> None:
    before = entry()
    action = plan_entry(SCOPE, "100", entry(G_EVENT_ID="abc@google.com"), applied(before))
    assert action.kind == EntryActionKind.DELETE


def test_gone_entry_is_deleted_once() -> None:
    mapping = applied(entry())
    action = plan_entry(SCOPE, "100", None, mapping)
    assert action.kind == EntryActionKind.DELETE
    assert (action.calendar_id, action.event_id) == ("cal-team@group", EVENT_ID)
    closed = MappedEntry("100", EntryMappingState.CLOSED, "cal-team@group", EVENT_ID)
    again = plan_entry(SCOPE, "100", None, closed)
    assert (again.kind, again.reason) == (EntryActionKind.SKIP, SkipReason.GONE)
    never = plan_entry(SCOPE, "100", None, None)
    assert (never.kind, never.reason) == (EntryActionKind.SKIP, SkipReason.GONE)


def test_entry_marked_deleted_counts_as_gone() -> None:
    action = plan_entry(SCOPE, "100", entry(DELETED="Y"), applied(entry()))
    assert action.kind == EntryActionKind.DELETE


def test_recreated_after_deletion_revives_the_cancelled_event() -> None:
    closed = MappedEntry("100", EntryMappingState.CLOSED, "cal-team@group", EVENT_ID, "old")
    action = plan_entry(SCOPE, "100", entry(), closed)
    assert action.kind == EntryActionKind.REVIVE
    assert (action.calendar_id, action.event_id) == ("cal-team@group", EVENT_ID)


def test_recreated_in_another_calendar_is_created_there() -> None:
    closed = MappedEntry("100", EntryMappingState.CLOSED, "cal-rooms@group", EVENT_ID, "old")
    action = plan_entry(SCOPE, "100", entry(), closed)
    assert (action.kind, action.calendar_id) == (EntryActionKind.CREATE, "cal-team@group")


@pytest.mark.parametrize(
    ("start", "inside"),
    [
        ("2024-12-10 10:00", False),  # ended 36 days ago
        ("2024-12-17 10:00", True),  # 29 days ago
        ("2026-01-14 10:00", True),  # 364 days ahead
        ("2026-01-16 10:00", False),  # 366 days ahead
    ],
)
def test_window_for_single_timed_entries(start: str, inside: bool) -> None:
    action = plan_entry(SCOPE, "100", entry(start), None)
    if inside:
        assert action.kind == EntryActionKind.CREATE
    else:
        assert (action.kind, action.reason) == (EntryActionKind.SKIP, SkipReason.OUTSIDE_WINDOW)


def test_window_counts_an_all_day_entry_through_its_last_day() -> None:
    # Window starts 2024-12-16 12:00 UTC: an all-day entry on 16 December still overlaps it.
    on_the_edge = parse_entry(all_day("2024-12-16", entry_id="100"))
    assert plan_entry(SCOPE, "100", on_the_edge, None).kind == EntryActionKind.CREATE
    before = parse_entry(all_day("2024-12-15", entry_id="100"))
    assert plan_entry(SCOPE, "100", before, None).reason == SkipReason.OUTSIDE_WINDOW
    # A long one that started before the window and ends inside it.
    long = parse_entry(all_day("2024-11-01", "2024-12-20", entry_id="100"))
    assert plan_entry(SCOPE, "100", long, None).kind == EntryActionKind.CREATE


def test_series_are_mirrored_whole_whatever_their_dates() -> None:
    old_series = entry("2020-01-06 09:00", RRULE=rrule("WEEKLY", until="2020-06-30"))
    assert plan_entry(SCOPE, "100", old_series, None).kind == EntryActionKind.CREATE


def test_mapped_entry_outside_the_window_is_still_kept_up_to_date() -> None:
    before = entry("2024-12-01 10:00")
    action = plan_entry(SCOPE, "100", entry("2024-12-01 10:00", NAME="late fix"), applied(before))
    assert action.kind == EntryActionKind.UPDATE


# --- edited occurrences ---------------------------------------------------------------------------

SERIES = parse_entry(timed("2025-01-06 09:00", entry_id="500", RRULE=rrule("WEEKLY", days=("MO",))))


def occurrence(**fields: Any) -> Entry:
    raw = timed(
        "2025-01-14 11:00",
        entry_id="600",
        RECURRENCE_ID="500",
        RELATIONS={"COMMENT_XML_ID": "EVENT_500_01/13/2025"},
        SECTION_ID="77",  # even in another section, it lives in its series' calendar
    )
    raw.update(fields)
    return parse_entry(raw)


def test_edited_occurrence_is_created_as_the_series_instance() -> None:
    action = plan_entry(SCOPE, "600", occurrence(), None, series=SERIES)
    assert action.kind == EntryActionKind.CREATE
    assert (action.calendar_id, action.section_id) == ("cal-team@group", "4")  # the series'
    assert action.event_id == google_event_id("acme", "500") + "_20250113T080000Z"
    assert action.body is not None
    assert action.body.recurring_event_id == google_event_id("acme", "500")


def test_edited_occurrence_far_in_the_past_is_still_mirrored() -> None:
    old_series = parse_entry(
        timed("2020-01-06 09:00", entry_id="500", RRULE=rrule("WEEKLY", days=("MO",)))
    )
    old = occurrence(
        DATE_FROM_TS_UTC="1578906000",  # 2020-01-13 09:00 UTC
        DATE_TO_TS_UTC="1578909600",
        DATE_FROM="01/13/2020 10:00:00 am",
        DATE_TO="01/13/2020 11:00:00 am",
        RELATIONS={"COMMENT_XML_ID": "EVENT_500_01/13/2020"},
    )
    assert plan_entry(SCOPE, "600", old, None, series=old_series).kind == EntryActionKind.CREATE


def test_edited_occurrence_without_its_series_waits_and_never_deletes() -> None:
    action = plan_entry(SCOPE, "600", occurrence(), None)
    assert (action.kind, action.reason) == (EntryActionKind.SKIP, SkipReason.SERIES_UNKNOWN)
    mapping = MappedEntry("600", EntryMappingState.ACTIVE, "cal-team@group", "x_1", "f")
    kept = plan_entry(SCOPE, "600", occurrence(), mapping)
    assert (kept.kind, kept.reason) == (EntryActionKind.SKIP, SkipReason.SERIES_UNKNOWN)


def test_edited_occurrence_of_a_series_that_is_not_mirrored_is_skipped() -> None:
    unmirrored = parse_entry(
        timed("2025-01-06 09:00", entry_id="500", section_id="77", RRULE=rrule("WEEKLY"))
    )
    action = plan_entry(SCOPE, "600", occurrence(), None, series=unmirrored)
    assert action.reason == SkipReason.NOT_MIRRORED_SECTION


def test_deleted_edited_occurrence_deletes_its_instance() -> None:
    instance = google_event_id("acme", "500") + "_20250113T080000Z"
    mapping = MappedEntry("600", EntryMappingState.ACTIVE, "cal-team@group", instance, "f")
    action = plan_entry(SCOPE, "600", None, mapping, series=SERIES)
    assert (action.kind, action.event_id) == (EntryActionKind.DELETE, instance)


def test_series_with_an_overridden_day_is_planned_without_that_exdate() -> None:
    series = parse_entry(
        timed(
            "2025-01-06 09:00",
            entry_id="100",
            RRULE=rrule("WEEKLY", days=("MO",)),
            EXDATE="01/13/2025;01/20/2025",
        )
    )
    action = plan_entry(SCOPE, "100", series, None, overridden={date(2025, 1, 13)})
    assert action.body is not None
    assert action.body.recurrence == (
        "RRULE:FREQ=WEEKLY;BYDAY=MO",
        "EXDATE;TZID=Europe/Berlin:20250120T090000",
    )


def as_google_shows(current: Entry) -> dict[str, Any]:
    """The event as Google lists it: the body written, its times with a UTC offset."""
    event = desired_event("acme", current, SCOPE.options).to_api()
    for key in ("start", "end"):
        moment = datetime.fromisoformat(event[key]["dateTime"]).astimezone(UTC)
        event[key] = {**event[key], "dateTime": moment.isoformat().replace("+00:00", "Z")}
    return {**event, "etag": '"1"', "htmlLink": "https://calendar.example/event"}


def test_a_reconciliation_that_finds_the_event_as_applied_skips_it() -> None:
    current = entry()
    listed = {EVENT_ID: as_google_shows(current)}
    action = plan_entry(SCOPE, "100", current, applied(current), listed=listed)
    assert (action.kind, action.reason) == (EntryActionKind.SKIP, SkipReason.UNCHANGED)


def test_a_hand_edit_in_google_is_put_again() -> None:
    current = entry()
    edited = {**as_google_shows(current), "summary": "Renamed by hand"}
    action = plan_entry(SCOPE, "100", current, applied(current), listed={EVENT_ID: edited})
    assert action.kind == EntryActionKind.UPDATE
    assert action.body is not None and action.body.summary == "Planning"


def test_an_event_missing_from_google_is_restored() -> None:
    current = entry()
    action = plan_entry(SCOPE, "100", current, applied(current), listed={})
    assert (action.kind, action.event_id) == (EntryActionKind.REVIVE, EVENT_ID)


def test_the_event_path_trusts_the_mapping() -> None:
    current = entry()
    action = plan_entry(SCOPE, "100", current, applied(current), listed=None)
    assert action.kind == EntryActionKind.SKIP
