"""The Google Calendar emulator driven by the real google-api-python-client over real HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import google_auth_httplib2
import httplib2
import httpx
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest, HttpRequest

from bridge.sandbox.google import GoogleEmulator, generate_service_account
from bridge.sandbox.server import ServerThread

SCOPES = ["https://www.googleapis.com/auth/calendar"]
OWNER = "owner@example.com"


class Sandbox:
    def __init__(self, emulator: GoogleEmulator, base: str, info: dict[str, str]) -> None:
        self.emulator = emulator
        self.base = base
        self.info = info
        self.control = httpx.Client(base_url=f"{base}/_control", timeout=5)

    def service(
        self,
        user: str = OWNER,
        *,
        timeout: float = 5,
        info: dict[str, str] | None = None,
        scopes: list[str] = SCOPES,
    ) -> Any:
        creds = service_account.Credentials.from_service_account_info(
            info or self.info, scopes=scopes
        ).with_subject(user)
        authed = google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http(timeout=timeout))
        return build(
            "calendar",
            "v3",
            http=authed,
            static_discovery=True,
            client_options={"api_endpoint": f"{self.base}/calendar/v3/"},
        )

    def calendars(self, **params: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.control.get("/calendars", params=params).json()[
            "calendars"
        ]
        return found

    def requests(self) -> list[dict[str, Any]]:
        logged: list[dict[str, Any]] = self.control.get("/requests").json()["requests"]
        return logged

    def fault(self, **spec: Any) -> None:
        assert self.control.post("/faults", json=spec).status_code == 201


def _start(emulator: GoogleEmulator) -> Iterator[Sandbox]:
    server = ServerThread(emulator.app)
    base = server.start()
    info = generate_service_account(f"{base}/token")
    emulator.register_service_account(info)
    sandbox = Sandbox(emulator, base, info)
    try:
        yield sandbox
    finally:
        sandbox.control.close()
        server.stop()


@pytest.fixture(scope="module")
def shared() -> Iterator[Sandbox]:
    yield from _start(GoogleEmulator(creation_limit=1000, user_rate_per_minute=100_000))


@pytest.fixture
def sandbox(shared: Sandbox) -> Sandbox:
    shared.emulator.reset()
    return shared


@pytest.fixture
def strict() -> Iterator[Sandbox]:
    yield from _start(GoogleEmulator(creation_limit=3, user_rate_per_minute=20))


def _no_backoff(request: HttpRequest) -> HttpRequest:
    request._sleep = lambda seconds: None  # the library sleeps up to 2**n s between retries
    return request


def test_insert_lists_the_calendar_with_its_owner(sandbox: Sandbox) -> None:
    service = sandbox.service()
    created = service.calendars().insert(body={"summary": "Sales", "timeZone": "Europe/Moscow"})
    calendar = created.execute()

    assert calendar["id"].startswith("c_")
    assert calendar["id"].endswith("@group.calendar.google.com")
    assert calendar["dataOwner"] == OWNER
    assert calendar["kind"] == "calendar#calendar"
    assert service.calendars().get(calendarId=calendar["id"]).execute() == calendar
    [entry] = service.calendarList().list().execute()["items"]
    assert (entry["id"], entry["accessRole"], entry["summary"]) == (
        calendar["id"],
        "owner",
        "Sales",
    )
    assert entry["timeZone"] == "Europe/Moscow"
    [stored] = sandbox.calendars(owner=OWNER)
    assert stored["acl"] == [
        {
            "kind": "calendar#aclRule",
            "etag": stored["acl"][0]["etag"],
            "id": f"user:{OWNER}",
            "scope": {"type": "user", "value": OWNER},
            "role": "owner",
            "sendNotifications": False,
        }
    ]


def test_insert_without_summary_is_rejected(sandbox: Sandbox) -> None:
    with pytest.raises(HttpError) as caught:
        sandbox.service().calendars().insert(body={"description": "x"}).execute()

    assert caught.value.status_code == 400
    assert caught.value.error_details[0]["reason"] == "required"
    assert sandbox.calendars() == []


def test_patch_then_delete(sandbox: Sandbox) -> None:
    service = sandbox.service()
    calendar_id = service.calendars().insert(body={"summary": "Old"}).execute()["id"]

    patched = service.calendars().patch(calendarId=calendar_id, body={"summary": "New"}).execute()
    assert patched["summary"] == "New"
    assert service.calendarList().get(calendarId=calendar_id).execute()["summary"] == "New"

    assert service.calendars().delete(calendarId=calendar_id).execute() == ""
    with pytest.raises(HttpError) as caught:
        service.calendars().get(calendarId=calendar_id).execute()
    assert caught.value.status_code == 404
    assert caught.value.error_details[0]["reason"] == "notFound"
    assert service.calendarList().list().execute()["items"] == []
    deleted = service.calendarList().list(showDeleted=True).execute()["items"]
    assert deleted == [
        {
            "kind": "calendar#calendarListEntry",
            "etag": deleted[0]["etag"],
            "id": calendar_id,
            "deleted": True,
        }
    ]
    delete_line = next(r for r in sandbox.requests() if r["method"] == "DELETE")
    assert delete_line["path"] == f"/calendar/v3/calendars/{calendar_id}"
    assert delete_line["status"] == 204


def test_other_users_see_a_calendar_only_through_the_acl(sandbox: Sandbox) -> None:
    owner, guest = sandbox.service(), sandbox.service("guest@example.com")
    calendar_id = owner.calendars().insert(body={"summary": "Private"}).execute()["id"]

    with pytest.raises(HttpError) as hidden:
        guest.calendars().get(calendarId=calendar_id).execute()
    assert hidden.value.status_code == 404

    rule = {"role": "reader", "scope": {"type": "user", "value": "guest@example.com"}}
    owner.acl().insert(calendarId=calendar_id, body=rule, sendNotifications=False).execute()
    assert guest.calendars().get(calendarId=calendar_id).execute()["summary"] == "Private"
    with pytest.raises(HttpError) as read_only:
        guest.calendars().patch(calendarId=calendar_id, body={"summary": "Mine"}).execute()
    assert read_only.value.status_code == 403
    entry = guest.calendarList().insert(body={"id": calendar_id}).execute()
    assert entry["accessRole"] == "reader"


def test_calendar_list_pages_past_250_entries(sandbox: Sandbox) -> None:
    service = sandbox.service()
    batch = BatchHttpRequest(batch_uri=f"{sandbox.base}/batch/calendar/v3")
    for number in range(260):
        batch.add(service.calendars().insert(body={"summary": f"S{number}"}))
    batch.execute()

    first = service.calendarList().list(maxResults=1000).execute()
    second = service.calendarList().list(pageToken=first["nextPageToken"]).execute()

    assert len(first["items"]) == 250
    assert len(second["items"]) == 10
    assert "nextPageToken" not in second
    assert "nextSyncToken" in second
    summaries = [entry["summary"] for entry in first["items"] + second["items"]]
    assert summaries == [f"S{number}" for number in range(260)]
    assert len(service.calendarList().list().execute()["items"]) == 100


def test_hidden_entries_need_show_hidden(sandbox: Sandbox) -> None:
    service = sandbox.service()
    calendar_id = service.calendars().insert(body={"summary": "Archive"}).execute()["id"]
    service.calendarList().patch(calendarId=calendar_id, body={"hidden": True}).execute()

    assert service.calendarList().list().execute()["items"] == []
    [entry] = service.calendarList().list(showHidden=True, minAccessRole="owner").execute()["items"]
    assert entry["hidden"] is True
    assert sandbox.control.get("/calendar-list", params={"user": OWNER}).json()["items"] == [entry]


def test_colours_need_the_rgb_flag(sandbox: Sandbox) -> None:
    service = sandbox.service()
    calendar_id = service.calendars().insert(body={"summary": "Colour"}).execute()["id"]
    before = service.calendarList().get(calendarId=calendar_id).execute()
    colours = {"backgroundColor": "#ff0000", "foregroundColor": "#ffffff"}

    ignored = service.calendarList().patch(calendarId=calendar_id, body=colours).execute()
    assert ignored["backgroundColor"] == before["backgroundColor"]
    assert ignored["colorId"] == before["colorId"]

    applied = (
        service.calendarList()
        .patch(calendarId=calendar_id, body=colours, colorRgbFormat=True)
        .execute()
    )
    assert (applied["backgroundColor"], applied["foregroundColor"]) == ("#ff0000", "#ffffff")
    palette = service.colors().get().execute()["calendar"]
    assert palette[applied["colorId"]]["background"] == "#f83a22"  # the nearest to pure red


def test_acl_insert_list_delete(sandbox: Sandbox) -> None:
    service = sandbox.service()
    calendar_id = service.calendars().insert(body={"summary": "Shared"}).execute()["id"]
    domain_rule = {"role": "reader", "scope": {"type": "domain", "value": "example.com"}}
    user_rule = {"role": "writer", "scope": {"type": "user", "value": "Alice@Example.com"}}

    inserted = service.acl().insert(calendarId=calendar_id, body=domain_rule).execute()
    service.acl().insert(calendarId=calendar_id, body=user_rule, sendNotifications=False).execute()
    again = service.acl().insert(
        calendarId=calendar_id, body={**user_rule, "role": "reader"}, sendNotifications=False
    )
    assert again.execute()["role"] == "reader"

    assert inserted["id"] == "domain:example.com"
    listed = service.acl().list(calendarId=calendar_id).execute()["items"]
    assert [(rule["id"], rule["role"]) for rule in listed] == [
        (f"user:{OWNER}", "owner"),
        ("domain:example.com", "reader"),
        ("user:alice@example.com", "reader"),
    ]
    [stored] = sandbox.calendars()
    notify = {rule["id"]: rule["sendNotifications"] for rule in stored["acl"]}
    assert notify == {
        f"user:{OWNER}": False,
        "domain:example.com": True,
        "user:alice@example.com": False,
    }

    assert service.acl().delete(calendarId=calendar_id, ruleId="domain:example.com").execute() == ""
    assert [r["id"] for r in service.acl().list(calendarId=calendar_id).execute()["items"]] == [
        f"user:{OWNER}",
        "user:alice@example.com",
    ]
    with pytest.raises(HttpError) as own:
        service.acl().delete(calendarId=calendar_id, ruleId=f"user:{OWNER}").execute()
    assert own.value.status_code == 403


def test_batch_answers_each_part(sandbox: Sandbox) -> None:
    service = sandbox.service()
    answers: dict[str, tuple[Any, HttpError | None]] = {}

    def collect(request_id: str, response: Any, error: HttpError | None) -> None:
        answers[request_id] = (response, error)

    batch = BatchHttpRequest(callback=collect, batch_uri=f"{sandbox.base}/batch/calendar/v3")
    for summary in ("A", "B", "C"):
        batch.add(service.calendars().insert(body={"summary": summary}), request_id=summary)
    batch.add(
        service.calendars().delete(calendarId="c_missing@group.calendar.google.com"),
        request_id="gone",
    )
    batch.execute()

    assert sorted(answers) == ["A", "B", "C", "gone"]
    assert [answers[s][0]["summary"] for s in "ABC"] == ["A", "B", "C"]
    missing = answers["gone"][1]
    assert missing is not None
    assert missing.status_code == 404
    assert sorted(c["summary"] for c in sandbox.calendars()) == ["A", "B", "C"]
    logged = [
        (r["method"], r["in_batch"], r["status"])
        for r in sandbox.requests()
        if r["path"] != "/token"
    ]
    assert logged == [*[("POST", True, 200)] * 3, ("DELETE", True, 404), ("POST", False, 200)]


def test_unregistered_keys_cannot_get_a_token(sandbox: Sandbox) -> None:
    forged = generate_service_account(f"{sandbox.base}/token", sandbox.info["client_email"])
    stranger = generate_service_account(f"{sandbox.base}/token", "other@x.iam.gserviceaccount.com")

    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        sandbox.service(info=forged).calendarList().list().execute()
    with pytest.raises(RefreshError, match="account not found"):
        sandbox.service(info=stranger).calendarList().list().execute()


def test_token_scopes_are_enforced(sandbox: Sandbox) -> None:
    app_created = sandbox.service(scopes=[SCOPES[0] + ".app.created"])
    calendar_id = app_created.calendars().insert(body={"summary": "App"}).execute()["id"]

    assert app_created.calendarList().get(calendarId=calendar_id).execute()["summary"] == "App"
    with pytest.raises(HttpError) as caught:
        app_created.calendarList().list().execute()
    assert caught.value.status_code == 403
    assert caught.value.error_details[0]["reason"] == "insufficientPermissions"


def test_requests_without_a_valid_bearer_are_401(sandbox: Sandbox) -> None:
    for headers in ({}, {"Authorization": "Bearer made-up"}):
        response = httpx.get(f"{sandbox.base}/calendar/v3/users/me/calendarList", headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "error": {
                "errors": [
                    {
                        "domain": "global",
                        "reason": "authError",
                        "message": "Invalid Credentials",
                        "locationType": "header",
                        "location": "Authorization",
                    }
                ],
                "code": 401,
                "message": "Invalid Credentials",
            }
        }


def test_server_errors_are_retried_by_the_library(sandbox: Sandbox) -> None:
    sandbox.fault(
        method="POST",
        path="/calendar/v3/calendars",
        count=2,
        action="error",
        status=500,
        reason="backendError",
        message="Backend Error",
    )

    request = sandbox.service().calendars().insert(body={"summary": "Retried"})
    assert _no_backoff(request).execute(num_retries=2)["summary"] == "Retried"

    posts = [r["status"] for r in sandbox.requests() if r["path"] == "/calendar/v3/calendars"]
    assert posts == [500, 500, 200]


def test_quota_exceeded_is_not_retried(sandbox: Sandbox) -> None:
    sandbox.fault(
        method="*",
        path="/calendar/v3/users/me/calendarList",
        count=5,
        status=403,
        domain="usageLimits",
        reason="quotaExceeded",
        message="Calendar usage limits exceeded.",
    )

    with pytest.raises(HttpError) as caught:
        _no_backoff(sandbox.service().calendarList().list()).execute(num_retries=3)

    assert caught.value.status_code == 403
    assert caught.value.reason == "Calendar usage limits exceeded."
    assert len([r for r in sandbox.requests() if r["path"].endswith("/calendarList")]) == 1


def test_delay_fault_answers_late(sandbox: Sandbox) -> None:
    sandbox.fault(path="/calendar/v3/colors", action="delay", seconds=0.3)

    service = sandbox.service()
    assert "calendar" in service.colors().get().execute()
    assert sandbox.control.get("/faults").json() == {"faults": []}


def test_creation_budget_turns_every_write_read_only(strict: Sandbox) -> None:
    service = strict.service()
    ids = [service.calendars().insert(body={"summary": f"N{n}"}).execute()["id"] for n in range(3)]

    writes = [
        service.calendars().insert(body={"summary": "one too many"}),
        service.calendars().patch(calendarId=ids[0], body={"summary": "renamed"}),
        service.calendarList().patch(calendarId=ids[0], body={"hidden": True}),
        service.acl().insert(
            calendarId=ids[0], body={"role": "reader", "scope": {"type": "default"}}
        ),
        service.calendars().delete(calendarId=ids[0]),
    ]
    for write in writes:
        with pytest.raises(HttpError) as caught:
            _no_backoff(write).execute(num_retries=2)
        assert caught.value.status_code == 403
        assert caught.value.error_details == [
            {
                "domain": "usageLimits",
                "reason": "quotaExceeded",
                "message": "Calendar usage limits exceeded.",
            }
        ]
    assert service.calendars().get(calendarId=ids[0]).execute()["summary"] == "N0"
    other = strict.service("other@example.com")
    assert other.calendars().insert(body={"summary": "fine"}).execute()["dataOwner"] != OWNER

    assert strict.control.delete(f"/users/{OWNER}/read-only").status_code == 204
    assert service.calendars().patch(calendarId=ids[0], body={"summary": "ok"}).execute()
    strict.control.post(f"/users/{OWNER}/read-only", json={"seconds": 60})
    with pytest.raises(HttpError):
        service.calendars().patch(calendarId=ids[0], body={"summary": "no"}).execute()


def test_per_minute_budget_is_a_rate_limit(strict: Sandbox) -> None:
    service = strict.service("busy@example.com")
    for _ in range(20):
        service.colors().get().execute()

    with pytest.raises(HttpError) as caught:
        service.colors().get().execute()

    assert caught.value.status_code == 403
    assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"


def test_commit_then_stall_creates_once_and_times_out(sandbox: Sandbox) -> None:
    sandbox.fault(
        method="POST", path="/calendar/v3/calendars", action="commit_then_stall", seconds=3
    )
    service = sandbox.service(timeout=1)

    with pytest.raises(TimeoutError):
        service.calendars().insert(body={"summary": "Slow"}).execute(num_retries=0)

    assert [c["summary"] for c in sandbox.calendars()] == ["Slow"]


def test_commit_then_drop(sandbox: Sandbox) -> None:
    # A closed connection (FIN, no status line) makes httplib2 itself re-send the request once,
    # whatever num_retries says: the POST is committed twice and the client sees the second answer.
    sandbox.fault(method="POST", path="/calendar/v3/calendars", action="commit_then_drop")
    service = sandbox.service()
    answer = service.calendars().insert(body={"summary": "Twice"}).execute(num_retries=0)
    twice = [c["id"] for c in sandbox.calendars() if c["summary"] == "Twice"]
    assert len(twice) == 2
    assert answer["id"] == twice[1]

    # A reset connection (RST) is not re-sent by httplib2: the caller gets the error, one commit.
    sandbox.fault(
        method="POST", path="/calendar/v3/calendars", action="commit_then_drop", reset=True
    )
    with pytest.raises(ConnectionResetError):
        service.calendars().insert(body={"summary": "Once"}).execute(num_retries=0)
    assert [c["summary"] for c in sandbox.calendars()].count("Once") == 1


def test_drop_before_commit_reaches_httpx_as_a_protocol_error(sandbox: Sandbox) -> None:
    sandbox.fault(method="GET", path="/calendar/v3/colors", action="drop", count=2)

    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{sandbox.base}/calendar/v3/colors")
    with socket.create_connection(("127.0.0.1", int(sandbox.base.rsplit(":", 1)[1]))) as raw:
        raw.sendall(b"GET /calendar/v3/colors HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv(1024) == b""  # EOF without a status line


def test_request_log_and_control_edits(sandbox: Sandbox) -> None:
    service = sandbox.service()
    calendar_id = service.calendars().insert(body={"summary": "Logged"}).execute()["id"]
    edited = sandbox.control.patch(f"/calendars/{calendar_id}", json={"summary": "By hand"})

    assert edited.json()["summary"] == "By hand"
    assert service.calendars().get(calendarId=calendar_id).execute()["summary"] == "By hand"
    [token, insert, get] = sandbox.requests()
    assert (token["method"], token["path"], token["status"]) == ("POST", "/token", 200)
    assert insert["method"] == "POST"
    assert insert["path"] == "/calendar/v3/calendars"
    assert insert["query"] == {"alt": "json"}
    assert insert["user"] == OWNER
    assert insert["body"] == {"summary": "Logged"}
    assert insert["in_batch"] is False
    assert get["t"] >= insert["t"]

    assert sandbox.control.delete(f"/calendars/{calendar_id}").status_code == 204
    with pytest.raises(HttpError):
        service.calendars().get(calendarId=calendar_id).execute()
    assert sandbox.control.delete("/requests").status_code == 204
    assert sandbox.requests() == []
    assert sandbox.control.post("/reset").status_code == 204
    assert sandbox.calendars() == []


def test_read_only_mode_set_for_seconds_refuses_writes_then_lifts(sandbox: Sandbox) -> None:
    service = sandbox.service()
    calendar_id = service.calendars().insert(body={"summary": "Before"}).execute()["id"]
    mode = sandbox.control.post(f"/users/{OWNER}/read-only", json={"seconds": 1})
    assert mode.status_code == 204
    lifts_at = time.monotonic() + 1

    write = service.calendars().patch(calendarId=calendar_id, body={"summary": "No"})
    with pytest.raises(HttpError) as refused:
        _no_backoff(write).execute()
    assert refused.value.error_details[0]["reason"] == "quotaExceeded"
    assert service.calendars().get(calendarId=calendar_id).execute()["summary"] == "Before"

    while time.monotonic() < lifts_at:  # the mode lifting with time is what is tested
        time.sleep(0.05)
    patched = service.calendars().patch(calendarId=calendar_id, body={"summary": "After"})
    assert patched.execute()["summary"] == "After"
