"""Portals set up the ordinary ways name addresses the config does not: a self-hosted portal
reached internally, another region's OAuth server, a renamed portal. Their events are applied
and the difference reported once; REST follows a moved portal (NOTES.md §9a)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bridge.deployment import settled
from bridge.harness import wait_for
from bridge.models import InboxState, PortalAddress
from bridge.sandbox.bitrix import http_build_query
from tests.e2e.conftest import Bridge, Deploy
from tests.e2e.test_operations import Receiver, samples

App = Callable[..., Bridge]

# variant: (the portal's domain, the emulator's knobs, what events then name)
VARIANTS: dict[str, tuple[str | None, dict[str, Any], tuple[str, str]]] = {
    "self-hosted, REST reached internally": (
        "booking.ops.bx",
        {"address": "http://booking.ops.bx"},
        ("client_endpoint", "http://booking.ops.bx/rest/"),
    ),
    "another region's OAuth server": (
        None,
        {"region": "ru"},
        ("server_endpoint", "https://oauth.bitrix24.tech/rest/"),
    ),
    "a changed domain": (
        None,
        {"domain": "acme-renamed.bitrix24.com"},
        ("domain", "acme-renamed.bitrix24.com"),
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_an_event_naming_another_address_is_applied_and_reported_once(
    make_bridge: App, variant: str
) -> None:
    domain, knobs, (kind, value) = VARIANTS[variant]
    receiver = Receiver()
    with receiver.server:
        bridge = make_bridge(domain=domain, notify={"webhook_url": f"{receiver.server.url}/hook"})
        bridge.patch_portal(**knobs)
        bridge.add_section("company_calendar", 0, "Board")
        bridge.wait_applied(1)
        bridge.add_section("company_calendar", 0, "Works council")
        rows = bridge.wait_applied(2)
        bridge.notifier.wait_idle()

    assert [row.state for row in rows] == [InboxState.DONE, InboxState.DONE]
    assert sorted(c["summary"] for c in bridge.calendars()) == ["Board", "Works council"]
    [alert] = receiver.messages
    assert alert["cause"].startswith("address")
    assert value in alert["text"]
    [line] = [line for line in bridge.status_text().splitlines() if "address:" in line]
    assert value in line
    metric = ("bridge_portal_addresses", (("kind", kind), ("portal", "acme")))
    assert samples(bridge.web_url)[metric] == 1
    assert bridge.portal.application_token not in alert["text"] + line


def test_an_address_is_reported_again_only_when_it_changes_again(make_bridge: App) -> None:
    receiver = Receiver()
    with receiver.server:
        bridge = make_bridge(notify={"webhook_url": f"{receiver.server.url}/hook"})
        bridge.patch_portal(domain="acme-renamed.bitrix24.com")
        bridge.add_section("company_calendar", 0, "First name")
        bridge.wait_applied(1)
        bridge.patch_portal(domain="acme-final.bitrix24.com")
        bridge.add_section("company_calendar", 0, "Second name")
        bridge.wait_applied(2)
        bridge.add_section("company_calendar", 0, "Still the second name")
        bridge.wait_applied(3)
        bridge.notifier.wait_idle()

    texts = [message["text"] for message in receiver.messages]
    assert len(texts) == 2
    assert "acme-renamed.bitrix24.com" in texts[0] and "acme-final.bitrix24.com" in texts[1]
    assert len(bridge.calendars()) == 3


def test_an_address_that_cannot_be_recorded_does_not_cost_the_event(make_bridge: App) -> None:
    bridge = make_bridge()
    with bridge.engine.begin() as connection:  # a real database failure for this one table
        connection.execute(text("DROP TABLE portal_address"))
    bridge.patch_portal(domain="acme-renamed.bitrix24.com")

    bridge.add_section("company_calendar", 0, "Applied anyway")

    [row] = bridge.wait_applied(1)
    assert row.state == InboxState.DONE
    assert [c["summary"] for c in bridge.calendars()] == ["Applied anyway"]


def test_only_member_id_and_token_decide_who_may_send(make_bridge: App) -> None:
    bridge = make_bridge()
    section = bridge.add_section("company_calendar", 0, "Forged", deliver=False)
    elsewhere = {
        "domain": "evil.example",
        "client_endpoint": "https://evil.example/rest/",
        "server_endpoint": "https://evil.example/oauth/",
    }

    def event(**auth: str) -> str:
        base = {"member_id": bridge.portal.member_id, "application_token": "x" * 32}
        fields = {"event": "ONCALENDARSECTIONADD", "data": {"id": section["ID"]}}
        return http_build_query({**fields, "auth": {**base, **elsewhere, **auth}})

    unknown = bridge.post_event(event(member_id="f" * 32, application_token="t" * 32))
    wrong_token = bridge.post_event(event())

    assert unknown.status_code == 403 and "member_id" in unknown.json()["error"]
    assert wrong_token.status_code == 401 and "application_token" in wrong_token.json()["error"]
    assert bridge.inbox() == []
    with Session(bridge.engine) as session:
        assert session.exec(select(PortalAddress)).all() == []
    assert bridge.calendars() == []


def test_rest_calls_follow_a_portal_to_its_new_address(deploy: Deploy) -> None:
    deployment = deploy()
    bitrix = deployment.sandbox.bitrix_url
    port = httpx.URL(bitrix).port
    old, new = f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    control, member_id = deployment.sandbox.bitrix, deployment.portal.member_id
    hook = deployment.portal.bitrix.webhook_url or ""
    deployment.env["ACME_BITRIX_WEBHOOK"] = hook.replace(new, old)  # the config names the old
    control.patch_portal(member_id, address=old)
    deployment.start_web()
    deployment.start("worker")
    deployment.add_section("Before the move")
    wait_for(settled(deployment, 1), 30, "the first section")

    # The log is cleared before the move: the worker may call REST at any moment (a periodic
    # reconciliation), and the one redirect it gets must stay in the log.
    control.clear_requests()
    control.patch_portal(member_id, domain="acme-renamed.bitrix24.com", address=new, moved=True)
    deployment.add_section("After the move")
    deployment.add_section("Later still")
    wait_for(settled(deployment, 3), 30, "the sections added after the move")

    assert sorted(c["summary"] for c in deployment.calendars()) == [
        "BX: After the move",
        "BX: Before the move",
        "BX: Later still",
    ]
    assert all(row.state == InboxState.DONE for row in deployment.inbox())
    requests = control.requests(member_id)
    # Calls made before the move answered at the old address; exactly one answered 302 and
    # none came there after it: the client went straight to the new address from then on.
    at_old = [r["status"] for r in requests if r["address"] == old]
    assert at_old.count(302) == 1 and at_old[-1] == 302
    assert set(at_old[:-1]) <= {200}
    status = deployment.run("status", "--json")
    [portal] = json.loads(status.stdout)["portals"]
    named = {(a["kind"], a["value"]) for a in portal["addresses"]}
    assert ("rest_url", f"{new}/rest/") in named
    assert ("domain", "acme-renamed.bitrix24.com") in named
    text = deployment.run("status").stdout
    assert f"redirected to {new}/rest/" in text
    code = hook.rstrip("/").rsplit("/", 1)[1]
    assert code not in status.stdout + text


def test_an_apps_events_from_another_oauth_server_are_applied_and_reported(
    make_bridge: App,
) -> None:
    bridge = make_bridge(app={})
    bridge.install()
    wait_for(lambda: bool(bridge.app_state()["apps"][0]["bindings"]), 20, "the binding")
    bridge.patch_portal(region="ru")

    bridge.add_section("company_calendar", 0, "Over OAuth, zone ru")

    wait_for(lambda: len(bridge.calendars()) == 1, 20, "the calendar")
    assert bridge.calendars()[0]["summary"] == "Over OAuth, zone ru"
    [line] = [line for line in bridge.status_text().splitlines() if "address:" in line]
    assert "https://oauth.bitrix24.tech/rest/" in line
    assert "bitrix.oauth.server_endpoint" in line
