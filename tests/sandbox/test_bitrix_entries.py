"""The Bitrix24 emulator's calendar entries over real HTTP: the documented formats in each locale,
`calendar.event.get` / `getbyid` (also in `batch`), the series edits and their ONCALENDARENTRY*
deliveries, and the `calendar.event.add/update/delete` methods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bridge.sandbox.bitrix import BitrixControl
from tests.sandbox.conftest import Receiver

MEMBER = "entries-portal"
CODE = "entriescode"
DOMAIN = "entries.bitrix24.com"
ENTRY_EVENTS = ["ONCALENDARENTRYADD", "ONCALENDARENTRYUPDATE", "ONCALENDARENTRYDELETE"]


@pytest.fixture
def bx(control: BitrixControl, receiver: Receiver) -> BitrixControl:
    """The conftest's control client on its fresh portal, with the entry events bound."""
    control.bind_outgoing_webhook(MEMBER, f"{receiver.server.url}/hook", "token", ENTRY_EVENTS)
    return control


def delivered(bx: BitrixControl, receiver: Receiver) -> list[tuple[str, str]]:
    """(event, data[id]) of every delivery so far, in order; then forgets them."""
    bx.flush_deliveries()
    events = []
    for record in receiver.records:
        payload = record["body"]
        events.append((payload["event"], payload["data"]["id"]))
    receiver.records.clear()
    return events


def call(rest: httpx.Client, method: str, **params: Any) -> httpx.Response:
    return rest.post(method, json=params)


def result(rest: httpx.Client, method: str, **params: Any) -> Any:
    answer = call(rest, method, **params)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def section(bx: BitrixControl, name: str = "Team", kind: str = "user", owner: int = 1) -> str:
    return str(bx.add_section(MEMBER, kind, owner, name, deliver=False)["ID"])


