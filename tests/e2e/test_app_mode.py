"""Bitrix24 app mode: install, OAuth tokens, binding, offline delivery and trust boundaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import httpx
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.bindings import bind_events, unbind_events
from bridge.harness import ROOT, wait_for
from bridge.models import InboxState, PortalCredentials
from bridge.oauth import bitrix_client_for
from bridge.sandbox.bitrix import http_build_query
from bridge.sandbox.server import ServerThread
from tests.e2e.conftest import TEST_ENV, Bridge

App = Callable[..., Bridge]


def installed(bridge: Bridge) -> PortalCredentials:
    with Session(bridge.engine) as session:
        row = session.exec(select(PortalCredentials)).one()
        return row


def tokens(bridge: Bridge) -> dict[str, str | None]:
    """The live install's tokens as the bridge reads them (they are stored encrypted)."""
    row = installed(bridge)
    assert bridge.cipher is not None
    names = ("access_token", "refresh_token", "application_token")
    return {name: bridge.cipher.open(getattr(row, name)) for name in names}


def verified(bridge: Bridge) -> None:
    """What the worker does first; for tests that start their worker later, or never."""
    assert [verdict.problem for verdict in bridge.verify_installs()] == [None]


def summaries(bridge: Bridge) -> list[str]:
    return sorted(c["summary"] for c in bridge.calendars())


def test_install_stores_tokens_and_sections_are_mirrored_over_oauth(make_bridge: App) -> None:
    bridge = make_bridge(app={})
    answer = bridge.install()
    wait_for(
        lambda: len(bridge.app_state()["apps"][0]["bindings"]) == 7, 20, "the worker to bind events"
    )

    # Verified by a refresh: the bridge holds the refreshed pair and the install's app token.
    current = bridge.app_state()["apps"][0]
    live = tokens(bridge)
    assert live == {
        "access_token": current["access_token"],
        "refresh_token": current["refresh_token"],
        "application_token": answer["application_token"],
    }
    assert current["refresh_token"] != answer["refresh_token"]
    bridge.add_section("company_calendar", 0, "Over OAuth")
    wait_for(lambda: summaries(bridge) == ["Over OAuth"], 20, "the calendar")
    calls = [
        r for r in bridge.bitrix_requests() if r["method"] in ("batch", "event.bind", "event.get")
    ]
    assert calls and all(r.get("client_id") == bridge.client_id for r in calls)
    stored = "".join(row.payload for row in bridge.inbox())
    assert live["access_token"] is not None and live["access_token"] not in stored
    assert answer["access_token"] not in stored and answer["refresh_token"] not in stored


def test_an_install_for_a_portal_that_is_not_configured_as_an_app_is_refused(
    make_bridge: App, bridge: Bridge
) -> None:
    app = make_bridge(app={})
    fields = {
        "event": "ONAPPINSTALL",
        "auth": {
            "access_token": "a" * 32,
            "refresh_token": "r" * 32,
            "domain": app.portal.domain,
            "member_id": "f" * 32,
            "application_token": "t" * 32,
            "client_endpoint": f"{app.sandbox.bitrix_url}/rest/",
        },
    }
    unknown = app.post_event(http_build_query(fields))
    fields["auth"] = {
        **fields["auth"],
        "member_id": bridge.portal.member_id,
        "domain": bridge.portal.domain,
    }
    webhook_portal = bridge.post_event(http_build_query(fields))

    assert unknown.status_code == 403
    assert webhook_portal.status_code == 403 and "not as an app" in webhook_portal.json()["error"]
    assert bridge.inbox() == []


def test_an_expired_token_is_refreshed_once_for_8_threads_and_2_processes(make_bridge: App) -> None:
    bridge = make_bridge(app={}, worker=False)
    bridge.install()
    verified(bridge)
    refreshes_before = bridge.app_state()["refresh_count"]  # the verification's refresh
    bridge.bitrix.expire_tokens(bridge.member_id)
    script = (
        "import sys, json, threading\n"
        "from bridge.config import PortalConfig, Settings\n"
        "from bridge.db import create_db_engine\n"
        "from bridge.oauth import bitrix_client_for\n"
        "from bridge.tokens import token_cipher\n"
        "portal = PortalConfig.model_validate(json.loads(sys.argv[2]))\n"
        "cipher = token_cipher(Settings.from_env().token_keys, [portal])\n"
        "engine = create_db_engine(sys.argv[1])\n"
        "def call():\n"
        "    with bitrix_client_for(engine, portal, cipher=cipher) as client:\n"
        "        client.call('calendar.resource.list')\n"
        "threads = [threading.Thread(target=call) for _ in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
    )
    url = str(bridge.engine.url.render_as_string(hide_password=False))
    config = json.dumps(bridge.portal.model_dump(mode="json"))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, url, config],
            cwd=ROOT,
            env={**os.environ, **TEST_ENV},
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errors = [process.communicate(timeout=60)[1] for process in processes]

    assert [p.returncode for p in processes] == [0, 0], errors
    state = bridge.app_state()
    assert state["refresh_count"] == refreshes_before + 1
    assert tokens(bridge)["refresh_token"] == state["apps"][0]["refresh_token"]
    assert installed(bridge).refresh_count == 1
    assert not [
        r
        for r in bridge.bitrix_requests()
        if r.get("status") == 401 and r.get("error") == "invalid_grant"
    ]


