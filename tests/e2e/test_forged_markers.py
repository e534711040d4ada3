"""A section's description cannot forge the bridge's marker: only the marker the bridge writes on
the last line, naming this portal (key and member_id) and section, makes a calendar adopted,
removed as a duplicate, or purged."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete
from sqlmodel import col

from bridge.db import create_db_engine
from bridge.harness import demo_portal
from bridge.markers import marks_portal, read_marker
from bridge.migrate import migrate
from bridge.models import CalendarMapping, InboxState
from bridge.operations import purge_portal
from tests.conftest import fresh_schema, schema_url
from tests.e2e.conftest import Bridge

CALENDARS = "/calendar/v3/calendars"
MIRROR = {"groups": [12], "reconcile_interval_minutes": 0}


@pytest.fixture
def second_database(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    """Another deployment's database, of the same kind as this test's."""
    with ExitStack() as stack:
        if database_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / 'other-deployment.db'}"
        else:
            url = schema_url(stack.enter_context(fresh_schema()))
        migrate(url)
        engine = create_db_engine(url)
        stack.callback(engine.dispose)
        yield engine


def by_summary(bridge: Bridge) -> dict[str, dict[str, Any]]:
    return {c["summary"]: c for c in bridge.calendars()}


def mapped(bridge: Bridge) -> dict[str, str | None]:
    return {
        m.section_id: m.google_calendar_id
        for m in bridge.mappings()
        if m.portal_key == bridge.portal.key
    }


def lose_mappings(bridge: Bridge) -> None:
    with bridge.engine.begin() as connection:
        connection.execute(
            delete(CalendarMapping).where(col(CalendarMapping.portal_key) == bridge.portal.key)
        )


def purge(bridge: Bridge) -> str:
    out = io.StringIO()
    code = purge_portal(bridge.engine, bridge.portal, dry_run=False, assume_yes=True, out=out)
    assert code == 0, out.getvalue()
    return out.getvalue()


def test_a_section_quoting_another_sections_marker_is_not_taken_for_it(bridge: Bridge) -> None:
    victim = bridge.add_section("company_calendar", 0, "Van")
    bridge.wait_applied(1)
    [genuine] = bridge.calendars()
    forger = bridge.add_section("company_calendar", 0, "Forger", description=genuine["description"])
    bridge.wait_applied(2)
    forged = by_summary(bridge)["Forger"]
    assert forged["description"].lower().count("bx24-bridge") == 1  # the bridge's own line only
    lose_mappings(bridge)

    code, output = bridge.sync()

    assert code == 0, output
    assert output.count("adopt calendar") == 2, output
    assert {c["id"] for c in bridge.calendars()} == {genuine["id"], forged["id"]}
    assert mapped(bridge) == {victim["ID"]: genuine["id"], forger["ID"]: forged["id"]}


def test_a_forged_marker_is_not_deleted_as_a_duplicate(bridge: Bridge) -> None:
    victim = bridge.add_section("company_calendar", 0, "Projector", deliver=False)
    forger = bridge.add_section("company_calendar", 0, "Forger")
    bridge.wait_applied(1)
    [forged] = bridge.calendars()
    # The forger copies the bridge's marker line from its own calendar and names the victim.
    line = forged["description"].splitlines()[-1]
    copy = line.replace(f"section={forger['ID']} ", f"section={victim['ID']} ")
    assert copy != line
    bridge.update_section(forger["ID"], description=f"Nothing to see\n\n{copy}")
    bridge.wait_applied(2)
    bridge.google_fault(method="POST", path=CALENDARS, count=1, action="commit_then_drop")

    bridge.update_section(victim["ID"], name="Projector")  # its insert's answer is lost
    *_, row = bridge.wait_applied(3)

    assert row.state == InboxState.DONE, row.outcome
    assert "adopted" in (row.outcome or "") and "duplicate" not in (row.outcome or "")
    calendars = by_summary(bridge)
    assert sorted(calendars) == ["Forger", "Projector"]
    assert calendars["Forger"]["id"] == forged["id"]
    assert mapped(bridge) == {
        victim["ID"]: calendars["Projector"]["id"],
        forger["ID"]: forged["id"],
    }


def test_another_portal_on_the_same_subject_cannot_forge_this_portals_marker(
    bridge: Bridge,
) -> None:
    bridge.add_section("company_calendar", 0, "Van")
    bridge.wait_applied(1)
    [genuine] = bridge.calendars()
    beta = replace(
        bridge,
        portal=demo_portal(bridge.sandbox, key="beta", subject=bridge.subject, mirror=MIRROR),
    )
    beta.add_section(
        "company_calendar", 0, "Beta's van", description=genuine["description"], deliver=False
    )
    code, output = beta.sync()
    assert code == 0, output
    forged = by_summary(bridge)["Beta's van"]
    assert sorted(by_summary(bridge)) == ["Beta's van", "Van"]
    lose_mappings(bridge)

    code, output = bridge.sync()

    assert code == 0, output
    assert {c["id"] for c in bridge.calendars()} == {genuine["id"], forged["id"]}
    assert list(mapped(bridge).values()) == [genuine["id"]]

    output = purge(bridge)

    assert [c["id"] for c in bridge.calendars()] == [forged["id"]], output

    output = purge(beta)

    assert bridge.calendars() == [], output


def test_a_deployment_with_the_same_portal_key_keeps_its_calendars(
    bridge: Bridge, second_database: Engine
) -> None:
    bridge.add_section("company_calendar", 0, "Van")
    bridge.wait_applied(1)
    [ours] = bridge.calendars()
    other = replace(
        bridge,
        portal=demo_portal(bridge.sandbox, key="acme", subject=bridge.subject, mirror=MIRROR),
        engine=second_database,
    )
    other.add_section("company_calendar", 0, "Their van", deliver=False)  # the same section id
    code, output = other.sync()
    assert code == 0, output
    theirs = by_summary(bridge)["Their van"]
    assert theirs["id"] != ours["id"]  # the other deployment did not adopt ours either
    assert by_summary(bridge)["Van"]["id"] == ours["id"]
    lose_mappings(bridge)

    code, output = bridge.sync()

    assert code == 0, output
    assert {c["id"] for c in bridge.calendars()} == {ours["id"], theirs["id"]}
    assert list(mapped(bridge).values()) == [ours["id"]]
    assert list(mapped(other).values()) == [theirs["id"]]

    output = purge(bridge)

    assert [c["id"] for c in bridge.calendars()] == [theirs["id"]], output


def test_calendars_with_an_earlier_versions_marker_are_adopted_and_purged_by_mapping(
    bridge: Bridge,
) -> None:
    section = bridge.add_section("company_calendar", 0, "Van", description="Blue")
    bridge.wait_applied(1)
    [calendar] = bridge.calendars()
    [mapping] = bridge.mappings()
    legacy = f"Blue\n\n[bx24-bridge portal=acme section={section['ID']} nonce={mapping.nonce}]"
    bridge.google.patch_calendar(calendar["id"], description=legacy)
    lose_mappings(bridge)

    code, output = bridge.sync()

    assert code == 0, output
    assert "adopt calendar" in output
    [upgraded] = bridge.calendars()
    assert upgraded["id"] == calendar["id"]
    found = read_marker(upgraded["description"])  # rewritten in the current format
    assert found is not None and marks_portal(found, bridge.portal), upgraded["description"]
    assert (found.section_id, upgraded["description"].split("\n")[0]) == (section["ID"], "Blue")
    assert mapped(bridge) == {section["ID"]: calendar["id"]}

    bridge.google.patch_calendar(calendar["id"], description=legacy)
    clients = bridge.clients()
    unmapped = clients.google.insert_calendar(
        "An earlier version's", f"[bx24-bridge portal=acme section=999 nonce={'0' * 32}]", "UTC"
    )
    clients.close()

    output = purge(bridge)

    assert [c["id"] for c in bridge.calendars()] == [unmapped], output
    assert f"leave alone {unmapped}" in output
    assert bridge.mappings() == []
