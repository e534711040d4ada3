from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bridge.sandbox.bitrix import BitrixControl
from tests.sandbox.conftest import Receiver

MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
DOMAIN = "acme.bitrix24.com"
CODE = "s3cr3tcode"
CLIENT_ID = "local.66aa5f2e1b3c47.12345678"
SECRET = "LJSl0lNB76B5YY6u0YVQ3AW0DrVADcRTwVr4y99PXU1BWQybWK"
APP_TOKEN = "51856fefc120afa4b628cc82d3935cce"
FULL_AUTH = [
    "access_token",
    "expires_in",
    "scope",
    "domain",
    "server_endpoint",
    "status",
    "client_endpoint",
    "member_id",
    "refresh_token",
    "application_token",
]
SECTION_EVENTS = ["ONCALENDARSECTIONADD", "ONCALENDARSECTIONUPDATE", "ONCALENDARSECTIONDELETE"]


@pytest.fixture
def control(control: BitrixControl) -> BitrixControl:
    """The module's portal and the app (CLIENT_ID, SECRET), not yet installed."""
    control.add_app(client_id=CLIENT_ID, client_secret=SECRET)
    return control


@pytest.fixture
def install(control: BitrixControl, receiver: Receiver) -> dict[str, Any]:
    installed = control.install(
        MEMBER,
        CLIENT_ID,
        f"{receiver.server.url}/install",
        access_lifetime_s=3600,
        application_token=APP_TOKEN,
    )
    flush(control)
    return dict(installed)


@pytest.fixture
def rest(emulator_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{emulator_url}/rest/", timeout=10.0) as client:
        yield client


def call(rest: httpx.Client, token: str, method: str, **params: Any) -> httpx.Response:
    return rest.post(method, json={**params, "auth": token})


def flush(control: BitrixControl) -> list[dict[str, Any]]:
    return control.flush_deliveries(timeout=5)


def refresh(emulator_url: str, refresh_token: str, secret: str = SECRET) -> httpx.Response:
    query = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "refresh_token": refresh_token,
    }
    return httpx.get(f"{emulator_url}/oauth/token/", params=query, timeout=10.0)


def add_section(rest: httpx.Client, token: str, name: str = "Team") -> int:
    response = call(rest, token, "calendar.section.add", type="user", ownerId=1, name=name)
    assert response.status_code == 200, response.text
    return int(response.json()["result"])


def update_section(control: BitrixControl, section_id: int, name: str) -> None:
    control.update_section(MEMBER, str(section_id), name=name)


# install, OAuth calls, refresh


def test_install_posts_onappinstall_with_the_token_set(
    install: dict[str, Any], receiver: Receiver, emulator_url: str
) -> None:
    assert install["application_token"] == APP_TOKEN
    assert install["client_endpoint"] == f"{emulator_url}/rest/"
    assert install["server_endpoint"] == f"{emulator_url}/oauth/rest/"
    [record] = receiver.records
    assert record["path"] == "/install"
    assert record["content_type"] == "application/x-www-form-urlencoded"
    assert record["raw"].startswith(
        "event=ONAPPINSTALL&data%5BVERSION%5D=1&data%5BACTIVE%5D=Y&data%5BINSTALLED%5D=Y"
        "&data%5BLANGUAGE_ID%5D=en&ts="
    )
    body = record["body"]
    assert "event_handler_id" not in body
    assert list(body["auth"]) == FULL_AUTH
    auth = body["auth"]
    assert auth["access_token"] == install["access_token"]
    assert auth["refresh_token"] == install["refresh_token"]
    assert auth["application_token"] == APP_TOKEN
    assert (auth["expires_in"], auth["status"], auth["member_id"]) == ("3600", "L", MEMBER)
    assert auth["domain"] == DOMAIN


def test_oauth_calls_share_the_portal_and_expire(
    control: BitrixControl, install: dict[str, Any], rest: httpx.Client
) -> None:
    token = install["access_token"]
    section_id = add_section(rest, token)
    listed = rest.get("calendar.section.get.json", params={"type": "user", "auth": token})
    assert [row["ID"] for row in listed.json()["result"]] == [str(section_id)]
    webhook = httpx.get(f"{rest.base_url}1/{CODE}/calendar.section.get?type=user&ownerId=1")
    assert [row["ID"] for row in webhook.json()["result"]] == [str(section_id)]
    batch = rest.post(
        "batch",
        data={"auth": token, "cmd[a]": "calendar.section.get?type=user&ownerId=1"},
    )
    assert batch.json()["result"]["result"]["a"][0]["ID"] == str(section_id)

    wrong = call(rest, "nosuchtoken", "calendar.section.get", type="user")
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": "NO_AUTH_FOUND",
        "error_description": "Wrong authorization data",
    }
    assert control.expire_tokens(MEMBER) == 1
    expired = call(rest, token, "calendar.section.get", type="user")
    assert expired.status_code == 401
    assert expired.json() == {
        "error": "expired_token",
        "error_description": "The access token provided has expired",
    }


