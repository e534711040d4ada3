"""The emulator's real-portal address knobs: another region's OAuth server, a public address that
differs from the one REST is called at, and an address change (NOTES.md §9a)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from bridge.sandbox.bitrix import parse_php_query
from tests.sandbox.test_bitrix_emulator import CODE, DOMAIN, MEMBER, Receiver, bind_hook, flush


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.server.start()
    yield receiver
    receiver.server.stop()


@pytest.fixture
def control(emulator_url: str, receiver: Receiver) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator_url, timeout=10.0) as client:
        client.post("/_control/reset").raise_for_status()
        receiver.records.clear()
        client.post(
            "/_control/portals",
            json={"member_id": MEMBER, "domain": DOMAIN, "webhook_code": CODE},
        ).raise_for_status()
        bind_hook(control=client, receiver=receiver)
        yield client


def delivered_auth(control: httpx.Client, receiver: Receiver, name: str) -> dict[str, Any]:
    """Create a section through the control API and return the `auth` block of its event."""
    control.post(
        f"/_control/portals/{MEMBER}/sections",
        json={"type": "company_calendar", "owner_id": 0, "name": name},
    ).raise_for_status()
    flush(control)
    body = receiver.records[-1]["body"]
    auth: dict[str, Any] = parse_php_query(parse_qsl(body, keep_blank_values=True))["auth"]
    return auth


def patch(control: httpx.Client, **knobs: Any) -> httpx.Response:
    return control.patch(f"/_control/portals/{MEMBER}", json=knobs)


def test_deliveries_name_the_portals_oauth_server(
    control: httpx.Client, receiver: Receiver
) -> None:
    assert delivered_auth(control, receiver, "World")["server_endpoint"] == (
        "https://oauth.bitrix.info/rest/"
    )

    assert patch(control, region="ru").json()["server_endpoint"] == (
        "https://oauth.bitrix24.tech/rest/"
    )
    assert delivered_auth(control, receiver, "Zone ru")["server_endpoint"] == (
        "https://oauth.bitrix24.tech/rest/"
    )
    patch(control, server_endpoint="https://oauth.example.test/rest").raise_for_status()
    assert delivered_auth(control, receiver, "Own")["server_endpoint"] == (
        "https://oauth.example.test/rest/"
    )


def test_bad_address_knobs_are_refused_and_change_nothing(control: httpx.Client) -> None:
    unknown_region = patch(control, region="mars", domain="changed.example")
    no_new_address = patch(control, moved=True)
    no_old_address = patch(control, moved=True, address="http://127.0.0.1:1")
    with_path = patch(control, address="http://booking.ops.bx/portal")

    assert unknown_region.status_code == 400 and "region" in unknown_region.json()["error"]
    assert no_new_address.status_code == 400 and "address" in no_new_address.json()["error"]
    assert no_old_address.status_code == 400 and "previous" in no_old_address.json()["error"]
    assert with_path.status_code == 400
    [portal] = control.get("/_control/portals").json()["portals"]
    assert (portal["domain"], portal["address"], portal["server_endpoint"]) == (DOMAIN, None, None)


def test_events_name_the_public_address_while_rest_answers_anywhere(
    control: httpx.Client, receiver: Receiver, emulator_url: str
) -> None:
    patch(control, address="http://booking.ops.bx").raise_for_status()

    auth = delivered_auth(control, receiver, "Box")
    answer = httpx.post(
        f"{emulator_url}/rest/1/{CODE}/calendar.section.get.json",
        json={"type": "company_calendar", "ownerId": 0},
    )

    assert auth["client_endpoint"] == "http://booking.ops.bx/rest/"
    assert auth["domain"] == DOMAIN
    assert answer.status_code == 200
    assert [s["NAME"] for s in answer.json()["result"]] == ["Box"]


def test_a_moved_portal_redirects_rest_from_its_old_address(
    control: httpx.Client, receiver: Receiver, emulator_url: str
) -> None:
    port = httpx.URL(emulator_url).port
    old, new = f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    patch(control, address=old).raise_for_status()
    path = f"/rest/1/{CODE}/calendar.section.get.json"
    params = {"type": "company_calendar", "ownerId": 0}
    before = httpx.post(old + path, json=params)

    moved = patch(control, domain="acme-renamed.bitrix24.com", address=new, moved=True)
    at_old = httpx.post(old + path, json=params, follow_redirects=False)
    at_new = httpx.post(new + path, json=params)
    auth = delivered_auth(control, receiver, "After the move")

    assert before.status_code == 200
    assert moved.json()["moved_from"] == [old] and moved.json()["address"] == new
    assert at_old.status_code == 302
    assert at_old.headers["location"] == new + path
    assert at_new.status_code == 200
    assert auth["domain"] == "acme-renamed.bitrix24.com"
    assert auth["client_endpoint"] == f"{new}/rest/"
    logged = control.get("/_control/requests", params={"member_id": MEMBER}).json()["requests"]
    assert [(r["address"], r["status"]) for r in logged] == [(old, 200), (old, 302), (new, 200)]