def test_a_refused_refresh_parks_the_work_with_the_reason(make_bridge: App) -> None:
    bridge = make_bridge(app={})
    bridge.install()
    wait_for(lambda: len(bridge.app_state()["apps"][0]["bindings"]) == 7, 20, "the binding")
    with Session(bridge.engine) as session:
        row = session.exec(select(PortalCredentials)).one()
        assert bridge.cipher is not None
        row.refresh_token = bridge.cipher.seal("revoked-refresh-token")
        session.add(row)
        session.commit()
    bridge.bitrix.expire_tokens(bridge.member_id)
    # Restart the worker so it reads the stored (now broken) tokens instead of its cached one.
    bridge.start_worker()

    bridge.add_section("company_calendar", 0, "Blocked")
    wait_for(
        lambda: any(r.state == InboxState.PARKED for r in bridge.inbox()), 20, "the event to park"
    )

    [parked] = [r for r in bridge.inbox() if r.state == InboxState.PARKED]
    assert "reinstall" in (parked.outcome or "")
    assert bridge.calendars() == []


def test_bind_twice_makes_one_set_and_unbind_removes_it(make_bridge: App) -> None:
    bridge = make_bridge(app={}, worker=False)
    bridge.install()
    verified(bridge)
    handler = f"{bridge.web_url}/bitrix/events"
    with bitrix_client_for(bridge.engine, bridge.portal, cipher=bridge.cipher) as client:
        first = bind_events(client, bridge.portal, handler)
        second = bind_events(client, bridge.portal, handler)
        bindings = bridge.app_state()["apps"][0]["bindings"]
        removed = unbind_events(client, handler)

    assert len(first) == 7 and second == []
    assert sorted(b["event"] for b in bindings) == [
        "ONAPPUNINSTALL",
        "ONCALENDARENTRYADD",
        "ONCALENDARENTRYDELETE",
        "ONCALENDARENTRYUPDATE",
        "ONCALENDARSECTIONADD",
        "ONCALENDARSECTIONDELETE",
        "ONCALENDARSECTIONUPDATE",
    ]
    assert removed == 7
    assert bridge.app_state()["apps"][0]["bindings"] == []


def test_offline_changes_made_while_the_bridge_is_down_are_all_applied(make_bridge: App) -> None:
    bridge = make_bridge(
        app={"delivery": "offline", "offline_poll_seconds": 0.2},
        worker=False,
        google={"creation_pace": {"calendars": 1000, "minutes": 60}},
    )
    bridge.install()
    verified(bridge)
    with bitrix_client_for(bridge.engine, bridge.portal, cipher=bridge.cipher) as client:
        bind_events(client, bridge.portal, None)
    # 100 changes: 50 sections made, then each renamed (Google's emulator allows 60 new calendars
    # per owner and hour, as Google does).
    sections = [bridge.add_section("company_calendar", 0, f"Draft {i:02}") for i in range(50)]
    for i, section in enumerate(sections):
        bridge.update_section(section["ID"], name=f"Offline {i:02}")
    assert len(_offline(bridge)) == 100  # one record per (event, section): latest state only

    bridge.start_worker()
    wanted = [f"Offline {i:02}" for i in range(50)]
    wait_for(lambda: summaries(bridge) == wanted, 60, "50 calendars")

    wait_for(lambda: not _offline(bridge), 20, "the queue to be cleared")
    pulled = [row for row in bridge.wait_applied(101) if row.section_id]
    assert len(pulled) == 100 and {row.state for row in pulled} == {InboxState.DONE}
    assert len(bridge.mappings()) == 50


def _offline(bridge: Bridge) -> list[dict[str, Any]]:
    return bridge.bitrix.offline(bridge.member_id)


