from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from bridge.sandbox.bitrix import BitrixControl, http_build_query, parse_php_query
from tests.sandbox.conftest import Receiver

MEMBER = "a223c6b3710f85df22e9377d6c4f7553"
DOMAIN = "acme.bitrix24.com"
CODE = "s3cr3tcode"
TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"
AUTH_KEYS = {
    "auth[domain]",
    "auth[client_endpoint]",
    "auth[server_endpoint]",
    "auth[member_id]",
    "auth[application_token]",
}


def test_a_portal_is_made_with_its_incoming_webhook(
    control: BitrixControl, emulator_url: str
) -> None:
    [portal] = control.portals()

    assert (portal["member_id"], portal["domain"]) == (MEMBER, DOMAIN)
    assert portal["webhook_url"] == f"{emulator_url}/rest/1/{CODE}/"


def bind_hook(control: BitrixControl, receiver: Receiver, path: str = "/hook") -> str:
    events = ["OnCalendarSectionAdd", "ONCALENDARSECTIONUPDATE", "ONCALENDARSECTIONDELETE"]
    bound = control.bind_outgoing_webhook(MEMBER, f"{receiver.server.url}{path}", TOKEN, events)
    assert bound["application_token"] == TOKEN
    return str(bound["id"])


def add_section(control: BitrixControl, **fields: Any) -> dict[str, Any]:
    kind, owner_id, name = fields.pop("type"), fields.pop("owner_id", None), fields.pop("name")
    return control.add_section(MEMBER, kind, owner_id, name, **fields)


def flush(control: BitrixControl) -> list[dict[str, Any]]:
    return control.flush_deliveries(timeout=5)


# REST: sections and resources


def test_section_get_requires_type_and_owner(rest: httpx.Client) -> None:
    response = rest.post("calendar.section.get", json={"ownerId": 1})
    assert response.status_code == 400
    assert response.json() == {
        "error": "",
        "error_description": 'The required parameter "type" for the method '
        '"calendar.section.get" is not set',
    }
    response = rest.post("calendar.section.get.json", data={"type": "group"})
    assert response.status_code == 400
    assert response.json()["error"] == ""
    assert '"ownerId"' in response.json()["error_description"]


def test_section_get_returns_active_sections_of_type_and_owner(
    control: BitrixControl, rest: httpx.Client
) -> None:
    mine = add_section(control, type="user", owner_id=1, name="Mine", color="#9cbeee")
    add_section(control, type="user", owner_id=2, name="Other user")
    add_section(control, type="group", owner_id=5, name="Group")
    gone = add_section(control, type="user", owner_id=1, name="Gone")
    room = add_section(control, type="resource", name="Room 1")
    control.delete_section(MEMBER, gone["ID"])

    response = rest.post("calendar.section.get", json={"type": "user", "ownerId": 1})
    assert response.status_code == 200
    body = response.json()
    assert [s["ID"] for s in body["result"]] == [mine["ID"]]
    section = body["result"][0]
    assert list(section) == [
        "ID", "NAME", "GAPI_CALENDAR_ID", "DESCRIPTION", "COLOR", "TEXT_COLOR", "EXPORT",
        "CAL_TYPE", "OWNER_ID", "CREATED_BY", "DATE_CREATE", "TIMESTAMP_X", "CAL_DAV_CON",
        "SYNC_TOKEN", "PAGE_TOKEN", "EXTERNAL_TYPE", "ACCESS", "IS_COLLAB", "PERM",
    ]  # fmt: skip
    assert section["OWNER_ID"] == "1" and section["CAL_TYPE"] == "user"
    assert isinstance(section["ID"], str) and section["COLOR"] == "#9cbeee"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", section["DATE_CREATE"])
    assert set(body["time"]) >= {"start", "finish", "duration", "date_start", "operating"}
    assert "total" not in body and "next" not in body

    default_owner = rest.get("calendar.section.get", params={"type": "user"}).json()
    assert [s["ID"] for s in default_owner["result"]] == [mine["ID"]]
    empty = rest.get("calendar.section.get", params={"type": "group", "ownerId": "6"})
    assert empty.json()["result"] == []

    resources = rest.post("calendar.section.get", json={"type": "resource", "ownerId": 0}).json()
    assert [(r["ID"], r["OWNER_ID"], r["NAME"]) for r in resources["result"]] == [
        (room["ID"], "0", "Room 1")
    ]
    assert "COLOR" in resources["result"][0]
    listed = rest.post("calendar.resource.list").json()["result"]
    assert listed == [{"ID": room["ID"], "NAME": "Room 1", "CREATED_BY": "1"}]


