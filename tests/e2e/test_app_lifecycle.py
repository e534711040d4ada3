"""App mode over a portal's life: uninstall reaches the bridge only because it was bound, and
offline delivery follows the plan (extended, basic, or a downgrade in between)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from bridge.bindings import bind_events
from bridge.harness import wait_for
from bridge.models import InboxState, PortalCredentials, PortalState, utcnow
from bridge.oauth import bitrix_client_for
from bridge.queue import replay_parked
from tests.e2e.conftest import Bridge

App = Callable[..., Bridge]
OFFLINE = {"delivery": "offline", "offline_poll_seconds": 0.2}


def bound_events(bridge: Bridge) -> Counter[str]:
    return Counter(b["event"] for b in bridge.app_state()["apps"][0]["bindings"])


def summaries(bridge: Bridge) -> list[str]:
    return sorted(c["summary"] for c in bridge.calendars())


def set_plan(bridge: Bridge, features: list[str]) -> None:
    bridge.bitrix.set_plan(bridge.member_id, features=features)


def stored_mode(bridge: Bridge) -> str | None:
    with Session(bridge.engine) as session:
        state = session.get(PortalState, bridge.portal.key)
        return state.offline_mode if state else None


def offline_reads(bridge: Bridge) -> list[dict[str, Any]]:
    return [r for r in bridge.bitrix_requests() if r["method"] == "event.offline.get"]


def test_uninstall_reaches_the_bridge_because_bind_subscribed_it(make_bridge: App) -> None:
    bridge = make_bridge(app={})
    bridge.install()
    wait_for(lambda: "ONAPPUNINSTALL" in bound_events(bridge), 20, "the worker to bind")

    gone = bridge.bitrix.uninstall(bridge.member_id, bridge.client_id)
    deliveries = bridge.flush_deliveries()

    assert gone["deliveries"] == 1
    [delivery] = [
        d
        for d in deliveries
        if d["event"] == "ONAPPUNINSTALL" and d["member_id"] == bridge.portal.member_id
    ]
    assert delivery["handler"] == f"{bridge.web_url}/bitrix/events"
    assert delivery["status"] == 200
    wait_for(lambda: "app: UNINSTALLED" in bridge.status_text(), 20, "status to say UNINSTALLED")
    assert bridge.status_json()["app"]["installed"] is False
    with Session(bridge.engine) as session:
        assert session.exec(select(PortalCredentials)).one().access_token is None


def test_binding_twice_leaves_one_binding_of_each_event(make_bridge: App) -> None:
    bridge = make_bridge(app={})
    bridge.install()
    wait_for(lambda: "ONAPPUNINSTALL" in bound_events(bridge), 20, "the worker to bind")

    with bitrix_client_for(bridge.engine, bridge.portal, cipher=bridge.cipher) as client:
        again = bind_events(client, bridge.portal, bridge.portal.bitrix.handler_url)

    assert again == []
    assert bound_events(bridge) == {
        "ONCALENDARSECTIONADD": 1,
        "ONCALENDARSECTIONUPDATE": 1,
        "ONCALENDARSECTIONDELETE": 1,
        "ONCALENDARENTRYADD": 1,
        "ONCALENDARENTRYUPDATE": 1,
        "ONCALENDARENTRYDELETE": 1,
        "ONAPPUNINSTALL": 1,
    }


def test_entry_events_are_not_bound_when_entries_are_not_mirrored(make_bridge: App) -> None:
    bridge = make_bridge(
        app={},
        mirror={"groups": [12], "reconcile_interval_minutes": 0, "entries": {"enabled": False}},
    )
    bridge.install()
    wait_for(lambda: "ONAPPUNINSTALL" in bound_events(bridge), 20, "the worker to bind")

    assert set(bound_events(bridge)) == {
        "ONCALENDARSECTIONADD",
        "ONCALENDARSECTIONUPDATE",
        "ONCALENDARSECTIONDELETE",
        "ONAPPUNINSTALL",
    }


def test_offline_delivery_on_a_plan_without_the_extended_mode(make_bridge: App) -> None:
    bridge = make_bridge(app=OFFLINE)
    set_plan(bridge, [])
    bridge.install()
    wait_for(lambda: "ONOFFLINEEVENT" in bound_events(bridge), 20, "the worker to bind")

    bridge.add_section("company_calendar", 0, "Basic plan")
    bridge.flush_deliveries()
    wait_for(lambda: summaries(bridge) == ["Basic plan"], 20, "the calendar")

    assert len(bridge.mappings()) == 1
    assert stored_mode(bridge) == "basic"
    reads = offline_reads(bridge)
    assert reads and all(r["status"] == 200 for r in reads)  # never asked to reserve
    assert "offline delivery: basic (the plan lacks rest_offline_extended" in bridge.status_text()
    assert bridge.status_json()["offline"]["mode"] == "basic"
    assert bridge.bitrix.offline(bridge.member_id) == []


def test_a_plan_downgrade_switches_to_basic_without_losing_the_change(make_bridge: App) -> None:
    bridge = make_bridge(app=OFFLINE)
    bridge.install()
    wait_for(lambda: "ONOFFLINEEVENT" in bound_events(bridge), 20, "the worker to bind")
    bridge.add_section("company_calendar", 0, "Before")
    bridge.flush_deliveries()
    wait_for(lambda: summaries(bridge) == ["Before"], 20, "the first calendar")
    assert stored_mode(bridge) == "extended"
    assert "offline delivery: extended" in bridge.status_text()

    set_plan(bridge, ["rest_auth_connector"])
    bridge.add_section("company_calendar", 0, "After")
    bridge.flush_deliveries()
    wait_for(lambda: summaries(bridge) == ["After", "Before"], 20, "the second calendar")

    refused = [r for r in offline_reads(bridge) if r.get("error") == "WRONG_LICENSE"]
    assert refused  # the extended read was tried and refused, then basic mode took over
    assert stored_mode(bridge) == "basic"
    assert bridge.status_json()["offline"]["mode"] == "basic"
    assert len(bridge.mappings()) == 2


def test_a_read_lost_in_basic_mode_is_repaired_by_the_next_worker(make_bridge: App) -> None:
    bridge = make_bridge(app=OFFLINE, worker=False)
    set_plan(bridge, [])
    bridge.install()
    assert [verdict.problem for verdict in bridge.verify_installs()] == [None]
    assert _installed(bridge)
    with bitrix_client_for(bridge.engine, bridge.portal, cipher=bridge.cipher) as client:
        bind_events(client, bridge.portal, None)
        bridge.add_section("company_calendar", 0, "Read, then lost")
        # A worker marks its read, reads (Bitrix24 deletes the record) and dies before storing.
        with Session(bridge.engine) as session:
            session.add(
                PortalState(
                    portal_key=bridge.portal.key,
                    offline_mode="basic",
                    offline_read_at=utcnow(),
                )
            )
            session.commit()
        lost = client.call("event.offline.get", {"clear": 1})["result"]["events"]
    assert len(lost) == 1

    bridge.start_worker()
    wait_for(lambda: summaries(bridge) == ["Read, then lost"], 20, "the reconciled calendar")

    assert len(bridge.mappings()) == 1
    wait_for(lambda: _mark(bridge) is None, 20, "the mark to be dropped")


def _installed(bridge: Bridge) -> bool:
    with Session(bridge.engine) as session:
        row = session.get(PortalCredentials, bridge.portal.key)
        return row is not None and row.access_token is not None


def _mark(bridge: Bridge) -> datetime | None:
    with Session(bridge.engine) as session:
        state = session.get(PortalState, bridge.portal.key)
        return state.offline_read_at if state else None


def test_a_pull_refused_for_good_is_parked_alerted_shown_and_replayable(make_bridge: App) -> None:
    bridge = make_bridge(app=OFFLINE, notify={"bitrix_users": [1]})
    bridge.install()
    wait_for(lambda: "ONOFFLINEEVENT" in bound_events(bridge), 20, "the worker to bind")
    bridge.bitrix_fault(
        method="event.offline.get",
        count=None,
        status=403,
        error="ACCESS_DENIED",
        description="Access denied!",
    )

    wait_for(lambda: "offline pull failed" in bridge.status_text(), 20, "status to show it")
    bridge.notifier.wait_idle()
    notices = bridge.bitrix.notifications(bridge.member_id)
    assert any("ACCESS_DENIED" in str(notice) for notice in notices)
    assert "ACCESS_DENIED" in bridge.status_json()["offline"]["pull_failed"]
    [parked] = [r for r in bridge.inbox() if r.state == InboxState.PARKED]
    assert parked.event == "ONOFFLINEEVENT"
    bridge.bitrix.clear_faults()

    assert replay_parked(bridge.engine, bridge.portal.key) == 1
    wait_for(
        lambda: [r.state for r in bridge.inbox() if r.id == parked.id] == [InboxState.DONE],
        20,
        "the replayed pull",
    )
    bridge.add_section("company_calendar", 0, "After the replay")
    bridge.flush_deliveries()
    wait_for(lambda: summaries(bridge) == ["After the replay"], 20, "the calendar")