def listing(rest: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = result(
        rest, "calendar.event.get", type="user", ownerId=1, **params
    )
    return rows


def test_a_timed_series_renders_as_the_getbyid_example(
    bx: BitrixControl, rest: httpx.Client
) -> None:
    added = bx.add_entry(
        MEMBER,
        section(bx),
        "Event Name",
        "2024-12-11T15:59:00Z",
        "2024-12-11T16:59:00Z",
        zone="Europe/Riga",
        rrule={"FREQ": "WEEKLY", "BYDAY": ["MO", "WE"], "UNTIL": "2024-12-24"},
        exdates=["2024-11-28", "2024-12-05"],
    )
    entry = result(rest, "calendar.event.getbyid", id=added["ID"])

    # The values of calendar-event-get-by-id.md's example.
    assert entry["DATE_FROM"] == "12/11/2024 05:59:00 pm"
    assert entry["DATE_TO"] == "12/11/2024 06:59:00 pm"
    assert (entry["TZ_FROM"], entry["TZ_OFFSET_FROM"]) == ("Europe/Riga", "7200")
    assert (entry["DATE_FROM_TS_UTC"], entry["DATE_TO_TS_UTC"]) == ("1733932740", "1733936340")
    assert (entry["DT_SKIP_TIME"], entry["DT_LENGTH"]) == ("N", 3600)
    assert entry["DATE_FROM_FORMATTED"] == "Wed Dec 11 2024 17:59:00"
    assert entry["RRULE"] == {
        "FREQ": "WEEKLY",
        "BYDAY": {"MO": "MO", "WE": "WE"},
        "INTERVAL": 1,
        "UNTIL": "12/24/2024",
        "~UNTIL": "12/24/2024",
        "UNTIL_TS": 1734998400,
    }
    assert entry["EXDATE"] == "11/28/2024;12/05/2024"
    assert (entry["ID"], entry["PARENT_ID"], entry["VERSION"]) == (added["ID"], added["ID"], "1")
    assert (entry["CAL_TYPE"], entry["OWNER_ID"], entry["SECTION_ID"]) == ("user", "1", "1")


def test_an_all_day_booking_renders_as_the_booking_list_example(
    bx: BitrixControl, rest: httpx.Client
) -> None:
    bx.set_locale(MEMBER, "de")
    resource = section(bx, "Projector", kind="resource", owner=0)
    added = bx.add_entry(
        MEMBER,
        resource,
        "Booking",
        "2024-12-20",
        "2024-12-21",
        zone="Europe/Riga",
        event_type="#resourcebooking#",
    )
    entry = result(rest, "calendar.event.getbyid", id=added["ID"])

    # calendar-resource-booking-list.md: DATE_TO is the last day, the stamps UTC midnights.
    assert (entry["DATE_FROM"], entry["DATE_TO"]) == ("20.12.2024 00:00:00", "21.12.2024 00:00:00")
    assert (entry["DATE_FROM_TS_UTC"], entry["DATE_TO_TS_UTC"]) == ("1734652800", "1734739200")
    assert (entry["DT_SKIP_TIME"], entry["DT_LENGTH"]) == ("Y", 172800)
    assert (entry["TZ_FROM"], entry["TZ_OFFSET_FROM"]) == ("Europe/Riga", "7200")
    assert (entry["DATE_FROM_FORMATTED"], entry["DATE_TO_FORMATTED"]) == (
        "Fri Dec 20 2024",
        "Sat Dec 21 2024",
    )
    assert (entry["CAL_TYPE"], entry["OWNER_ID"]) == ("resource", "0")
    assert entry["EVENT_TYPE"] == "#resourcebooking#"
    assert (entry["RRULE"], entry["EXDATE"]) == ("", "")


@pytest.mark.parametrize(
    ("locale", "date_from", "exdate", "until"),
    [
        ("en", "12/11/2024 05:59:00 pm", "12/16/2024", "12/31/2024"),
        ("de", "11.12.2024 17:59:00", "16.12.2024", "31.12.2024"),
        ("ru", "11.12.2024 17:59:00", "16.12.2024", "31.12.2024"),
        ("br", "11/12/2024 17:59:00", "16/12/2024", "31/12/2024"),
    ],
)
def test_dates_follow_the_portals_locale(
    bx: BitrixControl, rest: httpx.Client, locale: str, date_from: str, exdate: str, until: str
) -> None:
    assert bx.set_locale(MEMBER, locale)["locale"] == locale
    added = bx.add_entry(
        MEMBER,
        section(bx),
        "Daily",
        "2024-12-11T17:59:00",
        "2024-12-11T18:59:00",
        zone="Europe/Riga",
        rrule={"FREQ": "DAILY", "UNTIL": "2024-12-31"},
        exdates=["2024-12-16"],
    )
    entry = result(rest, "calendar.event.getbyid", id=added["ID"])
    assert entry["DATE_FROM"] == date_from
    assert entry["EXDATE"] == exdate
    assert (entry["RRULE"]["UNTIL"], entry["RRULE"]["~UNTIL"]) == (until, until)
    assert entry["DATE_FROM_TS_UTC"] == "1733932740"  # the instant does not depend on it


def test_required_parameters_and_unknown_ids_answer_the_documented_errors(
    bx: BitrixControl, rest: httpx.Client
) -> None:
    for params, missing in (({"ownerId": 1}, "type"), ({"type": "user"}, "ownerId")):
        answer = call(rest, "calendar.event.get", **params)
        assert answer.status_code == 400
        assert answer.json()["error"] == ""
        assert f'"{missing}"' in answer.json()["error_description"]
        assert "calendar.event.get" in answer.json()["error_description"]
    answer = call(rest, "calendar.event.getbyid")
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "",
        "error_description": 'The required parameter "id" for the method '
        '"calendar.event.getbyid" is not set',
    }

    added = bx.add_entry(MEMBER, section(bx), "Gone", "2025-01-01", "2025-01-01")
    bx.delete_entry(MEMBER, added["ID"])
    for entry_id in (added["ID"], "4242"):
        answer = call(rest, "calendar.event.getbyid", id=entry_id)
        assert answer.status_code == 400
        assert answer.json() == {"error": "", "error_description": "Access denied"}
    bx.patch_portal(MEMBER, missing_entry="null")
    assert call(rest, "calendar.event.getbyid", id=added["ID"]).json()["result"] is None


