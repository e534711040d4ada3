"""Upstream failures: retried when transient, adopted when ambiguous, parked when permanent."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from bridge.harness import wait_for
from bridge.models import InboxEvent, InboxState, utcnow
from tests.e2e.conftest import WAITING, Bridge

CALENDARS = "/calendar/v3/calendars"


def inserts(bridge: Bridge) -> list[dict[str, object]]:
    return [r for r in bridge.google_requests() if r["method"] == "POST" and r["path"] == CALENDARS]


def wait_for_attempt(bridge: Bridge, timeout: float = 20.0) -> InboxEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = bridge.inbox()
        if rows and (rows[0].attempts > 0 or rows[0].state not in WAITING):
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("the worker made no attempt")


def test_bitrix_rate_limit_and_outage_are_retried_until_applied(bridge: Bridge) -> None:
    bridge.bitrix_fault(
        method="batch", count=2, kind="error", status=503, error="QUERY_LIMIT_EXCEEDED"
    )
    bridge.bitrix_fault(method="batch", count=1, kind="html", status=502)
    bridge.add_section("company_calendar", 0, "Retried")
    bridge.flush_deliveries()

    [row] = bridge.wait_applied(1)

    assert row.state == InboxState.DONE
    assert [c["summary"] for c in bridge.calendars()] == ["Retried"]
    statuses = [r["status"] for r in bridge.bitrix_requests() if r["method"] == "batch"]
    assert statuses[:4] == [503, 503, 502, 200]


def test_google_500_on_insert_is_retried_and_makes_one_calendar(bridge: Bridge) -> None:
    bridge.google_fault(method="POST", path=CALENDARS, count=1, action="error", status=500)
    bridge.add_section("company_calendar", 0, "After a 500")
    bridge.flush_deliveries()

    [row] = bridge.wait_applied(1)

    assert row.state == InboxState.DONE
    assert row.attempts == 1
    assert [c["summary"] for c in bridge.calendars()] == ["After a 500"]
    assert len(inserts(bridge)) == 2


def test_insert_committed_then_connection_dropped_adopts_the_calendar(bridge: Bridge) -> None:
    bridge.google_fault(method="POST", path=CALENDARS, count=1, action="commit_then_drop")
    bridge.add_section("resource", 0, "Projector")
    bridge.flush_deliveries()

    [row] = bridge.wait_applied(1)

    [calendar] = bridge.calendars()
    assert calendar["summary"] == "Projector"
    assert row.state == InboxState.DONE
    assert "adopted" in (row.outcome or "")
    assert len(inserts(bridge)) == 1
    [mapping] = bridge.mappings()
    assert mapping.google_calendar_id == calendar["id"]


def test_insert_committed_then_stalled_past_the_timeout_adopts_the_calendar(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge: Bridge = make_bridge(google={"timeout_s": 1})
    bridge.google_fault(
        method="POST", path=CALENDARS, count=1, action="commit_then_stall", seconds=3
    )
    bridge.add_section("company_calendar", 0, "Slow Google")
    bridge.flush_deliveries()

    [row] = bridge.wait_applied(1)

    assert row.state == InboxState.DONE
    assert [c["summary"] for c in bridge.calendars()] == ["Slow Google"]
    assert len(inserts(bridge)) == 1


def test_quota_exceeded_waits_for_the_first_probe_without_a_hot_loop(bridge: Bridge) -> None:
    bridge.google.read_only(bridge.subject, seconds=3600)
    bridge.add_section("company_calendar", 0, "Over quota")
    bridge.flush_deliveries()

    wait_for(lambda: "read-only" in (bridge.inbox()[0].outcome or ""), 20, "an attempt")
    # A later event of the same owner: once the worker has deferred it too, it has had a pass in
    # which a hot loop would have taken the first row again.
    bridge.add_section("company_calendar", 0, "Marker")
    bridge.flush_deliveries()
    wait_for(
        lambda: "read-only" in (bridge.inbox()[-1].outcome or "") and len(bridge.inbox()) == 2,
        20,
        "the marker to be deferred",
    )
    row = bridge.inbox()[0]

    assert row.state == InboxState.PENDING
    assert row.attempts == 0
    assert "usage limits" in (row.outcome or "").lower()
    # The first probe, google.read_only_probe.first_minutes (default 5), not hours.
    assert utcnow() + timedelta(minutes=4) < row.next_attempt_at < utcnow() + timedelta(minutes=6)
    assert len(inserts(bridge)) == 1
    assert bridge.calendars() == []


def test_bitrix_auth_failure_is_parked_with_the_reason(bridge: Bridge) -> None:
    bridge.bitrix_fault(
        method="batch",
        count=1,
        kind="error",
        status=401,
        error="NO_AUTH_FOUND",
        description="Wrong authorization data",
    )
    bridge.add_section("company_calendar", 0, "Never")
    bridge.flush_deliveries()

    [row] = bridge.wait_applied(1)

    assert row.state == InboxState.PARKED
    assert "NO_AUTH_FOUND" in (row.outcome or "")
    assert len([r for r in bridge.bitrix_requests() if r["method"] == "batch"]) == 1
    assert bridge.calendars() == []


def test_calendar_creation_is_paced_per_owner_without_counting_attempts(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = make_bridge(google={"creation_pace": {"calendars": 2, "minutes": 60}})
    for name in ("One", "Two", "Three"):
        bridge.add_section("company_calendar", 0, name)

    def all_attempted() -> bool:
        rows = bridge.inbox()
        done = [r for r in rows if r.state == InboxState.DONE]
        rest = [r for r in rows if r.state != InboxState.DONE]
        return len(done) == 2 and all(r.state not in WAITING or r.outcome for r in rest)

    wait_for(all_attempted, 20, "two calendars and an attempt at the third")

    assert summaries(bridge) == ["One", "Two"]
    [waiting] = [r for r in bridge.inbox() if r.state != InboxState.DONE]
    assert waiting.state == InboxState.PENDING and waiting.attempts == 0
    assert "pace" in (waiting.outcome or "")
    assert waiting.next_attempt_at > utcnow() + timedelta(minutes=55)
    assert len(inserts(bridge)) == 2


def summaries(bridge: Bridge) -> list[str]:
    return sorted(c["summary"] for c in bridge.calendars())
