"""The planner, case by case: each section state against each mapping state
and `on_delete` policy, without I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.calendar_state import Change, archived_state, desired_state
from bridge.calendars import CalendarListEntry, MappingState
from bridge.config import OnDelete, PortalConfig
from bridge.mirror import Action, ActionKind, MappedCalendar, plan_portal, plan_section
from tests.test_mirror import ACME, NONCE, section

POLICIES = list(OnDelete)


def policy(on_delete: OnDelete) -> PortalConfig:
    return ACME.model_copy(
        update={"mirror": ACME.mirror.model_copy(update={"on_delete": on_delete})}
    )


def known(state: MappingState, calendar_id: str | None = "cal-7", **applied: str) -> MappedCalendar:
    """Section 7's mapping; what was last applied is section 7 as `section("7")` renders it."""
    state_applied = replace(desired_state(ACME, section("7"), NONCE), **applied)
    if state == MappingState.ARCHIVED:
        state_applied = archived_state(state_applied)
    applied_or_none = state_applied if calendar_id else None
    return MappedCalendar("7", state, NONCE, calendar_id, applied_or_none, "company_calendar", "0")


def listed(view_of: MappedCalendar) -> CalendarListEntry:
    """What Google shows for the mapped calendar: exactly what was last applied."""
    assert view_of.calendar_id is not None and view_of.applied is not None
    shown = view_of.applied
    return CalendarListEntry(
        view_of.calendar_id,
        shown.summary,
        shown.description,
        shown.time_zone,
        shown.background,
        shown.foreground,
        shown.hidden,
    )


# Section gone (None) or present, against each mapping state, under each policy.
@pytest.mark.parametrize("on_delete", POLICIES)
def test_a_gone_section_without_a_mapping_needs_nothing(on_delete: OnDelete) -> None:
    assert plan_section(policy(on_delete), "7", None, None) is None


@pytest.mark.parametrize("on_delete", POLICIES)
@pytest.mark.parametrize(
    ("state", "calendar_id"),
    [(MappingState.ACTIVE, "cal-7"), (MappingState.CREATING, None)],
)
def test_a_gone_section_with_a_live_mapping_is_retired_by_the_policy(
    on_delete: OnDelete, state: MappingState, calendar_id: str | None
) -> None:
    mapping = known(state, calendar_id)

    action = plan_section(policy(on_delete), "7", None, mapping)

    assert action == Action(
        ActionKind.RETIRE, "7", mapping=mapping, calendar_id=calendar_id, on_delete=on_delete
    )
    assert action.removes_calendar == (on_delete in (OnDelete.DELETE, OnDelete.ARCHIVE))
    verb = {
        OnDelete.DELETE: "delete calendar",
        OnDelete.ARCHIVE: "archive calendar",
        OnDelete.KEEP: "keep calendar, forget it",
    }[on_delete]
    assert action.describe("acme") == f"acme: section 7: {verb}"


@pytest.mark.parametrize("on_delete", POLICIES)
def test_a_gone_section_already_archived_needs_nothing(on_delete: OnDelete) -> None:
    assert plan_section(policy(on_delete), "7", None, known(MappingState.ARCHIVED)) is None


@pytest.mark.parametrize("on_delete", POLICIES)
def test_a_new_section_is_created_or_adopts_its_marked_calendar(on_delete: OnDelete) -> None:
    portal = policy(on_delete)
    marked = listed(known(MappingState.ACTIVE, "made-earlier"))

    created = plan_section(portal, "7", section("7"), None)
    adopted = plan_section(portal, "7", section("7"), None, {}, [marked])

    assert created == Action(ActionKind.CREATE, "7", section=section("7"))
    assert created.describe("acme") == "acme: section 7 'Room 7': create calendar"
    assert adopted == Action(
        ActionKind.ADOPT, "7", section=section("7"), calendar_id="made-earlier"
    )
    assert adopted.describe("acme") == "acme: section 7 'Room 7': adopt calendar made-earlier"
    assert not created.removes_calendar and not adopted.removes_calendar


