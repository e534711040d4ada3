"""The Google emulator's events, driven by the real google-api-python-client over real HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import google_auth_httplib2
import httplib2
import httpx
import pytest
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest, HttpRequest

from bridge.sandbox.google import GoogleControl, GoogleEmulator, generate_service_account
from bridge.sandbox.server import ServerThread

OWNER = "owner@example.com"
BERLIN = "Europe/Berlin"


@dataclass
class Google:
    emulator: GoogleEmulator
    base: str
    info: dict[str, str]
    control: GoogleControl

    def service(self, user: str = OWNER) -> Any:
        creds = service_account.Credentials.from_service_account_info(
            self.info, scopes=["https://www.googleapis.com/auth/calendar"]
        ).with_subject(user)
        return build(
            "calendar",
            "v3",
            http=google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http(timeout=5)),
            static_discovery=True,
            client_options={"api_endpoint": f"{self.base}/calendar/v3/"},
        )

    def calendar(self, service: Any, summary: str = "Team", zone: str = BERLIN) -> str:
        body = {"summary": summary, "timeZone": zone}
        calendar_id: str = service.calendars().insert(body=body).execute()["id"]
        return calendar_id


@pytest.fixture(scope="module")
def served() -> Iterator[Google]:
    emulator = GoogleEmulator(creation_limit=1000, user_rate_per_minute=100_000)
    server = ServerThread(emulator.app)
    base = server.start()
    info = generate_service_account(f"{base}/token")
    emulator.register_service_account(info)
    control = GoogleControl(base)
    yield Google(emulator, base, info, control)
    control.close()
    server.stop()


@pytest.fixture
def google(served: Google) -> Google:
    served.emulator.reset()
    return served


def _timed(start: str, end: str, zone: str = BERLIN, **fields: Any) -> dict[str, Any]:
    return {
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        **fields,
    }


def _refused(request: HttpRequest) -> HttpError:
    request._sleep = lambda seconds: None  # no library backoff between retries
    with pytest.raises(HttpError) as caught:
        request.execute()
    return caught.value


def _reason(error: HttpError) -> tuple[int, str]:
    return error.status_code, error.error_details[0]["reason"]


def _instances(service: Any, calendar_id: str, event_id: str, **params: Any) -> list[Any]:
    found = service.events().instances(calendarId=calendar_id, eventId=event_id, **params)
    items: list[Any] = found.execute()["items"]
    return items


def test_client_ids_are_checked_and_unique_per_calendar(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    body = _timed("2024-12-11T17:00:00+01:00", "2024-12-11T18:00:00+01:00", summary="Meeting")
    events = service.events()

    created = events.insert(calendarId=calendar_id, body={"id": "b24abc0001", **body}).execute()
    again = events.insert(calendarId=calendar_id, body={"id": "b24abc0001", **body})
    server_made = events.insert(calendarId=calendar_id, body=body).execute()

    assert (created["id"], created["status"], created["summary"]) == (
        "b24abc0001",
        "confirmed",
        "Meeting",
    )
    assert created["iCalUID"] == "b24abc0001@google.com"
    assert events.get(calendarId=calendar_id, eventId="b24abc0001").execute() == created
    assert _reason(_refused(again)) == (409, "duplicate")
    assert re.fullmatch(r"[0-9a-v]{5,1024}", server_made["id"])
    for bad in ("abcd", "b24wxyz01", "B24ABC0001", "b24_abc01", "a" * 1025):
        error = _refused(events.insert(calendarId=calendar_id, body={"id": bad, **body}))
        assert _reason(error) == (400, "invalid")
    assert events.insert(calendarId=calendar_id, body={"id": "v" * 1024, **body}).execute()


def test_a_deleted_event_stays_cancelled_and_comes_back_by_update(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    body = {"id": "gone00001", **_timed("2024-12-11T17:00:00Z", "2024-12-11T18:00:00Z")}
    events = service.events()
    events.insert(calendarId=calendar_id, body=body).execute()

    assert events.delete(calendarId=calendar_id, eventId="gone00001").execute() == ""
    cancelled = events.get(calendarId=calendar_id, eventId="gone00001").execute()
    assert cancelled["status"] == "cancelled"
    assert events.list(calendarId=calendar_id).execute()["items"] == []
    [shown] = events.list(calendarId=calendar_id, showDeleted=True).execute()["items"]
    assert shown["id"] == "gone00001"
    assert _reason(_refused(events.delete(calendarId=calendar_id, eventId="gone00001"))) == (
        410,
        "deleted",
    )
    assert _reason(_refused(events.insert(calendarId=calendar_id, body=body))) == (409, "duplicate")

    revived = events.update(calendarId=calendar_id, eventId="gone00001", body=body).execute()
    assert revived["status"] == "confirmed"
    assert [e["id"] for e in events.list(calendarId=calendar_id).execute()["items"]] == [
        "gone00001"
    ]
    events.delete(calendarId=calendar_id, eventId="gone00001").execute()
    patched = events.patch(
        calendarId=calendar_id, eventId="gone00001", body={"status": "confirmed"}
    ).execute()
    assert patched["status"] == "confirmed"


def test_fields_are_checked(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    events = service.events()
    good = _timed("2024-12-11T17:00:00Z", "2024-12-11T18:00:00Z")
    cases: list[tuple[dict[str, Any], tuple[int, str], str | None]] = [
        (
            _timed("2024-12-11T18:00:00Z", "2024-12-11T17:00:00Z"),
            (400, "timeRangeEmpty"),
            "The specified time range is empty.",
        ),
        ({**good, "end": {"date": "2024-12-12"}}, (400, "invalid"), None),
        (
            {
                "start": {"dateTime": "2024-12-11T17:00:00Z"},
                "end": {"dateTime": "2024-12-11T18:00:00Z"},
                "recurrence": ["RRULE:FREQ=DAILY;COUNT=2"],
            },
            (400, "required"),
            "Missing time zone definition for start time.",
        ),
        ({**good, "recurrence": ["RRULE:FREQ=SOMETIMES"]}, (400, "invalid"), None),
        (
            {**good, "recurrence": ["RRULE:FREQ=DAILY;COUNT=2;UNTIL=20241220T000000Z"]},
            (400, "invalid"),
            None,
        ),
        (
            {**good, "recurrence": ["EXDATE;TZID=Mars/Olympus:20241211T170000"]},
            (400, "invalid"),
            None,
        ),
        ({**good, "colorId": "12"}, (400, "invalid"), None),
        ({**good, "transparency": "see-through"}, (400, "invalid"), None),
        (
            {
                **good,
                "reminders": {
                    "useDefault": False,
                    "overrides": [{"method": "popup", "minutes": n} for n in range(6)],
                },
            },
            (400, "tooManyReminders"),
            None,
        ),
        (
            {"start": {"date": "2024-12-20"}, "end": {"date": "2024-12-20"}},
            (400, "timeRangeEmpty"),
            None,
        ),
    ]
    for body, expected, message in cases:
        error = _refused(events.insert(calendarId=calendar_id, body=body))
        assert _reason(error) == expected, body
        if message is not None:
            assert error.reason == message
    kept = events.insert(
        calendarId=calendar_id,
        body={
            **good,
            "colorId": "11",
            "transparency": "transparent",
            "visibility": "private",
            "reminders": {"useDefault": False, "overrides": [{"method": "popup", "minutes": 15}]},
            "extendedProperties": {"private": {"b24_entry": "7"}, "shared": {"x": "y"}},
        },
    ).execute()
    assert (kept["colorId"], kept["transparency"], kept["visibility"]) == (
        "11",
        "transparent",
        "private",
    )
    assert kept["extendedProperties"] == {"private": {"b24_entry": "7"}, "shared": {"x": "y"}}
    assert kept["reminders"]["overrides"] == [{"method": "popup", "minutes": 15}]


def test_instances_of_count_until_and_exdate(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    events = service.events()
    weekly = _timed(
        "2024-12-02T10:00:00+01:00",
        "2024-12-02T11:00:00+01:00",
        id="rule00001",
        recurrence=["RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=5"],
    )
    daily = _timed(
        "2024-12-02T09:00:00",
        "2024-12-02T09:30:00",
        id="each00001",
        recurrence=[
            "RRULE:FREQ=DAILY;UNTIL=20241205T225959Z",
            "RDATE;TZID=Europe/Berlin:20241201T180000",
            "EXDATE;TZID=Europe/Berlin:20241203T090000",
        ],
    )
    for body in (weekly, daily):
        events.insert(calendarId=calendar_id, body=body, sendUpdates="none").execute()

    weekly_items = _instances(service, calendar_id, "rule00001")
    daily_items = _instances(service, calendar_id, "each00001")

    assert [i["id"] for i in weekly_items] == [
        "rule00001_20241202T090000Z",
        "rule00001_20241204T090000Z",
        "rule00001_20241209T090000Z",
        "rule00001_20241211T090000Z",
        "rule00001_20241216T090000Z",
    ]
    first = weekly_items[0]
    assert first["recurringEventId"] == "rule00001"
    assert first["originalStartTime"] == {
        "dateTime": "2024-12-02T10:00:00+01:00",
        "timeZone": BERLIN,
    }
    assert first["start"] == first["originalStartTime"]
    assert first["end"] == {"dateTime": "2024-12-02T11:00:00+01:00", "timeZone": BERLIN}
    assert "recurrence" not in first
    assert [i["start"]["dateTime"] for i in daily_items] == [
        "2024-12-01T18:00:00+01:00",
        "2024-12-02T09:00:00+01:00",
        "2024-12-04T09:00:00+01:00",
        "2024-12-05T09:00:00+01:00",
    ]
    windowed = _instances(
        service,
        calendar_id,
        "rule00001",
        timeMin="2024-12-04T10:30:00+01:00",
        timeMax="2024-12-11T10:00:00+01:00",
    )
    assert [i["id"] for i in windowed] == [
        "rule00001_20241204T090000Z",
        "rule00001_20241209T090000Z",
    ]
    one = events.get(calendarId=calendar_id, eventId="rule00001_20241209T090000Z").execute()
    assert one["start"]["dateTime"] == "2024-12-09T10:00:00+01:00"
    missing = events.get(calendarId=calendar_id, eventId="each00001_20241203T080000Z")
    assert _reason(_refused(missing)) == (404, "notFound")


def test_all_day_series_and_a_daylight_saving_change(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service, zone="America/New_York")
    events = service.events()
    holiday = {
        "id": "fest00001",
        "start": {"date": "2024-12-20"},
        "end": {"date": "2024-12-22"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3", "EXDATE;VALUE=DATE:20241227"],
    }
    standup = _timed(
        "2024-10-28T10:00:00-04:00",
        "2024-10-28T10:15:00-04:00",
        zone="America/New_York",
        id="standup01",
        recurrence=["RRULE:FREQ=WEEKLY;UNTIL=20241111T150000Z"],
    )
    for body in (holiday, standup):
        events.insert(calendarId=calendar_id, body=body).execute()

    days = _instances(service, calendar_id, "fest00001")
    weeks = _instances(service, calendar_id, "standup01")

    assert [(i["id"], i["start"], i["end"]) for i in days] == [
        ("fest00001_20241220", {"date": "2024-12-20"}, {"date": "2024-12-22"}),
        ("fest00001_20250103", {"date": "2025-01-03"}, {"date": "2025-01-05"}),
    ]
    assert days[0]["originalStartTime"] == {"date": "2024-12-20"}
    assert [(i["id"], i["start"]["dateTime"]) for i in weeks] == [
        ("standup01_20241028T140000Z", "2024-10-28T10:00:00-04:00"),
        ("standup01_20241104T150000Z", "2024-11-04T10:00:00-05:00"),
        ("standup01_20241111T150000Z", "2024-11-11T10:00:00-05:00"),
    ]


def test_overrides_and_cancelled_occurrences(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    events = service.events()
    series = _timed(
        "2024-12-02T10:00:00+01:00",
        "2024-12-02T11:00:00+01:00",
        id="series001",
        summary="Sync",
        recurrence=["RRULE:FREQ=DAILY;COUNT=4"],
        extendedProperties={"private": {"b24_portal": "p1"}},
    )
    events.insert(calendarId=calendar_id, body=series).execute()

    moved = events.patch(
        calendarId=calendar_id,
        eventId="series001_20241203T090000Z",
        body={
            "summary": "Sync (moved)",
            "start": {"dateTime": "2024-12-03T14:00:00+01:00"},
            "end": {"dateTime": "2024-12-03T15:00:00+01:00"},
        },
        sendUpdates="none",
    ).execute()
    events.delete(calendarId=calendar_id, eventId="series001_20241204T090000Z").execute()

    assert moved["id"] == "series001_20241203T090000Z"
    assert moved["recurringEventId"] == "series001"
    assert moved["originalStartTime"] == {
        "dateTime": "2024-12-03T10:00:00+01:00",
        "timeZone": BERLIN,
    }
    assert moved["start"] == {"dateTime": "2024-12-03T14:00:00+01:00", "timeZone": BERLIN}
    listed = _instances(service, calendar_id, "series001")
    assert [(i["id"][-16:], i["summary"]) for i in listed] == [
        ("20241202T090000Z", "Sync"),
        ("20241203T090000Z", "Sync (moved)"),
        ("20241205T090000Z", "Sync"),
    ]
    with_deleted = _instances(service, calendar_id, "series001", showDeleted=True)
    assert [i["status"] for i in with_deleted] == [
        "confirmed",
        "confirmed",
        "cancelled",
        "confirmed",
    ]
    singles = events.list(calendarId=calendar_id, singleEvents=True, orderBy="startTime").execute()
    assert [i["summary"] for i in singles["items"]] == ["Sync", "Sync (moved)", "Sync"]
    # events.list: "cancelled instances ... will still be included if showDeleted and
    # singleEvents are both False"
    raw = events.list(calendarId=calendar_id, privateExtendedProperty="b24_portal=p1").execute()
    assert [(i["id"], i["status"]) for i in raw["items"]] == [
        ("series001", "confirmed"),
        ("series001_20241203T090000Z", "confirmed"),
        ("series001_20241204T090000Z", "cancelled"),
    ]
    stored = google.control.events(calendar_id)
    assert [e["id"] for e in stored] == ["series001", "series001_20241203T090000Z"]
    assert len(google.control.events(calendar_id, show_deleted=True)) == 3
    again = events.delete(calendarId=calendar_id, eventId="series001_20241204T090000Z")
    assert _reason(_refused(again)) == (410, "deleted")

    events.delete(calendarId=calendar_id, eventId="series001").execute()
    assert _instances(service, calendar_id, "series001") == []
    assert events.list(calendarId=calendar_id, singleEvents=True).execute()["items"] == []


def test_move_to_another_calendar(google: Google) -> None:
    service = google.service()
    source, destination = google.calendar(service, "A"), google.calendar(service, "B")
    events = service.events()
    body = _timed("2024-12-11T17:00:00Z", "2024-12-11T18:00:00Z", id="mover0001")
    events.insert(calendarId=source, body=body).execute()
    series = _timed(
        "2024-12-11T17:00:00Z",
        "2024-12-11T18:00:00Z",
        id="mover0002",
        recurrence=["RRULE:FREQ=DAILY"],
    )
    events.insert(calendarId=source, body=series).execute()

    moved = events.move(
        calendarId=source, eventId="mover0001", destination=destination, sendUpdates="none"
    ).execute()

    assert moved["organizer"]["email"] == destination
    assert events.get(calendarId=destination, eventId="mover0001").execute()["id"] == "mover0001"
    assert _reason(_refused(events.get(calendarId=source, eventId="mover0001"))) == (
        404,
        "notFound",
    )
    instance = events.move(
        calendarId=source, eventId="mover0002_20241212T170000Z", destination=destination
    )
    assert _reason(_refused(instance)) == (400, "cannotChangeOrganizerOfInstance")
    events.insert(calendarId=source, body=body).execute()
    clash = events.move(calendarId=source, eventId="mover0001", destination=destination)
    assert _reason(_refused(clash)) == (409, "duplicate")


def test_list_filters_windows_and_pages(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    events = service.events()
    for day in range(1, 8):
        portal = "a" if day % 2 else "b"
        body = _timed(
            f"2024-12-0{day}T10:00:00Z",
            f"2024-12-0{day}T11:00:00Z",
            id=f"list{day:05d}",
            extendedProperties={"private": {"b24_portal": portal, "b24_entry": str(day)}},
        )
        events.insert(calendarId=calendar_id, body=body).execute()

    def ids(**params: Any) -> list[str]:
        found: list[str] = []
        token = None
        while True:
            page = events.list(calendarId=calendar_id, pageToken=token, **params).execute()
            found += [item["id"] for item in page["items"]]
            token = page.get("nextPageToken")
            if token is None:
                return found

    assert ids(privateExtendedProperty="b24_portal=a") == [
        "list00001",
        "list00003",
        "list00005",
        "list00007",
    ]
    assert ids(privateExtendedProperty=["b24_portal=a", "b24_entry=3"]) == ["list00003"]
    assert ids(sharedExtendedProperty="b24_portal=a") == []
    assert ids(timeMin="2024-12-03T10:30:00Z", timeMax="2024-12-05T10:00:00Z") == [
        "list00003",
        "list00004",
    ]
    assert ids(maxResults=3) == [f"list{day:05d}" for day in range(1, 8)]
    first = events.list(calendarId=calendar_id, maxResults=3).execute()
    assert len(first["items"]) == 3 and "nextPageToken" in first
    assert first["kind"] == "calendar#events" and first["accessRole"] == "owner"
    error = _refused(events.list(calendarId=calendar_id, orderBy="startTime"))
    assert error.status_code == 400
    empty = events.list(
        calendarId=calendar_id, timeMin="2024-12-05T00:00:00Z", timeMax="2024-12-04T00:00:00Z"
    )
    assert _reason(_refused(empty)) == (400, "timeRangeEmpty")


def test_a_batch_of_50_inserts_and_the_logged_send_updates(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    answers: dict[str, Any] = {}

    def collect(request_id: str, response: Any, error: HttpError | None) -> None:
        answers[request_id] = error or response

    def batch_of(numbers: range) -> BatchHttpRequest:
        batch = BatchHttpRequest(callback=collect, batch_uri=f"{google.base}/batch/calendar/v3")
        for n in numbers:
            body = _timed("2024-12-11T17:00:00Z", "2024-12-11T18:00:00Z", id=f"batch{n:05d}")
            batch.add(
                service.events().insert(calendarId=calendar_id, body=body, sendUpdates="none"),
                request_id=str(n),
            )
        return batch

    google.control.clear_requests()
    batch_of(range(50)).execute()
    batch_of(range(49, 51)).execute()

    assert all(not isinstance(answers[str(n)], HttpError) for n in (*range(49), 50))
    assert _reason(answers["49"]) == (409, "duplicate")
    assert len(google.control.events(calendar_id)) == 51
    inserts = [r for r in google.control.requests() if r["path"].endswith("/events")]
    assert len(inserts) == 52
    assert all(r["in_batch"] and r["query"]["sendUpdates"] == "none" for r in inserts)


def test_too_many_new_events_turn_the_user_read_only(google: Google) -> None:
    user = "busy@example.com"
    service = google.service(user)
    calendar_id = google.calendar(service)
    events = service.events()
    body = _timed("2024-12-11T17:00:00Z", "2024-12-11T18:00:00Z")
    google.control.event_creation_budget(3)
    try:
        made = [events.insert(calendarId=calendar_id, body=body).execute()["id"] for _ in range(3)]
        refused = _refused(events.insert(calendarId=calendar_id, body=body))
        blocked = _refused(
            events.patch(calendarId=calendar_id, eventId=made[0], body={"summary": "x"})
        )
    finally:
        google.control.event_creation_budget(10_000)

    for error in (refused, blocked):
        assert error.status_code == 403
        assert error.error_details == [
            {
                "domain": "usageLimits",
                "reason": "quotaExceeded",
                "message": "Calendar usage limits exceeded.",
            }
        ]
    assert len(events.list(calendarId=calendar_id).execute()["items"]) == 3
    other = google.service("other@example.com")
    assert google.calendar(other)
    google.control.read_only(user, seconds=0)
    assert events.insert(calendarId=calendar_id, body=body).execute()


def test_access_and_calendar_deletion(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    body = _timed("2024-12-11T17:00:00Z", "2024-12-11T18:00:00Z", id="access001")
    service.events().insert(calendarId=calendar_id, body=body).execute()
    stranger = google.service("stranger@example.com").events()
    reader = google.service("reader@example.com").events()
    rule = {"role": "reader", "scope": {"type": "user", "value": "reader@example.com"}}
    service.acl().insert(calendarId=calendar_id, body=rule).execute()

    assert _reason(_refused(stranger.get(calendarId=calendar_id, eventId="access001")))[0] == 404
    assert _reason(_refused(stranger.insert(calendarId=calendar_id, body=body)))[0] == 404
    assert reader.get(calendarId=calendar_id, eventId="access001").execute()["id"] == "access001"
    assert _reason(_refused(reader.delete(calendarId=calendar_id, eventId="access001")))[0] == 403

    service.calendars().delete(calendarId=calendar_id).execute()
    with pytest.raises(httpx.HTTPStatusError) as gone:
        google.control.events(calendar_id)
    assert gone.value.response.status_code == 404
    recreated = google.calendar(service)
    service.events().insert(calendarId=recreated, body=body).execute()  # no id clash elsewhere


def test_hand_edits_through_the_control_api(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    body = _timed(
        "2024-12-11T17:00:00Z",
        "2024-12-11T18:00:00Z",
        id="hand00001",
        summary="Bridge",
        extendedProperties={"private": {"b24_portal": "p", "b24_version": "1"}},
    )
    created = service.events().insert(calendarId=calendar_id, body=body).execute()

    edited = google.control.patch_event(
        calendar_id, "hand00001", summary="By hand", location="Room 2"
    )
    fetched = service.events().get(calendarId=calendar_id, eventId="hand00001").execute()

    assert fetched == edited
    assert (fetched["summary"], fetched["location"]) == ("By hand", "Room 2")
    assert fetched["etag"] != created["etag"]
    assert fetched["extendedProperties"] == created["extendedProperties"]
    assert google.control.requests(OWNER)[-1]["method"] == "GET"  # the edit is not an API call
    google.control.delete_event(calendar_id, "hand00001")
    assert (
        service.events().get(calendarId=calendar_id, eventId="hand00001").execute()["status"]
        == "cancelled"
    )


def test_an_endless_series_reaches_any_window(google: Google) -> None:
    service = google.service()
    calendar_id = google.calendar(service)
    events = service.events()
    body = _timed(
        "2020-01-01T09:00:00",
        "2020-01-01T10:00:00",
        id="endless01",
        recurrence=["RRULE:FREQ=DAILY"],
    )
    events.insert(calendarId=calendar_id, body=body).execute()

    far = events.list(calendarId=calendar_id, timeMin="2031-06-01T00:00:00Z").execute()["items"]
    [one] = events.list(
        calendarId=calendar_id,
        singleEvents=True,
        timeMin="2031-06-01T00:00:00Z",
        timeMax="2031-06-02T00:00:00Z",
    ).execute()["items"]

    assert [event["id"] for event in far] == ["endless01"]
    assert one["id"] == "endless01_20310601T070000Z"  # 09:00 in Berlin's summer time
