"""A Bitrix24 section-add delivery becomes exactly one Google calendar, end to end over HTTP."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bridge.models import InboxState, MappingState
from bridge.sandbox.bitrix import http_build_query
from bridge.status import collect_status
from tests.e2e.conftest import Bridge


def event_fields(
    bridge: Bridge, section_id: str, *, ts: str = "1734608536", **auth: str
) -> dict[str, Any]:
    portal = bridge.portal
    return {
        "event": "ONCALENDARSECTIONADD",
        "event_handler_id": "6",
        "data": {"id": section_id},
        "ts": ts,
        "auth": {
            "domain": portal.domain,
            "client_endpoint": f"{bridge.sandbox.bitrix_url}/rest/",
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "member_id": portal.member_id,
            "application_token": portal.application_token,
            **auth,
        },
    }


def test_company_resource_and_group_sections_get_one_calendar_each(bridge: Bridge) -> None:
    bridge.add_group(12, "Sales")
    company = bridge.add_section("company_calendar", 0, "Company holidays")
    resource = bridge.add_section("resource", 0, "Meeting room Everest")
    group = bridge.add_section("group", 12, "Sales team")
    deliveries = bridge.flush_deliveries()
    assert {d["section_id"] for d in deliveries} >= {company["ID"], resource["ID"], group["ID"]}

    rows = bridge.wait_applied(3)

    assert [r.state for r in rows] == [InboxState.DONE] * 3
    calendars = bridge.calendars()
    assert sorted(c["summary"] for c in calendars) == [
        "Company holidays",
        "Meeting room Everest",
        "Sales team",
    ]
    assert {c["timeZone"] for c in calendars} == {"Europe/Berlin"}
    assert {c["dataOwner"] for c in calendars} == {bridge.subject}
    mappings = {m.section_id: m for m in bridge.mappings()}
    assert {m.state for m in mappings.values()} == {MappingState.ACTIVE}
    assert mappings[resource["ID"]].section_type == "resource"
    assert mappings[group["ID"]].owner_id == "12"
    assert {m.google_calendar_id for m in mappings.values()} == {c["id"] for c in calendars}
    inserts = [
        r
        for r in bridge.google_requests()
        if r["method"] == "POST" and r["path"] == "/calendar/v3/calendars"
    ]
    assert len(inserts) == 3


def test_section_of_an_unselected_group_is_skipped(bridge: Bridge) -> None:
    bridge.add_group(99, "Not selected")
    section = bridge.add_section("group", 99, "Secret project")
    bridge.flush_deliveries()

    [row] = bridge.wait_applied(1)

    assert row.state == InboxState.SKIPPED
    assert row.section_id == section["ID"]
    assert "not in the portal's selection" in (row.outcome or "")
    assert bridge.calendars() == []
    assert bridge.mappings() == []


def test_the_same_event_delivered_five_times_makes_one_calendar(bridge: Bridge) -> None:
    section = bridge.add_section("company_calendar", 0, "All hands", deliver=False)
    body = http_build_query(event_fields(bridge, section["ID"]))
    later = http_build_query(event_fields(bridge, section["ID"], ts="1734608599"))

    first = bridge.post_event(body)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(bridge.post_event, [body, body, later, later]))

    assert first.status_code == 200
    assert [a.status_code for a in answers] == [200] * 4
    bridge.wait_applied(1)
    [calendar] = bridge.calendars()
    assert calendar["summary"] == "All hands"
    assert len(bridge.mappings()) == 1


def test_the_json_form_of_the_event_is_accepted(bridge: Bridge) -> None:
    section = bridge.add_section("company_calendar", 0, "Board meetings", deliver=False)

    answer = bridge.post_event(json.dumps(event_fields(bridge, section["ID"])), "application/json")

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "accepted"
    bridge.wait_applied(1)
    assert [c["summary"] for c in bridge.calendars()] == ["Board meetings"]


def test_wrong_token_is_refused_and_nothing_is_called(bridge: Bridge) -> None:
    section = bridge.add_section("company_calendar", 0, "Forged", deliver=False)
    before = len(bridge.bitrix_requests())

    wrong = bridge.post_event(
        http_build_query(event_fields(bridge, section["ID"], application_token="x" * 32))
    )
    foreign = bridge.post_event(
        http_build_query(event_fields(bridge, section["ID"], member_id="f" * 32))
    )

    assert wrong.status_code == 401
    assert "application_token" in wrong.json()["error"]
    assert foreign.status_code == 403
    assert bridge.inbox() == []
    assert len(bridge.bitrix_requests()) == before
    assert bridge.google_requests() == []
    assert bridge.calendars() == []


def test_an_authentic_event_naming_another_domain_is_applied_and_reported(bridge: Bridge) -> None:
    section = bridge.add_section("company_calendar", 0, "Renamed portal", deliver=False)

    other_domain = bridge.post_event(
        http_build_query(event_fields(bridge, section["ID"], domain="acme-renamed.bitrix24.com"))
    )

    assert other_domain.status_code == 200 and other_domain.json()["status"] == "accepted"
    bridge.wait_applied(1)
    assert [c["summary"] for c in bridge.calendars()] == ["Renamed portal"]
    [address] = collect_status(bridge.engine, bridge.portal)["addresses"]
    assert (address["kind"], address["value"]) == ("domain", "acme-renamed.bitrix24.com")


def test_an_event_the_bridge_does_not_handle_is_recorded_as_ignored(bridge: Bridge) -> None:
    fields = event_fields(bridge, "5")
    fields["event"] = "ONCRMLEADADD"

    answer = bridge.post_event(http_build_query(fields))

    assert answer.status_code == 200
    assert answer.json()["status"] == "ignored"
    [row] = bridge.inbox()
    assert row.state == InboxState.IGNORED
    assert row.event == "ONCRMLEADADD"


def test_tokens_are_not_stored(bridge: Bridge) -> None:
    fields = event_fields(
        bridge, "7", access_token="s6p6eclrvim6da22", refresh_token="4s386p3q0tr8dy89"
    )

    assert bridge.post_event(http_build_query(fields)).status_code == 200

    [row] = bridge.inbox()
    stored = json.loads(row.payload)
    assert stored["data"] == {"id": "7"}
    assert stored["auth"]["member_id"] == bridge.portal.member_id
    for secret in ("s6p6eclrvim6da22", "4s386p3q0tr8dy89", bridge.portal.application_token):
        assert secret not in row.payload