@pytest.mark.parametrize("on_delete", POLICIES)
@pytest.mark.parametrize("calendar_id", [None, "cal-7"])
def test_an_unfinished_create_is_created_again(
    on_delete: OnDelete, calendar_id: str | None
) -> None:
    mapping = known(MappingState.CREATING, calendar_id)

    action = plan_section(policy(on_delete), "7", section("7"), mapping)

    assert action == Action(ActionKind.CREATE, "7", section=section("7"), mapping=mapping)


@pytest.mark.parametrize("on_delete", POLICIES)
@pytest.mark.parametrize("read_google", [False, True])
def test_an_active_calendar_that_matches_needs_nothing(
    on_delete: OnDelete, read_google: bool
) -> None:
    mapping = known(MappingState.ACTIVE)
    google = {"cal-7": listed(mapping)} if read_google else None

    assert plan_section(policy(on_delete), "7", section("7"), mapping, google) is None


@pytest.mark.parametrize("on_delete", POLICIES)
def test_an_active_calendar_that_differs_is_updated_with_what_differs(on_delete: OnDelete) -> None:
    mapping = known(MappingState.ACTIVE)
    renamed = replace(section("7"), name="Room 7b", color="#AA0000")

    action = plan_section(policy(on_delete), "7", renamed, mapping)

    assert action is not None and action.kind == ActionKind.UPDATE
    assert action.changes == (Change.SUMMARY, Change.COLOUR)
    assert action.calendar_id == "cal-7"
    assert action.describe("acme") == "acme: section 7 'Room 7b': update summary, colour"


def test_a_change_made_in_google_is_seen_only_when_google_was_read() -> None:
    mapping = known(MappingState.ACTIVE)
    renamed_in_google = replace(listed(mapping), summary="Someone's name", hidden=True)

    trusted = plan_section(ACME, "7", section("7"), mapping)
    read = plan_section(ACME, "7", section("7"), mapping, {"cal-7": renamed_in_google})

    assert trusted is None
    assert read is not None and read.changes == (Change.SUMMARY, Change.HIDDEN)


@pytest.mark.parametrize("on_delete", POLICIES)
def test_an_active_calendar_gone_from_google_is_recreated(on_delete: OnDelete) -> None:
    mapping = known(MappingState.ACTIVE)

    action = plan_section(policy(on_delete), "7", section("7"), mapping, {})

    assert action == Action(
        ActionKind.RECREATE, "7", section=section("7"), mapping=mapping, calendar_id="cal-7"
    )
    assert (
        action.describe("acme") == "acme: section 7 'Room 7': recreate calendar (gone from Google)"
    )


@pytest.mark.parametrize("on_delete", POLICIES)
def test_a_section_back_in_the_selection_unarchives_its_calendar(on_delete: OnDelete) -> None:
    action = plan_section(policy(on_delete), "7", section("7"), known(MappingState.ARCHIVED))

    assert action is not None and action.kind == ActionKind.UPDATE
    assert action.changes == (Change.UNARCHIVE, Change.SUMMARY, Change.HIDDEN)
    assert action.describe("acme") == "acme: section 7 'Room 7': update unarchive, summary, hidden"


def test_an_owner_left_unnamed_keeps_the_calendars_summary() -> None:
    mapping = known(MappingState.ACTIVE, summary="Anna's calendar")
    unnamed = replace(section("7"), name="", owner_unnamed=True)

    assert plan_section(ACME, "7", unnamed, mapping) is None


def test_a_portal_plan_is_in_section_order_and_skips_what_needs_nothing() -> None:
    active = known(MappingState.ACTIVE)
    gone = replace(known(MappingState.ACTIVE, "cal-12"), section_id="12")
    sections = {"7": section("7"), "30": section("30"), "4": section("4")}

    actions = plan_portal(ACME, sections, [active, gone], [listed(active)])

    assert [(a.kind, a.section_id) for a in actions] == [
        (ActionKind.CREATE, "4"),
        (ActionKind.RETIRE, "12"),
        (ActionKind.CREATE, "30"),
    ]
