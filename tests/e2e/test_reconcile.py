"""Reconciliation repairs what no event told us about; the guard and purge keep it safe."""

from __future__ import annotations

import io
from collections.abc import Callable

from bridge.harness import wait_for
from bridge.operations import purge_portal
from tests.e2e.conftest import Bridge

CALENDARS = "/calendar/v3/calendars"


def summaries(bridge: Bridge) -> list[str]:
    return sorted(c["summary"] for c in bridge.calendars())


def test_lost_events_are_planned_by_dry_run_and_fixed_by_sync(bridge: Bridge) -> None:
    bridge.add_section("company_calendar", 0, "Kept")
    renamed = bridge.add_section("company_calendar", 0, "Old name")
    deleted = bridge.add_section("company_calendar", 0, "Deleted")
    bridge.wait_applied(3)
    bridge.add_section("company_calendar", 0, "Created silently", deliver=False)
    bridge.update_section(renamed["ID"], name="New name", deliver=False)
    bridge.delete_section(deleted["ID"], deliver=False)
    before = len([r for r in bridge.google_requests() if r["method"] != "GET"])

    code, plan = bridge.sync(dry_run=True)

    created = str(int(deleted["ID"]) + 1)
    assert code == 0, plan
    assert plan.strip().splitlines() == [
        f"acme: section {renamed['ID']} 'New name': update summary",
        f"acme: section {deleted['ID']}: delete calendar",
        f"acme: section {created} 'Created silently': create calendar",
        "acme: 1 to create, 0 to adopt, 1 to update, 1 to delete or archive, 0 to forget"
        " (dry run: nothing changed)",
    ]
    assert summaries(bridge) == ["Deleted", "Kept", "Old name"]
    assert len([r for r in bridge.google_requests() if r["method"] != "GET"]) == before

    code, output = bridge.sync()

    assert code == 0, output
    assert summaries(bridge) == ["Created silently", "Kept", "New name"]
    code, again = bridge.sync(dry_run=True)
    assert again.strip() == (
        "acme: 0 to create, 0 to adopt, 0 to update, 0 to delete or archive, 0 to forget"
        " (dry run: nothing changed)"
    )


def test_hand_made_changes_in_google_are_repaired(bridge: Bridge) -> None:
    bridge.add_section("company_calendar", 0, "Renamed by hand")
    bridge.add_section("company_calendar", 0, "Deleted by hand")
    bridge.wait_applied(2)
    by_name = {c["summary"]: c["id"] for c in bridge.calendars()}
    bridge.google.patch_calendar(by_name["Renamed by hand"], summary="Oops")
    bridge.google.delete_calendar(by_name["Deleted by hand"])

    code, output = bridge.sync()

    assert code == 0, output
    assert summaries(bridge) == ["Deleted by hand", "Renamed by hand"]
    recreated = {c["summary"]: c["id"] for c in bridge.calendars()}["Deleted by hand"]
    assert recreated != by_name["Deleted by hand"]
    assert {m.google_calendar_id for m in bridge.mappings()} == {
        c["id"] for c in bridge.calendars()
    }


def test_a_marked_calendar_without_a_mapping_is_adopted_not_duplicated(bridge: Bridge) -> None:
    bridge.add_section("resource", 0, "Van")
    bridge.wait_applied(1)
    [calendar] = bridge.calendars()
    with bridge.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM calendar_mapping")

    code, output = bridge.sync()

    assert code == 0, output
    assert "adopt" in output
    assert [c["id"] for c in bridge.calendars()] == [calendar["id"]]
    [mapping] = bridge.mappings()
    assert mapping.google_calendar_id == calendar["id"]


def test_the_periodic_run_repairs_without_a_command(make_bridge: Callable[..., Bridge]) -> None:
    bridge = make_bridge(mirror={"reconcile_interval_minutes": 0.01})
    bridge.add_section("company_calendar", 0, "Nobody told us", deliver=False)

    wait_for(lambda: summaries(bridge) == ["Nobody told us"], 20, "the periodic run")

    assert summaries(bridge) == ["Nobody told us"]
    assert bridge.inbox() == []


