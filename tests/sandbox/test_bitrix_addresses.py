"""The emulator's real-portal address knobs: another region's OAuth server, a public address that
differs from the one REST is called at, and an address change (NOTES.md §9a)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bridge.sandbox.bitrix import BitrixControl
from tests.sandbox.conftest import Receiver
from tests.sandbox.test_bitrix_emulator import CODE, DOMAIN, MEMBER, bind_hook, flush


@pytest.fixture
def control(control: BitrixControl, receiver: Receiver) -> BitrixControl:
    """The module's portal, its section events delivered to the receiver."""
    bind_hook(control, receiver)
    return control


def delivered_auth(control: BitrixControl, receiver: Receiver, name: str) -> dict[str, Any]:
    """Create a section through the control API and return the `auth` block of its event."""
    control.add_section(MEMBER, "company_calendar", 0, name)
    flush(control)
    auth: dict[str, Any] = receiver.records[-1]["body"]["auth"]
    return auth


def patch(control: BitrixControl, **knobs: Any) -> httpx.Response:
    """Raw, not `patch_portal`: these tests read the control API's refusals (400s) too."""
    return control.http.patch(f"/portals/{MEMBER}", json=knobs)


def test_deliveries_name_the_portals_oauth_server(
    control: BitrixControl, receiver: Receiver
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


def test_bad_address_knobs_are_refused_and_change_nothing(control: BitrixControl) -> None:
    unknown_region = patch(control, region="mars", domain="changed.example")
    no_new_address = patch(control, moved=True)
    no_old_address = patch(control, moved=True, address="http://127.0.0.1:1")
    with_path = patch(control, address="http://booking.ops.bx/portal")

    assert unknown_region.status_code == 400 and "region" in unknown_region.json()["error"]
    assert no_new_address.status_code == 400 and "address" in no_new_address.json()["error"]
    assert no_old_address.status_code == 400 and "previous" in no_old_address.json()["error"]
    assert with_path.status_code == 400
    [portal] = control.portals()
    assert (portal["domain"], portal["address"], portal["server_endpoint"]) == (DOMAIN, None, None)


def test_events_name_the_public_address_while_rest_answers_anywhere(
    control: BitrixControl, receiver: Receiver, emulator_url: str
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
    control: BitrixControl, receiver: Receiver, emulator_url: str
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
    logged = control.requests(MEMBER)
    assert [(r["address"], r["status"]) for r in logged] == [(old, 200), (old, 302), (new, 200)]
