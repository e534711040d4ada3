"""Real portals filter listings by rights, sync sections elsewhere and grant chosen scopes."""

from __future__ import annotations

import io
from collections.abc import Callable

from bridge.models import InboxState, MappingState
from bridge.probes import check_portals
from tests.e2e.conftest import Bridge

ALL_GROUPS = {"groups": "all", "reconcile_interval_minutes": 0}


def summaries(bridge: Bridge) -> list[str]:
    return sorted(c["summary"] for c in bridge.calendars())


def test_a_secret_group_and_an_extranet_user_are_mirrored(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = make_bridge(mirror={**ALL_GROUPS, "users": "all"})
    bridge.add_owners("groups", [{"ID": "12", "NAME": "Board", "VISIBLE": "N", "OWNER_ID": "7"}])
    bridge.add_owners("users", [{"ID": "9", "NAME": "Guest", "USER_TYPE": "extranet"}])
    bridge.add_section("group", 12, "Secret plans")
    bridge.add_section("user", 9, "Guest diary")

    rows = bridge.wait_applied(2)

    assert [r.state for r in rows] == [InboxState.DONE] * 2, [r.outcome for r in rows]
    assert summaries(bridge) == ["Guest diary", "Secret plans"]


def test_a_section_hidden_by_rights_is_kept_and_a_deleted_one_retired(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = make_bridge(mirror=ALL_GROUPS)
    bridge.add_owners("groups", [{"ID": "12", "NAME": "Board", "VISIBLE": "N", "OWNER_ID": "7"}])
    kept = bridge.add_section("group", 12, "Secret plans")
    deleted = bridge.add_section("group", 12, "Old plans")
    silently = bridge.add_section("group", 12, "Older plans")
    bridge.wait_applied(3)
    assert summaries(bridge) == ["Old plans", "Older plans", "Secret plans"]

    bridge.patch_portal(webhook_admin=False)  # the group drops out of the listing

    bridge.update_section(kept["ID"], name="Secret plans 2026")
    bridge.delete_section(deleted["ID"])
    rows = bridge.wait_applied(5)

    assert [r.state for r in rows[3:]] == [InboxState.DONE] * 2, [r.outcome for r in rows]
    assert summaries(bridge) == ["Older plans", "Secret plans 2026"]

    code, output = bridge.sync()

    assert code == 0, output
    assert summaries(bridge) == ["Older plans", "Secret plans 2026"]

    bridge.delete_section(silently["ID"], deliver=False)
    code, output = bridge.sync()

    assert code == 0, output
    assert summaries(bridge) == ["Secret plans 2026"]
    assert [m.state for m in bridge.mappings()] == [MappingState.ACTIVE]


def test_a_refused_direct_read_keeps_the_calendar_until_a_read_confirms(
    make_bridge: Callable[..., Bridge],
) -> None:
    only_groups = {**ALL_GROUPS, "company": False, "locations": False, "resources": False}
    bridge = make_bridge(mirror=only_groups)
    bridge.add_owners("groups", [{"ID": "12", "NAME": "Board", "VISIBLE": "N", "OWNER_ID": "7"}])
    section = bridge.add_section("group", 12, "Secret plans")
    bridge.wait_applied(1)
    bridge.patch_portal(webhook_admin=False)
    bridge.delete_section(section["ID"], deliver=False)
    # The direct read of group 12 is refused the way calendar methods refuse (NOTES §2.1).
    bridge.bitrix_fault(
        method="calendar.section.get", status=400, error="", description="Access denied", count=1
    )

    code, output = bridge.sync()

    assert code == 0, output
    assert "1 kept unconfirmed" in output and "Access denied" in output
    assert summaries(bridge) == ["Secret plans"]

    code, output = bridge.sync()

    assert code == 0, output
    assert summaries(bridge) == []


def test_a_guard_tripping_reconciliation_still_creates_and_updates(bridge: Bridge) -> None:
    rooms = [bridge.add_section("company_calendar", 0, f"Room {i}") for i in range(12)]
    renamed = bridge.add_section("company_calendar", 0, "Lobby")
    bridge.wait_applied(13)
    for room in rooms:
        bridge.delete_section(room["ID"], deliver=False)
    bridge.update_section(renamed["ID"], name="Front desk", deliver=False)
    bridge.add_section("company_calendar", 0, "Roof terrace", deliver=False)

    code, output = bridge.sync()

    assert code == 1, output
    assert "12 removal(s) held back: would delete or archive 12 of 13 calendars" in output
    kept_rooms = [f"Room {i}" for i in range(12)]
    assert summaries(bridge) == sorted(["Front desk", "Roof terrace", *kept_rooms])
    status = bridge.status_text()
    assert "12 removal(s) held back" in status, status

    code, output = bridge.sync(force=True)

    assert code == 0, output
    assert summaries(bridge) == ["Front desk", "Roof terrace"]
    assert "held back" not in bridge.status_text()


def test_only_sections_synced_with_google_are_skipped(bridge: Bridge) -> None:
    for external in ("caldav", "icloud", "office365"):
        bridge.add_section("company_calendar", 0, f"Synced with {external}", external_type=external)
    bridge.add_section("company_calendar", 0, "Google copy", external_type="google_readonly")
    bridge.add_section(
        "company_calendar", 0, "Old Google sync", gapi_calendar_id="abc@group.calendar.google.com"
    )

    rows = bridge.wait_applied(5)

    assert [r.state for r in rows] == [InboxState.DONE] * 3 + [InboxState.SKIPPED] * 2
    assert "already syncs this section with Google itself (EXTERNAL_TYPE google_readonly" in (
        rows[3].outcome or ""
    )
    assert "(GAPI_CALENDAR_ID is set" in (rows[4].outcome or "")
    assert summaries(bridge) == [
        "Synced with caldav",
        "Synced with icloud",
        "Synced with office365",
    ]


def test_check_config_online_names_a_missing_scope(make_bridge: Callable[..., Bridge]) -> None:
    bridge = make_bridge(mirror=ALL_GROUPS, notify={"bitrix_users": [1]}, worker=False)
    out = io.StringIO()

    assert check_portals(bridge.engine, [bridge.portal], online=True, out=out) == 0, out.getvalue()
    assert "bitrix24 ok: scopes calendar, sonet_group, im granted" in out.getvalue()

    bridge.patch_portal(webhook_scopes=["calendar", "sonet_group", "user"])
    out = io.StringIO()

    assert check_portals(bridge.engine, [bridge.portal], online=True, out=out) == 1
    [line] = [line for line in out.getvalue().splitlines() if "bitrix24" in line]
    assert "insufficient_scope" in line and "scope(s) im (notify.bitrix_users" in line, line