def test_the_mass_delete_guard_holds_back_removals_until_forced(bridge: Bridge) -> None:
    sections = [bridge.add_section("company_calendar", 0, f"Room {i}") for i in range(12)]
    bridge.wait_applied(12)
    for section in sections:
        bridge.delete_section(section["ID"], deliver=False)

    code, output = bridge.sync()

    assert code == 1
    assert "12 removal(s) held back: would delete or archive 12 of 12 calendars" in output
    assert len(bridge.calendars()) == 12

    code, output = bridge.sync(force=True)

    assert code == 0, output
    assert bridge.calendars() == []


def test_purge_removes_only_what_the_bridge_created(bridge: Bridge) -> None:
    bridge.add_section("company_calendar", 0, "Ours")
    bridge.add_section("resource", 0, "Ours too")
    bridge.wait_applied(2)
    clients = bridge.clients()
    theirs = clients.google.insert_calendar("Somebody else's", "made by hand", "UTC")
    clients.close()
    out = io.StringIO()

    dry = purge_portal(bridge.engine, bridge.portal, dry_run=True, assume_yes=False, out=out)
    refused = purge_portal(
        bridge.engine,
        bridge.portal,
        dry_run=False,
        assume_yes=False,
        out=out,
        answer=io.StringIO("y\n"),
    )

    assert (dry, refused) == (0, 2)
    assert len(bridge.calendars()) == 3

    code = purge_portal(bridge.engine, bridge.portal, dry_run=False, assume_yes=True, out=out)

    assert code == 0, out.getvalue()
    assert [c["id"] for c in bridge.calendars()] == [theirs]
    assert bridge.mappings() == []


def test_google_s_calendar_list_is_read_while_bitrix24_answers(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = make_bridge(worker=False)
    bridge.add_section("company_calendar", 0, "On a slow portal", deliver=False)
    bridge.bitrix_fault(method="batch", kind="delay", seconds=1.0, count=None)

    code, plan = bridge.sync(dry_run=True)

    assert code == 0, plan
    assert "'On a slow portal': create calendar" in plan
    asked = max(r["t"] for r in bridge.bitrix_requests() if r["method"] == "batch")
    [listed] = [r["t"] for r in bridge.google_requests() if r["path"].endswith("/calendarList")]
    # One after the other, the list would start once Bitrix24 answered, a second after it was
    # asked: the reconciliation would take the sum of the two reads, not the longer.
    assert listed < asked + 0.8


def test_a_reconciliation_creates_calendars_side_by_side_once_each_in_order(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = make_bridge(worker=False)
    names = [f"Room {n}" for n in range(1, 10)]
    for name in names:
        bridge.add_section("company_calendar", 0, name, deliver=False)
    # Every insert takes 0.5 s: inserts made one after the other arrive at least that far apart.
    bridge.google_fault(method="POST", path=CALENDARS, count=100, action="delay", seconds=0.5)
    code, plan = bridge.sync(dry_run=True)
    planned = [line.removesuffix(": create calendar") for line in plan.splitlines()[:-1]]

    code, output = bridge.sync()

    assert code == 0, output
    assert sorted(c["summary"] for c in bridge.calendars()) == names
    done = [line.partition(": create calendar: created ")[0] for line in output.splitlines()[:-1]]
    assert done == planned  # the outcomes in the plan's order
    arrived = sorted(
        r["t"] for r in bridge.google_requests() if (r["method"], r["path"]) == ("POST", CALENDARS)
    )
    assert len(arrived) == len(names)  # one insert per section
    # The first insert goes alone (a read-only owner would meet one write), then up to four at once.
    assert arrived[1] - arrived[0] >= 0.5
    assert max(sum(1 for t in arrived if s <= t < s + 0.4) for s in arrived) == 4