def test_the_default_window_is_one_month_back_and_three_months_ahead(
    bx: BitrixControl, rest: httpx.Client
) -> None:
    mine = section(bx)
    today = datetime.now(UTC).date()
    for offset in (-40, -20, 80, 100):
        day = (today + timedelta(days=offset)).isoformat()
        bx.add_entry(MEMBER, mine, f"day {offset}", day, day)
    assert [row["NAME"] for row in listing(rest)] == ["day -20", "day 80"]
    wide = listing(rest, **{"from": (today - timedelta(days=50)).isoformat(), "to": "2099-01-01"})
    assert [row["NAME"] for row in wide] == ["day -40", "day -20", "day 80", "day 100"]


def test_the_section_filter_and_the_callers_view_of_sections(
    bx: BitrixControl, rest: httpx.Client
) -> None:
    first, second = section(bx, "First"), section(bx, "Second")
    other_owner = section(bx, "Someone else's", owner=7)
    for where in (first, second, other_owner):
        bx.add_entry(MEMBER, where, f"in {where}", "2025-03-03", "2025-03-03")
    window = {"from": "2025-03-01", "to": "2025-03-31"}

    assert [row["SECTION_ID"] for row in listing(rest, **window)] == [first, second]
    assert [row["SECTION_ID"] for row in listing(rest, **window, section=[second])] == [second]
    others = result(rest, "calendar.event.get", type="user", ownerId=7, **window)
    assert [row["SECTION_ID"] for row in others] == [other_owner]

    bx.delete_section(MEMBER, second, deliver=False)  # a deleted section's entries are gone
    assert [row["SECTION_ID"] for row in listing(rest, **window)] == [first]


def test_an_entry_moved_to_another_section_is_listed_under_its_new_owner_only(
    bx: BitrixControl, rest: httpx.Client
) -> None:
    mine, theirs = section(bx, "Mine"), section(bx, "Theirs", owner=7)
    moving = bx.add_entry(MEMBER, mine, "Moving", "2025-03-03", "2025-03-03", deliver=False)
    bx.add_entry(MEMBER, mine, "Staying", "2025-03-04", "2025-03-04", deliver=False)
    window = {"from": "2025-03-01", "to": "2025-03-31"}

    bx.update_entry(MEMBER, moving["ID"], section=int(theirs), deliver=False)

    assert [row["NAME"] for row in listing(rest, **window)] == ["Staying"]
    assert [row["NAME"] for row in listing(rest, **window, section=[mine])] == ["Staying"]
    others = result(rest, "calendar.event.get", type="user", ownerId=7, **window)
    assert [(row["NAME"], row["SECTION_ID"]) for row in others] == [("Moving", theirs)]


def test_a_series_is_listed_once_per_occurrence_in_its_zones_wall_time(
    bx: BitrixControl, rest: httpx.Client
) -> None:
    added = bx.add_entry(
        MEMBER,
        section(bx),
        "Standup",
        "2024-10-21T09:00:00",
        "2024-10-21T09:15:00",
        zone="Europe/Berlin",
        rrule={"FREQ": "WEEKLY", "COUNT": 4},
        exdates=["2024-11-04"],
    )
    rows = listing(rest, **{"from": "2024-10-01", "to": "2024-12-31"})

    assert {row["ID"] for row in rows} == {added["ID"]}
    assert [row["DATE_FROM"] for row in rows] == [
        "10/21/2024 09:00:00 am",
        "10/28/2024 09:00:00 am",  # after the change to winter time: still 09:00 in Berlin
        "11/11/2024 09:00:00 am",
    ]
    stamps = [int(row["DATE_FROM_TS_UTC"]) for row in rows]
    assert stamps[1] - stamps[0] == 7 * 86400 + 3600
    assert {row["RRULE"]["COUNT"] for row in rows} == {4}

    bx.patch_portal(MEMBER, expand_recurrence=False)
    once = listing(rest, **{"from": "2024-10-01", "to": "2024-12-31"})
    assert [row["DATE_FROM"] for row in once] == ["10/21/2024 09:00:00 am"]


