"""event_drift.drift: the managed fields in which Google's event differs from the body."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.event_body import EventBody, EventTime
from bridge.event_drift import StrayEvent, drift

BERLIN = ZoneInfo("Europe/Berlin")
TIMED = EventBody(
    event_id="abc123",
    summary="Review",
    start=EventTime(moment=datetime(2025, 3, 10, 17, 59, tzinfo=BERLIN), time_zone="Europe/Berlin"),
    end=EventTime(moment=datetime(2025, 3, 10, 18, 59, tzinfo=BERLIN), time_zone="Europe/Berlin"),
    description="Numbers first",
    recurrence=("RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=Europe/Berlin:20250317T175900"),
    reminders=(10,),
)


def shown(body: EventBody = TIMED, **changes: Any) -> dict[str, Any]:
    return {**body.to_api(), "etag": '"7"', "creator": {"email": "x@example.com"}, **changes}


def test_the_body_as_written_has_no_drift() -> None:
    assert drift(TIMED, shown()) == ()


def test_an_instant_written_with_another_offset_is_the_same() -> None:
    utc = {"dateTime": "2025-03-10T16:59:00Z", "timeZone": "Europe/Berlin"}
    assert drift(TIMED, shown(start=utc)) == ()


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"summary": "Review (by hand)"}, ("summary",)),
        ({"description": ""}, ("description",)),
        ({"location": "Cafeteria"}, ("location",)),
        ({"transparency": "transparent"}, ("transparency",)),
        ({"visibility": "private"}, ("visibility",)),
        ({"status": "cancelled"}, ("status",)),
        ({"colorId": "11"}, ("colorId",)),
        ({"start": {"dateTime": "2025-03-10T17:59:00+01:00", "timeZone": "UTC"}}, ("start",)),
        ({"end": {"dateTime": "2025-03-10T19:59:00+01:00", "timeZone": "Europe/Berlin"}}, ("end",)),
        ({"recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"]}, ("recurrence",)),
        ({"reminders": {"useDefault": True}}, ("reminders",)),
    ],
)
def test_a_hand_edit_of_a_managed_field_is_drift(
    changes: dict[str, Any], fields: tuple[str, ...]
) -> None:
    assert drift(TIMED, shown(**changes)) == fields


def test_fields_google_leaves_out_read_as_their_defaults() -> None:
    body = EventBody(
        event_id="abc123",
        summary="Holiday",
        start=EventTime(day=date(2025, 12, 24)),
        end=EventTime(day=date(2025, 12, 27)),
    )
    minimal = {
        "id": "abc123",
        "summary": "Holiday",
        "start": {"date": "2025-12-24"},
        "end": {"date": "2025-12-27"},
        "reminders": {"useDefault": False},
    }
    assert drift(body, minimal) == ()
    assert drift(body, {**minimal, "end": {"date": "2025-12-26"}}) == ("end",)


def test_the_order_of_recurrence_lines_does_not_matter() -> None:
    assert drift(TIMED, shown(recurrence=list(reversed(TIMED.recurrence)))) == ()


def test_a_stray_describes_itself() -> None:
    stray = StrayEvent("cal@group", "ev1", "42", "Old")
    assert stray.describe("acme") == "acme: stray event ev1 (entry 42) 'Old': delete from cal@group"