def test_rest_changes_fire_form_encoded_events(
    control: BitrixControl, rest: httpx.Client, receiver: Receiver, emulator_url: str
) -> None:
    handler_id = bind_hook(control, receiver)
    added = rest.post(
        "calendar.section.add",
        data={"type": "user", "ownerId": "1", "name": "Team plan", "export[ALLOW]": "0"},
    )
    assert added.status_code == 200
    section_id = added.json()["result"]
    assert isinstance(section_id, int)
    assert receiver.records == [] or len(receiver.records) <= 1  # delivery is asynchronous

    updated = rest.post(
        "calendar.section.update",
        json={"type": "user", "ownerId": 1, "id": section_id, "name": "Renamed"},
    )
    assert updated.json()["result"] == section_id
    deleted = rest.get(
        "calendar.section.delete", params={"type": "user", "ownerId": "1", "id": str(section_id)}
    )
    assert deleted.json()["result"] is True
    resource_id = rest.post("calendar.resource.add", json={"name": "Van"}).json()["result"]
    assert resource_id == section_id + 1  # one id sequence for sections and resources

    log = flush(control)
    assert [(d["event"], d["section_id"], d["status"]) for d in log] == [
        ("ONCALENDARSECTIONADD", str(section_id), 200),
        ("ONCALENDARSECTIONUPDATE", str(section_id), 200),
        ("ONCALENDARSECTIONDELETE", str(section_id), 200),
        ("ONCALENDARSECTIONADD", str(resource_id), 200),
    ]
    assert all(d["handler_id"] == handler_id and d["duration"] >= 0 for d in log)
    assert len(receiver.records) == 4
    first = receiver.records[0]
    assert first["content_type"] == "application/x-www-form-urlencoded"
    endpoint = http_build_query({"x": f"{emulator_url}/rest/"})[2:]
    assert re.fullmatch(
        rf"event=ONCALENDARSECTIONADD&event_handler_id={handler_id}&data%5Bid%5D={section_id}"
        rf"&ts=\d+&auth%5Bdomain%5D={re.escape(DOMAIN)}"
        rf"&auth%5Bclient_endpoint%5D={re.escape(endpoint)}"
        r"&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F"
        rf"&auth%5Bmember_id%5D={MEMBER}&auth%5Bapplication_token%5D={TOKEN}",
        first["raw"],
    ), first["raw"]
    pairs = parse_qsl(first["raw"], keep_blank_values=True)
    assert {key for key, _ in pairs if key.startswith("auth")} == AUTH_KEYS
    parsed = parse_php_query(pairs)
    assert parsed["data"] == {"id": str(section_id)}
    assert parsed["auth"]["client_endpoint"] == f"{emulator_url}/rest/"

    after = rest.post("calendar.section.get", json={"type": "user", "ownerId": 1}).json()
    assert after["result"] == []
    update_gone = rest.post(
        "calendar.section.update", json={"type": "user", "ownerId": 1, "id": section_id}
    )
    assert update_gone.status_code == 400
    assert update_gone.json() == {"error": "", "error_description": "Access denied"}