def test_edited_cancelled_and_split_occurrences_change_the_series_and_deliver_events(
    bx: BitrixControl, rest: httpx.Client, receiver: Receiver
) -> None:
    mine = section(bx)
    series = bx.add_entry(
        MEMBER,
        mine,
        "Weekly",
        "2025-01-06T10:00:00",
        "2025-01-06T11:00:00",
        zone="America/New_York",
        rrule={"FREQ": "WEEKLY", "COUNT": 6},
    )
    sid = series["ID"]
    assert delivered(bx, receiver) == [("ONCALENDARENTRYADD", sid)]

    edited = bx.edit_occurrence(
        MEMBER,
        sid,
        "2025-01-13",
        name="Moved",
        start="2025-01-14T15:00:00",
        end="2025-01-14T16:00:00",
    )
    single = edited["entry"]
    assert edited["series"]["EXDATE"] == "01/13/2025"
    assert (single["RECURRENCE_ID"], single["RRULE"], single["NAME"]) == (int(sid), "", "Moved")
    assert single["RELATIONS"] == {"COMMENT_XML_ID": f"EVENT_{sid}_01/13/2025"}
    assert single["ORIGINAL_DATE_FROM"] == "01/13/2025 10:00:00 am"
    assert single["DATE_FROM"] == "01/14/2025 03:00:00 pm"
    assert single["PARENT_ID"] == single["ID"]
    assert delivered(bx, receiver) == [
        ("ONCALENDARENTRYUPDATE", sid),
        ("ONCALENDARENTRYADD", single["ID"]),
    ]

    cancelled = bx.cancel_occurrence(MEMBER, sid, "2025-01-20")
    assert cancelled["series"]["EXDATE"] == "01/13/2025;01/20/2025"
    assert cancelled["series"]["VERSION"] == "3"
    assert delivered(bx, receiver) == [("ONCALENDARENTRYUPDATE", sid)]

    split = bx.split_series(MEMBER, sid, "2025-01-27", name="Weekly, later")
    old, new = split["series"]["RRULE"], split["entry"]
    assert old["UNTIL"] == "01/26/2025" and "COUNT" not in old
    assert new["RRULE"]["COUNT"] == 3  # 6 less the three occurrences before the 27th
    assert new["RELATIONS"] == {"ORIGINAL_RECURSION_ID": int(sid)}
    assert new["DATE_FROM"] == "01/27/2025 10:00:00 am"
    assert delivered(bx, receiver) == [
        ("ONCALENDARENTRYUPDATE", sid),
        ("ONCALENDARENTRYADD", new["ID"]),
    ]
    rows = listing(rest, **{"from": "2025-01-01", "to": "2025-03-31"})
    assert [(row["ID"], row["DATE_FROM"][:10]) for row in rows] == [
        (sid, "01/06/2025"),
        (single["ID"], "01/14/2025"),
        (new["ID"], "01/27/2025"),
        (new["ID"], "02/03/2025"),
        (new["ID"], "02/10/2025"),
    ]

    bx.delete_entry(MEMBER, sid)  # the series goes with its edited occurrence
    assert delivered(bx, receiver) == [
        ("ONCALENDARENTRYDELETE", sid),
        ("ONCALENDARENTRYDELETE", single["ID"]),
    ]
    left = listing(rest, **{"from": "2025-01-01", "to": "2025-03-31"})
    assert {row["ID"] for row in left} == {new["ID"]}


