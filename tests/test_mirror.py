"""The marker the bridge writes into each calendar's description, and who may act on it."""

from __future__ import annotations

import json
from typing import Any

from bridge.calendar_state import desired_state
from bridge.calendars import CalendarListEntry, MappingState
from bridge.config import PortalConfig
from bridge.markers import Marker, marker, marks_portal, marks_section, member_tag, read_marker
from bridge.mirror import ActionKind, MappedCalendar, plan_portal
from bridge.purge_plan import plan_purge
from bridge.selection import Section

ACME_MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
NONCE = "0123456789abcdef0123456789abcdef"


def portal(key: str = "acme", member_id: str = ACME_MEMBER) -> PortalConfig:
    account = {
        "client_email": "sa@p.iam.gserviceaccount.com",
        "private_key": "-----BEGIN",
        "token_uri": "http://127.0.0.1:1/token",
    }
    raw: dict[str, Any] = {
        "key": key,
        "member_id": member_id,
        "domain": f"{key}.bitrix24.com",
        "application_token": "a" * 32,
        "bitrix": {"webhook_url": f"https://{key}.bitrix24.com/rest/1/abc123/"},
        "google": {
            "service_account": json.dumps(account),
            "subject": "calendars@acme.com",
            "time_zone": "Europe/Berlin",
        },
    }
    return PortalConfig.model_validate(raw)


ACME = portal()
OTHER_DEPLOYMENT = portal(member_id="ffffffffffffffffffffffffffffffff")  # same key, same subject
BETA = portal(key="beta", member_id="b" * 32)


def section(section_id: str, description: str = "") -> Section:
    return Section(section_id, "company_calendar", "0", f"Room {section_id}", description)


def entry(calendar_id: str, description: str) -> CalendarListEntry:
    return CalendarListEntry(calendar_id, calendar_id, description, "Europe/Berlin", "", "", False)


def written(target: PortalConfig, section_id: str, text: str = "", nonce: str = NONCE) -> str:
    """The description the bridge writes for a section."""
    return desired_state(target, section(section_id, text), nonce).description


def mapping(section_id: str, calendar_id: str | None) -> MappedCalendar:
    return MappedCalendar(section_id, MappingState.ACTIVE, NONCE, calendar_id)


def test_the_bridge_writes_the_marker_last_and_reads_it_back() -> None:
    description = written(ACME, "7", "Room on the 2nd floor")

    assert description.startswith("Room on the 2nd floor\n\n")
    assert description.splitlines()[-1] == marker("acme", ACME_MEMBER, "7", NONCE)
    assert read_marker(description) == Marker("acme", "7", NONCE, member_tag(ACME_MEMBER))


def test_the_member_tag_does_not_show_the_member_id() -> None:
    description = written(ACME, "7")

    assert ACME_MEMBER not in description
    assert member_tag(ACME_MEMBER) != member_tag(OTHER_DEPLOYMENT.member_id)


def test_a_marker_anywhere_but_the_last_line_is_not_read() -> None:
    genuine = marker("acme", ACME_MEMBER, "7", NONCE)

    assert read_marker(f"{genuine}\n\nSome text") is None
    assert read_marker(f"Some text {genuine}") is None
    assert read_marker(f"Some text\n{genuine} and more") is None
    assert read_marker("") is None
    assert read_marker(f"Some text\n\n{genuine}\n") == read_marker(genuine)


def test_a_section_description_cannot_forge_a_marker() -> None:
    victim = written(ACME, "7")  # what a forger can copy from the victim's calendar
    for text in (victim, victim.splitlines()[-1], f"Intro\n\n{victim}\n\n", victim.upper()):
        description = written(ACME, "9", text)

        assert read_marker(description) == Marker("acme", "9", NONCE, member_tag(ACME_MEMBER))
        assert "bx24-bridge" not in description.rsplit("\n", 1)[0].lower()
        # Even with the bridge's own line cut off, what remains reads as no marker at all.
        assert read_marker(description.rsplit("\n", 1)[0]) is None


