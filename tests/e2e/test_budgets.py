"""Limits that last: Bitrix24's method time budget, its manual block, Google's read-only mode.

Each test drives the real bridge against the emulators over HTTP: the Bitrix24 emulator sums
method time in baskets (`limits.md`) and answers 429 once over; a fault plays `OVERLOAD_LIMIT`;
the Google emulator puts the owner in read-only mode for a few seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import httpx

from bridge.models import InboxState
from tests.e2e.conftest import Bridge


def refused_commands(bridge: Bridge, error: str) -> list[dict[str, Any]]:
    return [
        command
        for request in bridge.bitrix_requests()
        for command in request.get("commands") or []
        if command["error"] == error
    ]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_spent_time_budget_waits_for_the_recorded_reset_and_parks_nothing(
    bridge: Bridge,
) -> None:
    # Each read of the selection lists resources once: 20 s of a 30 s budget, in 10 baskets of
    # 0.5 s (a 5 s window instead of 10 minutes).
    bridge.patch_portal(
        operating_limit_s=30,
        method_cost_s={"calendar.resource.list": 20},
        basket_s=0.5,
    )
    bridge.add_section("company_calendar", 0, "Before")
    bridge.wait_applied(1)
    time.sleep(0.6)  # into the next basket: the budget's baskets turning with time are the case
    spent = httpx.post(f"{bridge.portal.bitrix.webhook_url}calendar.resource.list.json")
    assert spent.json()["time"]["operating"] == 40  # another client crossed the limit

    bridge.add_section("company_calendar", 0, "After")
    rows = bridge.wait_applied(2)

    assert sorted(c["summary"] for c in bridge.calendars()) == ["After", "Before"]
    assert [(row.state, row.attempts) for row in rows] == [(InboxState.DONE, 0)] * 2
    # Refused once, then retried when the oldest basket dropped out: an earlier retry would
    # have been refused again (and then waited a minute, past this test's patience).
    assert len(refused_commands(bridge, "OPERATION_TIME_LIMIT")) == 1


def test_overload_limit_parks_with_the_reason_and_alerts_without_retrying(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = make_bridge(notify={"bitrix_users": [1]})
    bridge.bitrix_fault(
        method="batch",
        count=None,  # until removed, as a block by support lasts
        status=503,
        error="OVERLOAD_LIMIT",
        description="REST API is blocked due to overload",
    )
    bridge.add_section("company_calendar", 0, "Blocked")

    [row] = bridge.wait_applied(1)
    bridge.notifier.wait_idle()

    assert row.state == InboxState.PARKED
    assert "REST API is blocked due to overload: contact Bitrix24 support" in (row.outcome or "")
    assert len([r for r in bridge.bitrix_requests() if r["method"] == "batch"]) == 1
    notices = bridge.bitrix.notifications(bridge.member_id)
    assert any("contact Bitrix24 support" in str(notice) for notice in notices)
    assert bridge.calendars() == []


def test_read_only_owner_is_probed_with_one_write_and_resumes_when_it_lifts(
    make_bridge: Callable[..., Bridge],
) -> None:
    # The first probe after 1.2 s, then 2.4 s (the defaults are 5 and 120 minutes).
    bridge = make_bridge(google={"read_only_probe": {"first_minutes": 0.02, "max_minutes": 0.04}})
    bridge.google.read_only(bridge.subject, seconds=4)
    for name in ("One", "Two", "Three"):
        bridge.add_section("company_calendar", 0, name)
    bridge.flush_deliveries()

    wait_until(lambda: refused_writes(bridge) != [], "Google's first refusal")
    blocked = bridge.status_json()["google_owner"]
    text = bridge.status_text()
    rows = bridge.wait_applied(3)

    assert blocked["read_only"] is True
    assert blocked["probe_at"] > blocked["blocked_at"]
    assert f"google owner {bridge.subject}: READ-ONLY" in text
    assert sorted(c["summary"] for c in bridge.calendars()) == ["One", "Three", "Two"]
    assert [(row.state, row.attempts) for row in rows] == [(InboxState.DONE, 0)] * 3
    refused = refused_writes(bridge)
    # One write per probe, never more often than the schedule (1.2 s, then 2.4 s), and no other
    # write (for the other sections) while the owner was blocked.
    gaps = [later - earlier for earlier, later in pairwise(refused)]
    assert 2 <= len(refused) <= 3
    assert gaps[0] >= 1.1 and all(gap >= 2.3 for gap in gaps[1:])
    assert all(r["status"] == 403 for r in writes(bridge) if r["t"] <= refused[-1])
    assert bridge.status_json()["google_owner"]["read_only"] is False


def writes(bridge: Bridge) -> list[dict[str, Any]]:
    return [r for r in bridge.google_requests() if r["method"] != "GET"]


def refused_writes(bridge: Bridge) -> list[float]:
    return [float(r["t"]) for r in writes(bridge) if r["status"] == 403]


def test_reconciliation_makes_no_google_writes_for_a_read_only_owner(
    make_bridge: Callable[..., Bridge],
) -> None:
    bridge = make_bridge(worker=False)
    bridge.google.read_only(bridge.subject, seconds=3600)
    for name in ("One", "Two"):
        bridge.add_section("company_calendar", 0, name, deliver=False)

    first_code, first = bridge.sync()
    after_first = len(writes(bridge))
    second_code, second = bridge.sync()

    assert first_code == second_code == 0
    assert "2 left, no Google writes" in first and "read-only mode" in first
    assert "2 left, no Google writes" in second
    assert after_first == len(refused_writes(bridge)) == 1  # the write that met the mode
    assert len(writes(bridge)) == after_first  # the second run waited for the probe
    assert bridge.status_json()["google_owner"]["read_only"] is True
    assert bridge.calendars() == []