def test_getbyid_in_a_batch_counts_against_its_own_method(
    bx: BitrixControl, rest: httpx.Client
) -> None:
    mine = section(bx)
    ids = [bx.add_entry(MEMBER, mine, f"e{n}", "2025-02-02", "2025-02-02")["ID"] for n in range(3)]
    bx.delete_entry(MEMBER, ids[2])
    answer = result(
        rest,
        "batch",
        cmd={f"e{entry_id}": f"calendar.event.getbyid?id={entry_id}" for entry_id in ids},
    )
    assert [answer["result"][f"e{i}"]["NAME"] for i in ids[:2]] == ["e0", "e1"]
    assert answer["result_error"] == {
        f"e{ids[2]}": {"error": "", "error_description": "Access denied"}
    }
    assert "operating" in answer["result_time"][f"e{ids[0]}"]

    bx.patch_portal(MEMBER, webhook_scopes=["user"])
    assert call(rest, "calendar.event.get", type="user", ownerId=1).status_code == 403


def test_the_rest_methods_add_update_and_delete_entries(
    bx: BitrixControl, rest: httpx.Client, receiver: Receiver
) -> None:
    mine = section(bx)
    base = {"type": "user", "ownerId": 1}
    bad = call(rest, "calendar.event.add", **base, section=mine, **{"from": "2025-05-05"})
    assert bad.status_code == 400
    assert bad.json()["error_description"] == (
        'The required parameter "name" for the method "calendar.event.add" is not set'
    )
    entry_id = result(
        rest,
        "calendar.event.add",
        **base,
        section=mine,
        name="Series",
        **{"from": "2025-05-05 09:00:00", "to": "2025-05-05 10:00:00"},
        timezone_from="Europe/Berlin",
        rrule={"FREQ": "DAILY", "COUNT": 3},
        remind=[{"type": "min", "count": 15}],
    )
    entry = result(rest, "calendar.event.getbyid", id=entry_id)
    assert (entry["DATE_FROM"], entry["TZ_FROM"]) == ("05/05/2025 09:00:00 am", "Europe/Berlin")
    assert entry["REMIND"] == [{"type": "min", "count": 15}]

    partial = result(
        rest,
        "calendar.event.update",
        id=entry_id,
        **base,
        name="Only this one",
        recurrence_mode="this",
        current_date_from="2025-05-06",
    )
    assert partial["id"] == entry_id
    assert result(rest, "calendar.event.getbyid", id=entry_id)["EXDATE"] == "05/06/2025"
    assert result(rest, "calendar.event.getbyid", id=partial["recEventId"])["NAME"] == (
        "Only this one"
    )
    assert result(rest, "calendar.event.delete", id=entry_id) is True
    assert call(rest, "calendar.event.delete").json()["error_description"] == (
        "Event id not specified"
    )
    assert delivered(bx, receiver) == [
        ("ONCALENDARENTRYADD", str(entry_id)),
        ("ONCALENDARENTRYUPDATE", str(entry_id)),
        ("ONCALENDARENTRYADD", str(partial["recEventId"])),
        ("ONCALENDARENTRYDELETE", str(entry_id)),
        ("ONCALENDARENTRYDELETE", str(partial["recEventId"])),
    ]


def test_a_meeting_books_its_room(bx: BitrixControl, rest: httpx.Client) -> None:
    room = str(bx.add_room(MEMBER, "Blue room")["ID"])
    meeting = bx.add_entry(
        MEMBER, section(bx), "Review", "2025-04-01T10:00:00Z", "2025-04-01T11:00:00Z",
        room=room, attendees=[2],
    )  # fmt: skip
    prefix, room_id, booking_id = meeting["LOCATION"].split("_")
    assert (prefix, room_id) == ("calendar", room)
    booking = result(rest, "calendar.event.getbyid", id=booking_id)
    assert (booking["CAL_TYPE"], booking["SECTION_ID"], booking["OWNER_ID"]) == (
        "location",
        room,
        "0",
    )
    assert meeting["IS_MEETING"] is True
    assert [a["id"] for a in meeting["ATTENDEE_LIST"]] == [1, 2]
    assert booking["DATE_FROM_TS_UTC"] == meeting["DATE_FROM_TS_UTC"]