def test_refresh_rotates_and_the_old_refresh_token_fails(
    control: BitrixControl, install: dict[str, Any], rest: httpx.Client, emulator_url: str
) -> None:
    control.expire_tokens(MEMBER)
    assert refresh(emulator_url, install["refresh_token"], "wrong").json()["error"] == (
        "invalid_client"
    )
    fresh = refresh(emulator_url, install["refresh_token"])
    assert fresh.status_code == 200, fresh.text
    body = fresh.json()
    assert body["refresh_token"] != install["refresh_token"]
    assert body["access_token"] != install["access_token"]
    assert (body["expires_in"], body["member_id"], body["status"]) == (3600, MEMBER, "L")
    assert body["client_endpoint"] == f"{emulator_url}/rest/"
    assert body["server_endpoint"] == f"{emulator_url}/oauth/rest/"
    assert body["user_id"] == 1
    assert call(rest, body["access_token"], "calendar.section.get", type="user").status_code == 200

    again = refresh(emulator_url, install["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert refresh(emulator_url, body["refresh_token"]).status_code == 200
    app = control.app(MEMBER)
    assert app["refresh_count"] == 2
    assert app["apps"][0]["refresh_count"] == 2


# bindings and online delivery


def test_bind_twice_is_refused_and_unbind_counts(
    install: dict[str, Any], rest: httpx.Client, receiver: Receiver
) -> None:
    token, handler = install["access_token"], f"{receiver.server.url}/app"
    assert (
        call(rest, token, "event.bind", event="onCalendarSectionAdd", handler=handler).json()[
            "result"
        ]
        is True
    )
    twice = call(rest, token, "event.bind", event="ONCALENDARSECTIONADD", handler=handler)
    assert twice.status_code == 400
    assert twice.json()["error_description"].startswith("Unable to set event handler")
    unknown = call(rest, token, "event.bind", event="ONNOSUCHEVENT", handler=handler)
    assert (unknown.status_code, unknown.json()["error"]) == (400, "ERROR_EVENT_NOT_FOUND")
    webhook = httpx.post(
        f"{rest.base_url}1/{CODE}/event.bind",
        json={"event": "ONCALENDARSECTIONADD", "handler": handler},
    )
    assert (webhook.status_code, webhook.json()["error"]) == (403, "WRONG_AUTH_TYPE")

    bound = call(rest, token, "event.get").json()["result"]
    assert bound == [
        {"event": "ONCALENDARSECTIONADD", "handler": handler, "auth_type": "0", "offline": 0}
    ]
    unbound = call(rest, token, "event.unbind", event="ONCALENDARSECTIONADD", handler=handler)
    assert unbound.json()["result"] == {"count": 1}
    assert call(rest, token, "event.get").json()["result"] == []


def test_app_events_carry_tokens_and_webhook_events_do_not(
    control: BitrixControl, install: dict[str, Any], rest: httpx.Client, receiver: Receiver
) -> None:
    token = install["access_token"]
    for event in SECTION_EVENTS:
        bound = call(rest, token, "event.bind", event=event, handler=f"{receiver.server.url}/app")
        assert bound.status_code == 200
    control.bind_outgoing_webhook(MEMBER, f"{receiver.server.url}/hook", events=SECTION_EVENTS)
    receiver.records.clear()

    section_id = add_section(rest, token)
    flush(control)
    [app_event] = receiver.at("/app")
    [hook_event] = receiver.at("/hook")
    assert app_event["event"] == "ONCALENDARSECTIONADD"
    assert app_event["data"] == {"id": str(section_id)}
    assert list(app_event["auth"]) == FULL_AUTH
    assert app_event["auth"]["application_token"] == APP_TOKEN
    event_token = app_event["auth"]["access_token"]
    assert call(rest, event_token, "calendar.section.get", type="user").status_code == 200
    assert set(hook_event["auth"]) == {
        "domain",
        "client_endpoint",
        "server_endpoint",
        "member_id",
        "application_token",
    }

    receiver.records.clear()
    control.patch_portal(MEMBER, automation=True)
    update_section(control, section_id, "By a robot")
    flush(control)
    [robot_event] = receiver.at("/app")
    assert robot_event["event"] == "ONCALENDARSECTIONUPDATE"
    assert not {"access_token", "refresh_token", "expires_in", "scope"} & set(robot_event["auth"])
    assert robot_event["auth"]["application_token"] == APP_TOKEN


# offline queue


def test_offline_queue_coalesces_reserves_clears_and_marks_errors(
    control: BitrixControl, install: dict[str, Any], rest: httpx.Client
) -> None:
    token = install["access_token"]
    bound = call(rest, token, "event.bind", event="ONCALENDARSECTIONUPDATE", event_type="offline")
    assert bound.json()["result"] is True
    first, second = add_section(rest, token, "A"), add_section(rest, token, "B")
    for name in ("A1", "A2", "A3"):
        update_section(control, first, name)
    update_section(control, second, "B1")
    stored = control.offline(MEMBER)
    assert [r["EVENT_DATA"] for r in stored] == [{"id": str(first)}, {"id": str(second)}]
    listed = call(rest, token, "event.offline.list").json()
    assert listed["total"] == 2

    reserved = call(rest, token, "event.offline.get", clear=0, limit=1).json()["result"]
    process_a = reserved["process_id"]
    assert process_a
    [record_a] = reserved["events"]
    assert record_a["EVENT_NAME"] == "ONCALENDARSECTIONUPDATE"
    assert record_a["EVENT_DATA"] == {"id": str(first)}
    assert set(record_a) == {
        "ID",
        "TIMESTAMP_X",
        "EVENT_NAME",
        "EVENT_DATA",
        "EVENT_ADDITIONAL",
        "MESSAGE_ID",
    }
    other = call(rest, token, "event.offline.get", clear=0).json()["result"]
    process_b = other["process_id"]
    [record_b] = other["events"]
    assert process_b != process_a and record_b["EVENT_DATA"] == {"id": str(second)}
    assert call(rest, token, "event.offline.get", clear=0).json()["result"] == {
        "process_id": None,
        "events": [],
    }
    again = call(rest, token, "event.offline.get", clear=0, process_id=process_a).json()
    assert [r["ID"] for r in again["result"]["events"]] == [record_a["ID"]]

    assert call(rest, token, "event.offline.clear", process_id=process_a).json()["result"] is True
    marked = call(
        rest,
        token,
        "event.offline.error",
        process_id=process_b,
        message_id=[record_b["MESSAGE_ID"]],
    )
    assert marked.json()["result"] is True
    [left] = call(rest, token, "event.offline.list").json()["result"]
    assert (left["ID"], left["ERROR"], left["PROCESS_ID"]) == (record_b["ID"], "1", "")
    assert call(rest, token, "event.offline.get").json()["result"]["events"] == []
    retried = call(rest, token, "event.offline.get", error=1).json()["result"]
    assert [r["ID"] for r in retried["events"]] == [record_b["ID"]]
    assert call(rest, token, "event.offline.list").json()["total"] == 0


def test_offline_methods_need_an_app_and_an_admin(
    control: BitrixControl, rest: httpx.Client
) -> None:
    webhook = httpx.post(f"{rest.base_url}1/{CODE}/event.offline.list")
    assert (webhook.status_code, webhook.json()["error"]) == (403, "WRONG_AUTH_TYPE")
    token = control.install(MEMBER, CLIENT_ID, admin=False)["access_token"]
    bind = call(rest, token, "event.bind", event="ONCALENDARSECTIONADD", event_type="offline")
    assert (bind.status_code, bind.json()["error"]) == (403, "ACCESS_DENIED")
    listed = call(rest, token, "event.offline.get")
    assert listed.status_code == 403
    assert listed.json() == {"error": "ACCESS_DENIED", "error_description": "Access denied!"}


def test_onofflineevent_is_throttled_and_has_no_data(
    control: BitrixControl, install: dict[str, Any], rest: httpx.Client, receiver: Receiver
) -> None:
    token = install["access_token"]
    call(rest, token, "event.bind", event="ONCALENDARSECTIONUPDATE", event_type="offline")
    notice = call(
        rest,
        token,
        "event.bind",
        event="ONOFFLINEEVENT",
        handler=f"{receiver.server.url}/notice",
        options={"minTimeout": 30},
    )
    assert notice.json()["result"] is True
    section_id = add_section(rest, token)
    for name in ("one", "two", "three"):
        update_section(control, section_id, name)
    flush(control)
    [record] = [r for r in receiver.records if r["path"] == "/notice"]
    assert "data" not in record["body"] and "data%5B" not in record["raw"]
    assert record["body"]["event"] == "ONOFFLINEEVENT"
    assert list(record["body"]["auth"]) == FULL_AUTH


# uninstall


def test_uninstall_delivers_onappuninstall_and_kills_the_tokens(
    control: BitrixControl,
    install: dict[str, Any],
    rest: httpx.Client,
    receiver: Receiver,
    emulator_url: str,
) -> None:
    token = install["access_token"]
    handler = f"{receiver.server.url}/uninstalled"
    assert call(rest, token, "event.bind", event="ONAPPUNINSTALL", handler=handler).is_success
    receiver.records.clear()
    gone = control.uninstall(MEMBER, CLIENT_ID, clean=True)
    assert gone == {"uninstalled": CLIENT_ID, "deliveries": 1}
    flush(control)
    [event] = receiver.at("/uninstalled")
    assert receiver.at("/install") == []
    assert event["event"] == "ONAPPUNINSTALL"
    assert event["data"] == {"LANGUAGE_ID": "en", "CLEAN": "1"}
    assert event["auth"]["application_token"] == APP_TOKEN
    assert not {"access_token", "refresh_token"} & set(event["auth"])

    assert call(rest, token, "calendar.section.get", type="user").status_code == 401
    assert refresh(emulator_url, install["refresh_token"]).json()["error"] == "invalid_grant"
    assert control.app(MEMBER)["apps"] == []


def test_uninstall_is_not_delivered_to_the_install_handler_when_nothing_is_bound(
    control: BitrixControl, install: dict[str, Any], receiver: Receiver
) -> None:
    receiver.records.clear()
    gone = control.uninstall(MEMBER, CLIENT_ID)
    flush(control)

    assert gone == {"uninstalled": CLIENT_ID, "deliveries": 0}
    assert receiver.records == []


# plan features


def test_feature_get_answers_per_plan_and_for_a_self_hosted_portal(
    control: BitrixControl, install: dict[str, Any], rest: httpx.Client
) -> None:
    token = install["access_token"]

    def value(code: str) -> str:
        answer = call(rest, token, "feature.get", CODE=code)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["result"]["value"])

    assert value("rest_offline_extended") == "Y"
    assert control.set_plan(MEMBER, features=[]) == {"features": []}
    assert value("rest_offline_extended") == "N"
    assert value("rest_auth_connector") == "N"
    assert value("no_such_feature") == "Y"  # "the method does not check whether the code exists"
    control.set_plan(MEMBER, features=None)
    assert value("rest_offline_extended") == "en_selfhosted"
    empty = call(rest, token, "feature.get")
    assert (empty.status_code, empty.json()["error"]) == (400, "CODE_EMPTY")
    # Raw: the control API's refusal of a plan that is not a list is what is tested here.
    bad = control.http.put(f"/portals/{MEMBER}/plan", json={"features": "all"})
    assert bad.status_code == 400


def test_a_plan_without_the_extended_mode_refuses_reservation_but_reads_with_delete(
    control: BitrixControl, install: dict[str, Any], rest: httpx.Client
) -> None:
    token = install["access_token"]
    call(rest, token, "event.bind", event="ONCALENDARSECTIONADD", event_type="offline")
    first = add_section(rest, token, "Reserved before the downgrade")
    reserved = call(rest, token, "event.offline.get", clear=0).json()["result"]
    add_section(rest, token, "After")
    control.set_plan(MEMBER, features=["rest_auth_connector"])

    refused = call(rest, token, "event.offline.get", clear=0)
    again = call(rest, token, "event.offline.get", clear=0, process_id=reserved["process_id"])
    for answer in (refused, again):
        assert answer.status_code == 403
        assert answer.json() == {
            "error": "WRONG_LICENSE",
            "error_description": "This feature is not enabled for the current license: "
            "extended offline events handling",
        }
    batch = call(
        rest, token, "event.offline.get", clear=1, process_id=reserved["process_id"], limit=1
    ).json()["result"]
    assert [r["EVENT_DATA"] for r in batch["events"]] == [{"id": str(first)}]
    assert batch["process_id"] == reserved["process_id"]
    basic = call(rest, token, "event.offline.get").json()["result"]
    assert basic["process_id"] is None and len(basic["events"]) == 1
    assert call(rest, token, "event.offline.list").json()["total"] == 0


def test_reading_a_batch_with_clear_deletes_all_of_it(
    control: BitrixControl, install: dict[str, Any], rest: httpx.Client
) -> None:
    token = install["access_token"]
    call(rest, token, "event.bind", event="ONCALENDARSECTIONADD", event_type="offline")
    for name in ("A", "B", "C"):
        add_section(rest, token, name)
    process_id = call(rest, token, "event.offline.get", clear=0).json()["result"]["process_id"]

    one = call(rest, token, "event.offline.get", process_id=process_id, limit=1).json()["result"]

    assert len(one["events"]) == 1
    assert call(rest, token, "event.offline.list").json()["total"] == 0
