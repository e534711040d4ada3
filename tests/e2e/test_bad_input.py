"""Every malformed delivery gets a clear 4xx naming the problem, never a 5xx, and stores nothing."""

from __future__ import annotations

import json

import pytest

from bridge.sandbox.bitrix import http_build_query
from tests.e2e.conftest import Bridge

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


def valid(bridge: Bridge) -> dict[str, object]:
    return {
        "event": "ONCALENDARSECTIONADD",
        "data": {"id": "202"},
        "ts": "1734608536",
        "auth": {
            "domain": bridge.portal.domain,
            "member_id": bridge.portal.member_id,
            "application_token": bridge.portal.application_token,
        },
    }


def form(bridge: Bridge, change: dict[str, object], drop: tuple[str, ...] = ()) -> str:
    fields = valid(bridge)
    for path in drop:
        head, _, tail = path.partition(".")
        node = fields[head] if tail else fields
        assert isinstance(node, dict)
        node.pop(tail or head)
    fields.update(change)
    return http_build_query(fields)


def raw_auth(bridge: Bridge) -> str:
    p = bridge.portal
    token = p.application_token
    return f"auth[domain]={p.domain}&auth[member_id]={p.member_id}&auth[application_token]={token}"


# (name, body factory, content type, expected status, text expected in the answer)
CASES: list[tuple[str, object, str, int, str]] = [
    ("empty body", lambda b: "", FORM, 400, "event"),
    ("garbage bytes", lambda b: b"\xff\xfe\x00\x81garbage", FORM, 400, "UTF-8"),
    ("binary json", lambda b: b"\x89PNG\r\n\x1a\n", JSON, 400, "JSON"),
    ("not json", lambda b: "{event: ONCALENDARSECTIONADD", JSON, 400, "JSON"),
    ("json array", lambda b: "[1, 2, 3]", JSON, 400, "object"),
    ("json string", lambda b: '"ONCALENDARSECTIONADD"', JSON, 400, "object"),
    ("json null", lambda b: "null", JSON, 400, "object"),
    ("missing event", lambda b: form(b, {}, drop=("event",)), FORM, 400, "event"),
    ("missing auth", lambda b: form(b, {}, drop=("auth",)), FORM, 400, "auth"),
    (
        "missing member_id",
        lambda b: form(b, {}, drop=("auth.member_id",)),
        FORM,
        400,
        "auth[member_id]",
    ),
    ("missing domain", lambda b: form(b, {}, drop=("auth.domain",)), FORM, 400, "auth[domain]"),
    (
        "missing token",
        lambda b: form(b, {}, drop=("auth.application_token",)),
        FORM,
        400,
        "auth[application_token]",
    ),
    ("missing data", lambda b: form(b, {}, drop=("data",)), FORM, 400, "data[id]"),
    ("missing data id", lambda b: form(b, {"data": {"other": "1"}}), FORM, 400, "data[id]"),
    ("data id abc", lambda b: form(b, {"data": {"id": "abc"}}), FORM, 400, "data[id]"),
    ("data id negative", lambda b: form(b, {"data": {"id": "-5"}}), FORM, 400, "data[id]"),
    ("data id zero", lambda b: form(b, {"data": {"id": "0"}}), FORM, 400, "data[id]"),
    ("data id float", lambda b: form(b, {"data": {"id": "1.5"}}), FORM, 400, "data[id]"),
    ("data id huge", lambda b: form(b, {"data": {"id": "9" * 40}}), FORM, 400, "data[id]"),
    ("data id unicode digits", lambda b: form(b, {"data": {"id": "٣٤"}}), FORM, 400, "data[id]"),
    ("data is a scalar", lambda b: form(b, {"data": "202"}), FORM, 400, "data[id]"),
    (
        "auth is a scalar",
        lambda b: "event=ONCALENDARSECTIONADD&data[id]=1&auth=x",
        FORM,
        400,
        "auth",
    ),
    ("event is a map", lambda b: f"event[x]=1&data[id]=1&{raw_auth(b)}", FORM, 400, "event"),
    (
        "member_id is a map",
        lambda b: "event=ONCALENDARSECTIONADD&data[id]=1&auth[member_id][a]=1",
        FORM,
        400,
        "member_id",
    ),
    ("deep brackets", lambda b: "event=X&" + "a" + "[b]" * 50 + "=1", FORM, 400, "nested"),
    (
        "unclosed bracket",
        lambda b: f"event=ONCALENDARSECTIONADD&data[id=1&{raw_auth(b)}",
        FORM,
        400,
        "bracket",
    ),
    (
        "key conflict",
        lambda b: f"event=ONCALENDARSECTIONADD&data=1&data[id]=2&{raw_auth(b)}",
        FORM,
        400,
        "data",
    ),
    ("no key name", lambda b: f"[id]=1&{raw_auth(b)}", FORM, 400, "key"),
    (
        "json wrong types",
        lambda b: json.dumps({**valid(b), "data": {"id": [1]}}),
        JSON,
        400,
        "data[id]",
    ),
    (
        "json bool id",
        lambda b: json.dumps({**valid(b), "data": {"id": True}}),
        JSON,
        400,
        "data[id]",
    ),
    (
        "json event number list",
        lambda b: json.dumps({**valid(b), "event": [1]}),
        JSON,
        400,
        "event",
    ),
    ("json auth list", lambda b: json.dumps({**valid(b), "auth": ["a"]}), JSON, 400, "auth"),
    ("json deep nesting", lambda b: '{"a":' * 5000 + "1" + "}" * 5000, JSON, 400, "nested"),
    ("unicode garbage", lambda b: "событие=☃&данные[id]=✓", FORM, 400, "event"),
    ("too many fields", lambda b: "&".join(f"k{i}=1" for i in range(2000)), FORM, 400, "form"),
    ("1 MB body", lambda b: "event=" + "A" * 1_000_000, FORM, 413, "larger"),
    ("plain text", lambda b: form(b, {}), "text/plain", 415, "content type"),
    ("no content type", lambda b: form(b, {}), "", 415, "content type"),
    (
        "multipart",
        lambda b: "--x\r\n\r\n--x--",
        "multipart/form-data; boundary=x",
        415,
        "content type",
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "content_type", "status", "text"), CASES, ids=[c[0] for c in CASES]
)
def test_malformed_bodies_get_a_clear_4xx(
    bridge: Bridge, name: str, make: object, content_type: str, status: int, text: str
) -> None:
    assert callable(make)
    body = make(bridge)
    headers = {"content-type": content_type} if content_type else {}

    answer = bridge.http.post(f"{bridge.web_url}/bitrix/events", content=body, headers=headers)

    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert text.lower() in (error + answer.json().get("field", "")).lower(), error
    assert bridge.inbox() == []
    assert bridge.http.get(f"{bridge.web_url}/healthz").json() == {"status": "ok"}
