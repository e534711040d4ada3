"""The mass-delete guard counts removals over a rolling window kept in the database: spread over
passes, workers, events and `bridge sync`, they add up; a small portal is protected too."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

from bridge.models import CalendarRemoval, InboxEvent, InboxState
from tests.e2e.conftest import Bridge

GUARD_OUTCOME = "mass-delete guard: would delete or archive"


def portal_with_rooms(
    make_bridge: Callable[..., Bridge], rooms: int, **mirror: Any
) -> tuple[Bridge, list[str]]:
    bridge = make_bridge(mirror={"reconcile_interval_minutes": 0, **mirror})
    ids = [bridge.add_section("company_calendar", 0, f"Room {i}")["ID"] for i in range(rooms)]
    rows = bridge.wait_applied(rooms)
    assert [r.state for r in rows] == [InboxState.DONE] * rooms, [r.outcome for r in rows]
    return bridge, ids


def rooms_left(bridge: Bridge) -> list[str]:
    return sorted(c["summary"] for c in bridge.calendars())


def delete_one_by_one(bridge: Bridge, ids: list[str]) -> list[InboxEvent]:
    """Each deletion is delivered and drained before the next: one pass each."""
    for section_id in ids:
        before = len(bridge.inbox())
        bridge.delete_section(section_id)
        bridge.wait_applied(before + 1)
    return bridge.inbox()[-len(ids) :]


def test_removals_spread_over_passes_add_up_and_trip_the_guard(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge, ids = portal_with_rooms(make_bridge, 10)
    bridge.start_worker()  # a second worker: the count is the database's, not a worker's

    rows = delete_one_by_one(bridge, ids[:8])  # a broken listing wipes 8 of 10, pass by pass

    states = [r.state for r in rows]
    assert states == [InboxState.DONE] * 3 + [InboxState.PARKED] * 5, [r.outcome for r in rows]
    assert all(GUARD_OUTCOME in (r.outcome or "") for r in rows[3:])
    assert "after 3 removed in the last 24 h, more than the 3 allowed" in (rows[3].outcome or "")
    assert rooms_left(bridge) == sorted(f"Room {i}" for i in range(3, 10))

    bridge.add_section("company_calendar", 0, "Lobby")  # everything but removals goes on
    [added] = bridge.wait_applied(len(rows) + 11)[-1:]
    assert added.state == InboxState.DONE, added.outcome
    assert "Lobby" in rooms_left(bridge)


@pytest.mark.parametrize("on_delete", ["delete", "archive"])
def test_a_small_portal_is_not_emptied(make_bridge: Callable[..., Bridge], on_delete: str) -> None:
    bridge, ids = portal_with_rooms(make_bridge, 5, on_delete=on_delete)
    for section_id in ids[:4]:
        bridge.delete_section(section_id, deliver=False)

    code, output = bridge.sync()

    assert code == 1, output
    assert "4 removal(s) held back: would delete or archive 4 of 5 calendars" in output
    assert rooms_left(bridge) == [f"Room {i}" for i in range(5)]  # none deleted, none archived
    assert "4 removal(s) held back" in bridge.status_text()


def test_a_hand_deletion_of_two_on_a_small_portal_is_applied(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge, ids = portal_with_rooms(make_bridge, 5)

    rows = delete_one_by_one(bridge, ids[:2])

    assert [r.state for r in rows] == [InboxState.DONE] * 2, [r.outcome for r in rows]
    assert rooms_left(bridge) == ["Room 2", "Room 3", "Room 4"]
    code, output = bridge.sync()
    assert code == 0, output
    assert "held back" not in output


def test_after_the_window_removals_go_through_again(make_bridge: Callable[..., Bridge]) -> None:
    window_hours = 0.003  # 10.8 s
    guard = {"window_hours": window_hours, "min_count": 1, "max_count": 1}
    bridge, ids = portal_with_rooms(make_bridge, 4, delete_guard=guard)

    first, second = delete_one_by_one(bridge, ids[:2])
    removed_at = time.monotonic()  # the first removal was recorded before this

    assert (first.state, second.state) == (InboxState.DONE, InboxState.PARKED), second.outcome
    assert "more than the 1 allowed per 0.003 h" in (second.outcome or "")
    assert rooms_left(bridge) == ["Room 1", "Room 2", "Room 3"]

    # The window passing is what is tested: a wall-clock wait until it has.
    time.sleep(max(0.0, removed_at + window_hours * 3600 + 0.5 - time.monotonic()))
    code, output = bridge.sync()

    assert code == 0, output
    assert rooms_left(bridge) == ["Room 2", "Room 3"]
    with Session(bridge.engine) as session:  # the removal past the window was pruned
        counted = session.exec(select(CalendarRemoval.section_id)).all()
    assert counted == [ids[1]]


def test_events_and_sync_share_the_count_and_force_still_counts(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge, ids = portal_with_rooms(make_bridge, 10)
    delete_one_by_one(bridge, ids[:2])
    for section_id in ids[2:4]:
        bridge.delete_section(section_id, deliver=False)

    code, output = bridge.sync()

    assert code == 1, output
    assert (
        "2 removal(s) held back: would delete or archive 2 of 8 calendars after 2 removed"
    ) in output
    assert len(rooms_left(bridge)) == 8

    code, output = bridge.sync(force=True)

    assert code == 0, output
    assert rooms_left(bridge) == sorted(f"Room {i}" for i in range(4, 10))

    [row] = delete_one_by_one(bridge, ids[4:5])  # the forced removals count as well

    assert row.state == InboxState.PARKED, row.outcome
    assert "1 of 6 calendars after 4 removed" in (row.outcome or "")
    assert len(rooms_left(bridge)) == 6