def test_control_changes_fire_events_unless_deliver_is_false(
    control: BitrixControl, rest: httpx.Client, receiver: Receiver
) -> None:
    bind_hook(control, receiver)
    lost = add_section(control, type="group", owner_id=7, name="Quiet", deliver=False)
    loud = add_section(control, type="group", owner_id=7, name="Loud", gapi_calendar_id="x@g")
    assert loud["GAPI_CALENDAR_ID"] == "x@g"
    patched = control.update_section(MEMBER, lost["ID"], name="Quiet 2", deliver=False)
    assert patched["NAME"] == "Quiet 2"
    control.update_section(MEMBER, loud["ID"], color="#000000")
    control.delete_section(MEMBER, lost["ID"], deliver=False)
    control.delete_section(MEMBER, loud["ID"], deliver=True)

    log = flush(control)
    assert [(d["event"], d["section_id"]) for d in log] == [
        ("ONCALENDARSECTIONADD", loud["ID"]),
        ("ONCALENDARSECTIONUPDATE", loud["ID"]),
        ("ONCALENDARSECTIONDELETE", loud["ID"]),
    ]
    visible = rest.post("calendar.section.get", json={"type": "group", "ownerId": 7}).json()
    assert visible["result"] == []


def test_failed_delivery_is_logged_and_never_retried(
    control: BitrixControl, rest: httpx.Client, receiver: Receiver
) -> None:
    bind_hook(control, receiver, "/broken")
    desk = rest.post("calendar.resource.add", json={"name": "Desk"}).json()["result"]
    log = flush(control)
    assert [(d["status"], d["ok"], d["error"]) for d in log] == [(500, False, "HTTP 500")]
    # One thread drains the deliveries first in, first out: a retry queued on the failure would
    # leave before a later change's delivery.
    marker = rest.post("calendar.resource.add", json={"name": "Marker"}).json()["result"]
    log = flush(control)
    assert [(d["section_id"], d["ok"]) for d in log] == [(str(desk), False), (str(marker), False)]
    assert len(receiver.records) == 2


# batch


def test_batch_map_with_references_and_empty_maps(rest: httpx.Client) -> None:
    response = rest.post(
        "batch",
        json={
            "halt": 0,
            "cmd": {
                "add": "calendar.section.add?type=user&ownerId=1&name=Plan%20A",
                "rename": "calendar.section.update?type=user&ownerId=1&id=$result[add]&name=B",
                "read": "calendar.section.get?type=user&ownerId=1",
                "echo": "calendar.section.update?type=user&ownerId=1&id=$result[read][0][ID]"
                "&description=id%20$result[add]",
            },
        },
    )
    assert response.status_code == 200
    body = response.json()["result"]
    section_id = body["result"]["add"]
    assert body["result"]["rename"] == section_id
    assert body["result"]["read"][0]["NAME"] == "B"
    assert body["result"]["echo"] == section_id
    assert body["result_error"] == []
    assert body["result_total"] == []
    assert body["result_next"] == []
    assert set(body["result_time"]) == {"add", "rename", "read", "echo"}
    sections = rest.post("calendar.section.get", json={"type": "user"}).json()["result"]
    assert sections[0]["DESCRIPTION"] == f"id {section_id}"


