"""A section's whole life in Google: update, delete, every type, sharing, loop prevention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bridge.models import InboxState, MappingState
from tests.e2e.conftest import Bridge

EVERY_TYPE = {
    "company": True,
    "resources": True,
    "locations": True,
    "reconcile_interval_minutes": 0,
}


def writes(bridge: Bridge, since: int) -> list[dict[str, Any]]:
    """Google requests that change something, made after the first `since` requests."""
    return [
        r
        for r in bridge.google_requests()[since:]
        if r["method"] != "GET" and r["path"] != "/token"
    ]


def test_rename_recolour_and_description_each_make_one_patch(bridge: Bridge) -> None:
    section = bridge.add_section(
        "company_calendar", 0, "Holidays", color="#9cbeee", text_color="#283000"
    )
    bridge.wait_applied(1)
    [calendar] = bridge.calendars()
    entry = bridge.list_entry(calendar["id"])
    assert (entry["backgroundColor"], entry["foregroundColor"]) == ("#9cbeee", "#283000")

    steps: list[tuple[dict[str, str], str]] = [
        ({"name": "Public holidays"}, "/calendar/v3/calendars/"),
        ({"color": "#f4c542"}, "/calendar/v3/users/me/calendarList/"),
        ({"description": "Days the office is closed"}, "/calendar/v3/calendars/"),
    ]
    for rows, (change, path) in enumerate(steps, start=2):
        before = len(bridge.google_requests())
        bridge.update_section(section["ID"], **change)
        bridge.wait_applied(rows)
        [patch] = writes(bridge, before)
        assert (patch["method"], patch["path"].startswith(path)) == ("PATCH", True), patch

    [calendar] = bridge.calendars()
    assert calendar["summary"] == "Public holidays"
    assert calendar["description"].startswith(
        "Days the office is closed\n\n[bx24-bridge portal=acme"
    )
    entry = bridge.list_entry(calendar["id"])
    assert entry["backgroundColor"] == "#f4c542"

    before = len(bridge.google_requests())
    bridge.update_section(section["ID"], name="Public holidays")
    [*_, last] = bridge.wait_applied(5)
    assert last.state == InboxState.DONE and "up to date" in (last.outcome or "")
    assert bridge.google_requests()[before:] == []


@pytest.mark.parametrize("policy", ["delete", "archive", "keep"])
def test_delete_applies_the_on_delete_policy(
    make_bridge: Callable[..., Bridge], policy: str
) -> None:
    share = [{"scope": "domain", "value": "acme.example", "role": "reader"}]
    bridge = make_bridge(
        mirror={"on_delete": policy, "share": share, "reconcile_interval_minutes": 0}
    )
    section = bridge.add_section("company_calendar", 0, "Offsite", color="#9cbeee")
    bridge.wait_applied(1)
    [calendar] = bridge.calendars()
    assert bridge.acl(calendar["id"])["domain:acme.example"] == "reader"

    bridge.delete_section(section["ID"])
    rows = bridge.wait_applied(2)

    assert rows[-1].state == InboxState.DONE, rows[-1].outcome
    remaining = bridge.calendars()
    if policy == "delete":
        assert remaining == [] and bridge.mappings() == []
    elif policy == "archive":
        [archived] = remaining
        assert archived["summary"] == "[archived] Offsite"
        assert "domain:acme.example" not in bridge.acl(archived["id"])
        assert bridge.list_entry(archived["id"])["hidden"] is True
        [mapping] = bridge.mappings()
        assert mapping.state == MappingState.ARCHIVED
    else:
        assert [c["summary"] for c in remaining] == ["Offsite"]
        assert bridge.mappings() == []


def test_every_section_type_and_all_owners_over_several_pages(
    make_bridge: Callable[..., Bridge],
) -> None:
    mirror = {**EVERY_TYPE, "groups": "all", "users": "all", "name": "{owner_name}: {name}"}
    bridge = make_bridge(mirror=mirror)
    bridge.add_owners("groups", [{"ID": str(g), "NAME": f"Team {g}"} for g in range(1, 61)])
    bridge.add_owners(
        "users",
        [
            {"ID": str(u), "NAME": "Ann", "LAST_NAME": f"Lee{u}", "ACTIVE": True}
            for u in range(2, 62)
        ],
    )
    bridge.add_section("company_calendar", 0, "Holidays")
    bridge.add_section("location", 0, "Room Everest")
    bridge.add_section("resource", 0, "Projector")
    bridge.add_section("group", 57, "Sprint")
    bridge.add_section("user", 58, "Vacations")
    before = len(bridge.bitrix_requests())

    bridge.wait_applied(5)

    assert sorted(c["summary"] for c in bridge.calendars()) == [
        "Ann Lee58: Vacations",
        "Company: Holidays",
        "Meeting rooms: Room Everest",
        "Resources: Projector",
        "Team 57: Sprint",
    ]
    types = sorted(m.section_type for m in bridge.mappings())
    assert types == ["company_calendar", "group", "location", "resource", "user"]
    # Two listing batches (first pages, then the rest) and section reads of 120+ owners.
    assert len(bridge.bitrix_requests()) - before <= 12


def test_sharing_is_applied_and_hand_added_rules_are_left_alone(
    make_bridge: Callable[..., Bridge],
) -> None:
    share = [
        {"scope": "domain", "value": "acme.example", "role": "reader"},
        {"scope": "user", "value": "boss@acme.example", "role": "writer"},
    ]
    bridge = make_bridge(mirror={"share": share, "reconcile_interval_minutes": 0})
    bridge.add_section("company_calendar", 0, "Board")
    bridge.wait_applied(1)
    [calendar] = bridge.calendars()
    acl = bridge.acl(calendar["id"])
    assert acl["domain:acme.example"] == "reader" and acl["user:boss@acme.example"] == "writer"
    assert {
        r["sendNotifications"] for r in calendar["acl"] if r["id"] != f"user:{bridge.subject}"
    } == {False}

    clients = bridge.clients()
    clients.google.insert_acl(calendar["id"], "user:guest@other.example", "reader", notify=False)
    smaller = bridge.portal.model_copy(
        update={
            "mirror": bridge.portal.mirror.model_copy(
                update={"share": bridge.portal.mirror.share[:1]}
            )
        }
    )
    code, output = bridge.sync(smaller)

    assert code == 0, output
    acl = bridge.acl(calendar["id"])
    assert "user:boss@acme.example" not in acl
    assert acl["domain:acme.example"] == "reader"
    assert acl["user:guest@other.example"] == "reader"
    clients.close()


def test_a_section_bitrix24_already_syncs_with_google_is_skipped(bridge: Bridge) -> None:
    bridge.add_section(
        "company_calendar", 0, "Synced", gapi_calendar_id="abc@group.calendar.google.com"
    )
    bridge.add_section("company_calendar", 0, "Two-way", external_type="google")

    rows = bridge.wait_applied(2)

    assert [r.state for r in rows] == [InboxState.SKIPPED] * 2
    assert all("already syncs" in (r.outcome or "") for r in rows)
    assert "EXTERNAL_TYPE google;" in (rows[1].outcome or "")
    assert bridge.calendars() == []