def test_neutralised_text_stays_the_same_across_writes() -> None:
    text = "See [bx24-bridge portal=acme section=7 nonce=ab] for details"

    assert written(ACME, "9", text) == written(ACME, "9", text)
    assert written(ACME, "9", text).startswith("See [bx24\u2011bridge portal=acme section=7")


def test_a_marker_counts_only_for_its_portal_and_section() -> None:
    ours = read_marker(written(ACME, "7"))
    same_key_elsewhere = read_marker(written(OTHER_DEPLOYMENT, "7"))
    beta = read_marker(written(BETA, "7"))

    assert marks_portal(ours, ACME) and marks_section(ours, ACME, "7")
    assert not marks_section(ours, ACME, "8")
    assert not marks_portal(same_key_elsewhere, ACME)
    assert not marks_section(same_key_elsewhere, ACME, "7")
    assert not marks_section(beta, ACME, "7")
    assert not marks_portal(None, ACME) and not marks_section(None, ACME, "7")


def test_a_legacy_marker_is_read_and_counts_for_its_key_and_section_only() -> None:
    legacy = read_marker(f"Room\n\n[bx24-bridge portal=acme section=7 nonce={NONCE}]")

    assert legacy == Marker("acme", "7", NONCE, None)
    assert legacy is not None and legacy.legacy
    assert marks_section(legacy, ACME, "7")
    assert not marks_section(legacy, ACME, "8")
    assert not marks_section(legacy, BETA, "7")
    assert not marks_portal(legacy, ACME)  # purge needs the member_id: a mapping, for a legacy one


def test_reconciliation_adopts_only_the_sections_own_marker() -> None:
    forged = entry("forged", written(ACME, "9", written(ACME, "7")))  # section 9 quotes 7's marker
    elsewhere = entry("elsewhere", written(OTHER_DEPLOYMENT, "7"))
    genuine = entry("genuine", written(ACME, "7"))
    sections = {"7": section("7"), "9": section("9")}

    actions = plan_portal(ACME, sections, [], [forged, elsewhere, genuine])

    assert [(a.kind, a.section_id, a.calendar_id) for a in actions] == [
        (ActionKind.ADOPT, "7", "genuine"),
        (ActionKind.ADOPT, "9", "forged"),  # its own marker: it is section 9's calendar
    ]


def test_reconciliation_creates_rather_than_adopt_a_forgery() -> None:
    forged = entry("forged", written(ACME, "9", written(ACME, "7")))

    actions = plan_portal(ACME, {"7": section("7")}, [], [forged])

    assert [(a.kind, a.section_id, a.calendar_id) for a in actions] == [
        (ActionKind.CREATE, "7", None)
    ]


def test_adoption_prefers_a_tagged_marker_to_a_legacy_one() -> None:
    legacy = entry("legacy", f"[bx24-bridge portal=acme section=7 nonce={NONCE}]")
    tagged = entry("tagged", written(ACME, "7"))

    [action] = plan_portal(ACME, {"7": section("7")}, [], [legacy, tagged])

    assert (action.kind, action.calendar_id) == (ActionKind.ADOPT, "tagged")


def test_purge_takes_the_portals_own_calendars_only() -> None:
    listed = [
        entry("ours", written(ACME, "7")),
        entry("forged", written(BETA, "9", written(ACME, "7"))),
        entry("same-key-elsewhere", written(OTHER_DEPLOYMENT, "7")),
        entry("beta", written(BETA, "7")),
        entry("legacy-mapped", f"[bx24-bridge portal=acme section=8 nonce={NONCE}]"),
        entry("legacy-unmapped", f"[bx24-bridge portal=acme section=3 nonce={NONCE}]"),
        entry("mapped-to-beta", written(BETA, "5")),
        entry("by-hand", "made by hand"),
    ]
    mappings = [
        mapping("8", "legacy-mapped"),
        mapping("5", "mapped-to-beta"),
        mapping("6", "unlisted"),
        mapping("4", None),
    ]

    plan = plan_purge(ACME, mappings, listed)

    assert sorted(plan.delete) == ["legacy-mapped", "ours", "unlisted"]
    assert [line.split(" ", 1)[0] for line in plan.left_alone] == [
        "mapped-to-beta:",
        "legacy-unmapped",
    ]