def test_a_crash_between_pull_and_clear_loses_nothing_and_duplicates_nothing(
    make_bridge: App,
) -> None:
    bridge = make_bridge(app={"delivery": "offline", "offline_poll_seconds": 0.2}, worker=False)
    bridge.install()
    verified(bridge)
    with bitrix_client_for(bridge.engine, bridge.portal, cipher=bridge.cipher) as client:
        bind_events(client, bridge.portal, None)
    for name in ("A", "B", "C"):
        bridge.add_section("company_calendar", 0, name)
    # The confirmation fails as if the worker died right after writing the inbox.
    bridge.bitrix_fault(
        method="event.offline.clear",
        count=None,
        kind="error",
        status=500,
        error="INTERNAL_SERVER_ERROR",
    )

    bridge.start_worker()
    wait_for(
        lambda: summaries(bridge) == ["A", "B", "C"], 30, "the calendars despite the failed clear"
    )
    assert len(_offline(bridge)) == 3  # reserved, not confirmed
    bridge.bitrix.clear_faults()

    wait_for(lambda: not _offline(bridge), 30, "the saved batch to be re-read and cleared")
    # The worker writes a pulled batch to the inbox before it clears it: once those rows are
    # applied, any duplicate they would make is in Google.
    bridge.wait_applied(3)
    assert summaries(bridge) == ["A", "B", "C"]
    assert len(bridge.mappings()) == 3


class Listener:
    """Stands where an attacker's endpoint would be: it must never be called."""

    def __init__(self) -> None:
        self.hits = 0
        self.lock = threading.Lock()

        async def anything(request: Request) -> Response:
            with self.lock:
                self.hits += 1
            return Response("{}", media_type="application/json")

        self.server = ServerThread(
            Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
        )


def test_installs_naming_a_foreign_endpoint_are_refused(make_bridge: App) -> None:
    listener = Listener()
    with listener.server:
        bridge = make_bridge(app={})
        install = {
            "event": "ONAPPINSTALL",
            "auth": {
                "access_token": "a" * 32,
                "refresh_token": "r" * 32,
                "domain": bridge.portal.domain,
                "member_id": bridge.portal.member_id,
                "application_token": "t" * 32,
                "client_endpoint": f"{listener.server.url}/rest/",
                "server_endpoint": f"{bridge.sandbox.bitrix_url}/oauth/rest/",
            },
        }
        foreign_install = bridge.post_event(http_build_query(install))
        install["auth"] = {
            **install["auth"],
            "client_endpoint": f"{bridge.sandbox.bitrix_url}/rest/",
            "server_endpoint": f"{listener.server.url}/oauth/rest/",
        }
        foreign_oauth = bridge.post_event(http_build_query(install))
        assert bridge.inbox() == []
        # A genuine install after them: the worker verifies a portal's installs oldest first, so
        # once this one is bound, a kept foreign one would have been verified (and called) before.
        bridge.install()
        wait_for(lambda: len(bridge.app_state()["apps"][0]["bindings"]) == 7, 20, "the binding")

    assert (
        foreign_install.status_code == 403 and "client_endpoint" in foreign_install.json()["error"]
    )
    assert foreign_oauth.status_code == 403 and "server_endpoint" in foreign_oauth.json()["error"]
    assert listener.hits == 0


def test_uninstall_stops_the_portals_work(make_bridge: App) -> None:
    bridge = make_bridge(app={})
    bridge.install()
    wait_for(lambda: len(bridge.app_state()["apps"][0]["bindings"]) == 7, 20, "the binding")
    token = tokens(bridge)["application_token"]
    assert token is not None

    bridge.bitrix.uninstall(bridge.member_id, bridge.client_id)
    bridge.flush_deliveries()
    wait_for(lambda: installed(bridge).uninstalled_at is not None, 20, "the uninstall")
    late = {
        "event": "ONCALENDARSECTIONADD",
        "data": {"id": "1"},
        "auth": {
            "domain": bridge.portal.domain,
            "member_id": bridge.portal.member_id,
            "application_token": token,
            "client_endpoint": f"{bridge.sandbox.bitrix_url}/rest/",
        },
    }
    assert bridge.post_event(http_build_query(late)).status_code == 200

    wait_for(
        lambda: any(r.state == InboxState.PARKED for r in bridge.inbox()), 20, "the event to park"
    )
    [parked] = [r for r in bridge.inbox() if r.state == InboxState.PARKED]
    assert "uninstalled" in (parked.outcome or "")
    assert bridge.calendars() == []
    assert installed(bridge).access_token is None
    assert httpx.get(f"{bridge.web_url}/healthz").status_code == 200