def test_batch_list_form_encoded_with_errors(control: BitrixControl, rest: httpx.Client) -> None:
    users = [{"ID": str(n), "NAME": f"U{n}"} for n in range(2, 62)]
    control.add_owners(MEMBER, "users", users)
    form = http_build_query(
        {
            "halt": False,
            "cmd": [
                "user.get?" + http_build_query({"FILTER": {"ACTIVE": True}}),
                "calendar.section.get?type=group",
                "no.such.method",
                "batch?cmd[0]=user.get",
            ],
        }
    )
    assert form.startswith("halt=0&cmd%5B0%5D=user.get%3FFILTER%255BACTIVE%255D%3D1")
    response = rest.post(
        "batch", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200
    body = response.json()["result"]
    assert len(body["result"]) == 1 and len(body["result"][0]) == 50  # keyed 0 only: a list
    assert body["result_total"] == [61]
    assert body["result_next"] == [50]
    assert body["result_error"]["1"]["error"] == ""
    assert body["result_error"]["2"] == {
        "error": "ERROR_METHOD_NOT_FOUND",
        "error_description": "Method not found!",
    }
    assert body["result_error"]["3"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"

    halted = rest.post(
        "batch", json={"halt": 1, "cmd": {"a": "calendar.section.get", "b": "user.get"}}
    ).json()["result"]
    assert halted["result"] == [] and list(halted["result_error"]) == ["a"]
    assert halted["result_time"] == [] and halted["result_total"] == []

    too_long = rest.post(
        "batch", json={"cmd": {f"c{n}": "calendar.resource.list" for n in range(51)}}
    )
    assert too_long.status_code == 200
    result = too_long.json()["result"]
    assert len(result["result"]) == 50
    assert result["result_error"] == {
        "c50": {
            "error": "ERROR_BATCH_LENGTH_EXCEEDED",
            "error_description": "Max batch length exceeded",
        }
    }

    logged = control.requests(MEMBER)
    batch = next(r for r in logged if r["method"] == "batch")
    assert [c["method"] for c in batch["commands"]] == [
        "user.get", "calendar.section.get", "no.such.method", "batch",
    ]  # fmt: skip
    assert batch["commands"][0]["params"] == {"FILTER": {"ACTIVE": "1"}}


# limits, faults, auth


def test_leaky_bucket_rejects_then_recovers(control: BitrixControl, rest: httpx.Client) -> None:
    control.patch_portal(MEMBER, bucket_burst=3, bucket_drain_per_s=10)
    batch = {"cmd": {f"c{n}": "calendar.resource.list" for n in range(10)}}
    statuses = [rest.post("batch", json=batch).status_code for _ in range(3)]
    statuses.append(rest.post("calendar.resource.list").status_code)
    assert statuses == [200, 200, 200, 503]
    rejected = rest.post("calendar.resource.list")
    assert rejected.json() == {
        "error": "QUERY_LIMIT_EXCEEDED",
        "error_description": "Too many requests",
    }
    time.sleep(0.25)  # the bucket draining with time (10 a second) is what is tested
    assert rest.post("calendar.resource.list").status_code == 200


def test_faults_error_html_drop_delay(
    control: BitrixControl, rest: httpx.Client, emulator_url: str
) -> None:
    fault = control.fault
    fault(method="calendar.section.get", status=429, error="OPERATION_TIME_LIMIT",
          description="Method is blocked due to operation time limit.")  # fmt: skip
    query = {"type": "user", "ownerId": 1}
    limited = rest.post("calendar.section.get", json=query)
    assert limited.status_code == 429 and limited.json()["error"] == "OPERATION_TIME_LIMIT"
    assert rest.post("calendar.section.get", json=query).status_code == 200

    fault(method="calendar.section.get", kind="html", status=502)
    page = rest.post("calendar.section.get", json=query)
    assert page.status_code == 502
    assert page.headers["content-type"].startswith("text/html") and "<html>" in page.text

    fault(method="*", kind="drop", member_id=MEMBER)
    with (
        httpx.Client(base_url=f"{emulator_url}/rest/1/{CODE}/") as fresh,
        pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
    ):
        fresh.post("calendar.resource.list")

    fault(method="calendar.resource.list", kind="delay", seconds=0.3)
    started = time.monotonic()
    assert rest.post("calendar.resource.list").status_code == 200
    assert time.monotonic() - started >= 0.3

    fault(method="calendar.resource.list", status=500, error="INTERNAL_SERVER_ERROR",
          description="Internal server error")  # fmt: skip
    batch = rest.post("batch", json={"cmd": {"a": "calendar.resource.list", "b": "user.get"}})
    assert batch.status_code == 200
    assert batch.json()["result"]["result_error"]["a"]["error"] == "INTERNAL_SERVER_ERROR"
    assert "b" in batch.json()["result"]["result"]

    fault(method="batch", status=503, error="QUERY_LIMIT_EXCEEDED")
    assert rest.post("batch", json={"cmd": {"a": "user.get"}}).status_code == 503
    control.clear_faults()


def test_wrong_webhook_and_unknown_method(rest: httpx.Client, emulator_url: str) -> None:
    with httpx.Client(base_url=emulator_url) as client:
        for url in ("/rest/1/nope/user.get", f"/rest/2/{CODE}/user.get"):
            response = client.post(url)
            assert response.status_code == 401
            assert response.json() == {
                "error": "NO_AUTH_FOUND",
                "error_description": "Wrong authorization data",
            }
    missing = rest.post("calendar.nothing.get")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "ERROR_METHOD_NOT_FOUND",
        "error_description": "Method not found!",
    }


# owners


def test_user_get_and_workgroup_list_page_by_fifty(
    control: BitrixControl, rest: httpx.Client
) -> None:
    users = [{"ID": n, "NAME": f"User {n}", "ACTIVE": n % 10 != 0} for n in range(2, 122)]
    control.add_owners(MEMBER, "users", users)
    first = rest.post("user.get").json()
    assert (len(first["result"]), first["total"], first["next"]) == (50, 121, 50)
    assert first["result"][0]["ID"] == "1" and first["result"][0]["ACTIVE"] is True
    last = rest.post("user.get", json={"start": 100}).json()
    assert (len(last["result"]), last["total"], "next" in last) == (21, 121, False)
    active = rest.post("user.get", json={"FILTER": {"ACTIVE": True}}).json()
    assert active["total"] == 121 - 12
    inactive = rest.get("user.get", params={"filter[ACTIVE]": "N"}).json()
    assert {u["ID"] for u in inactive["result"]} == {str(n) for n in range(10, 122, 10)}

    groups = [{"ID": str(n), "NAME": f"Group {n}"} for n in range(1, 61)]
    control.add_owners(MEMBER, "groups", groups)
    page = rest.post("socialnetwork.api.workgroup.list", json={"select": ["ID", "NAME"]}).json()
    assert (len(page["result"]["workgroups"]), page["total"], page["next"]) == (50, 60, 50)
    assert page["result"]["workgroups"][0] == {"id": "1", "name": "Group 1"}
    rest_page = rest.post("socialnetwork.api.workgroup.list", json={"start": 50}).json()
    assert rest_page["result"]["workgroups"][0] == {"id": "51"}
    assert "next" not in rest_page


# PHP query encoding


def test_http_build_query_matches_php() -> None:
    data = {
        "event": "ONCALENDARSECTIONADD",
        "data": {"id": 202, "flags": [True, False, None], "empty": [], "none": {}},
        "text": "a b&c=d~ü",
        "list": [["x"], {"k": 1.5}],
    }
    assert http_build_query(data) == (
        "event=ONCALENDARSECTIONADD&data%5Bid%5D=202&data%5Bflags%5D%5B0%5D=1"
        "&data%5Bflags%5D%5B1%5D=0&data%5Bflags%5D%5B2%5D=&text=a+b%26c%3Dd%7E%C3%BC"
        "&list%5B0%5D%5B0%5D=x&list%5B1%5D%5Bk%5D=1.5"
    )
    assert http_build_query({"a": {}, "b": []}) == ""


def test_parse_php_query_round_trips() -> None:
    data = {
        "auth": {"domain": "ex.bitrix24.com", "member_id": "m1"},
        "fields": {"PHONE": [{"VALUE": "112 233", "TYPE": "WORK"}], "TITLE": "Ünïcode & co"},
        "flag": True,
        "off": False,
        "ids": [3, 1, 2],
    }
    parsed = parse_php_query(parse_qsl(http_build_query(data), keep_blank_values=True))
    assert parsed == {
        "auth": {"domain": "ex.bitrix24.com", "member_id": "m1"},
        "fields": {"PHONE": [{"VALUE": "112 233", "TYPE": "WORK"}], "TITLE": "Ünïcode & co"},
        "flag": "1",
        "off": "0",
        "ids": ["3", "1", "2"],
    }
    pairs = [("a[]", "1"), ("a[]", "2"), ("m[x][]", "p"), ("m[x][]", "q"), ("k[5]", "v"),
             ("k[]", "w"), ("plain", "1"), ("plain", "2"), ("bad[x", "y")]  # fmt: skip
    assert parse_php_query(pairs) == {
        "a": ["1", "2"],
        "m": {"x": ["p", "q"]},
        "k": {"5": "v", "6": "w"},
        "plain": "2",
        "bad_x": "y",
    }
