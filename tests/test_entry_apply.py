"""Entry apply against an in-memory Google passed in through the `EventGateway` protocol, with a
real database and a real lease: the calls each action makes, the events Google is left with, the
entry mapping rows, and the one-line outcome."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy
from sqlmodel import Session, select

from bridge.entries import Entry, parse_entry
from bridge.entry_apply import SeriesNotMirrored, apply_entries_batch, apply_entry
from bridge.entry_mappings import entry_mappings, mapped_entry, occurrence_days
from bridge.entry_outcome import EntryOutcome, EventStep, EventStepKind
from bridge.entry_plan import EntryAction, EntryActionKind, EntryScope, SkipReason, plan_entry
from bridge.event_body import google_event_id, instance_day, instance_id
from bridge.google_calendar import (
    GoogleError,
    GoogleNotFound,
    GoogleQuotaExceeded,
    GoogleRequestRejected,
    GoogleUnavailable,
)
from bridge.google_events import BatchResult, EventCall, EventExists, EventGone
from bridge.lease import Lease, claim_portal
from bridge.models import EntryMapping, EntryState
from bridge.queue import TryLater
from tests.entry_samples import all_day, rrule, timed
from tests.test_entry_plan import NOW

SCOPE = EntryScope(portal_key="acme", now=NOW, calendars={"4": "cal-a", "8": "cal-b"})
EVENT_ID = google_event_id("acme", "100")
SERIES_EVENT = google_event_id("acme", "500")
INSTANCE = f"{SERIES_EVENT}_20250113T080000Z"  # Monday 13 January, 09:00 in Berlin
_CLIENT_ID = re.compile(r"[0-9a-v]{5,1024}")


def not_found() -> GoogleNotFound:
    return GoogleNotFound("Google 404 notFound: Not Found", 404, "notFound")


class FakeEvents:
    """The events of a few calendars in memory, as NOTES §13 describes Google's: client ids
    unique per calendar (deleted ones included: 409), a deleted event kept as cancelled (a put
    brings it back, a second delete is 410), moves, and instance ids `<series>_<start>` that a
    put turns into an override and a delete cancels."""

    def __init__(self, calendars: Sequence[str] = ("cal-a", "cal-b")) -> None:
        self.events: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in calendars}
        self.calls: list[tuple[str, str, str]] = []
        self.batches: list[list[tuple[str, str, str]]] = []
        self.lose_next_insert = False  # the insert takes effect, the answer is lost
        self.fail: dict[tuple[str, str], GoogleError] = {}  # (method, event id) → its next error

    # --- the EventGateway protocol ---

    def insert_event(self, calendar_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._run(EventCall("insert", calendar_id, str(body.get("id", "")), body))

    def update_event(
        self, calendar_id: str, event_id: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._run(EventCall("update", calendar_id, event_id, body))

    def get_event(self, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        found = self._calendar(calendar_id).get(event_id)
        return dict(found) if found is not None else None

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with suppress(GoogleNotFound):  # as GoogleEventGateway: already deleted or gone is done
            self._run(EventCall("delete", calendar_id, event_id))

    def move_event(self, calendar_id: str, event_id: str, destination: str) -> dict[str, Any]:
        return self._run(EventCall("move", calendar_id, event_id, destination=destination))

    def list_events(
        self, calendar_id: str, private: Mapping[str, str], *, show_deleted: bool = False
    ) -> Iterator[dict[str, Any]]:
        for event in self._calendar(calendar_id).values():
            props = event.get("extendedProperties", {}).get("private", {})
            wanted = all(props.get(key) == value for key, value in private.items())
            if wanted and (show_deleted or event["status"] != "cancelled"):
                yield dict(event)

    def run_batch(self, calls: Sequence[EventCall]) -> list[BatchResult]:
        self.batches.append([(c.method, c.calendar_id, self._event_id(c)) for c in calls])
        results: list[BatchResult] = []
        for call in calls:
            try:
                results.append(self._run(call))
            except GoogleError as error:
                results.append(error)
        return results

    # --- what Google does ---

    @staticmethod
    def _event_id(call: EventCall) -> str:
        return call.event_id or str((call.body or {}).get("id", ""))

    def _run(self, call: EventCall) -> dict[str, Any]:
        event_id = self._event_id(call)
        self.calls.append((call.method, call.calendar_id, event_id))
        if (call.method, event_id) in self.fail:
            raise self.fail.pop((call.method, event_id))
        body = dict(call.body or {})
        match call.method:
            case "insert":
                return self._insert(call.calendar_id, body)
            case "update":
                return self._update(call.calendar_id, event_id, body)
            case "delete":
                self._delete(call.calendar_id, event_id)
                return {}
            case "move":
                return self._move(call.calendar_id, event_id, call.destination)
        raise AssertionError(call.method)

    def _calendar(self, calendar_id: str) -> dict[str, dict[str, Any]]:
        if calendar_id not in self.events:
            raise not_found()
        return self.events[calendar_id]

    def _insert(self, calendar_id: str, body: dict[str, Any]) -> dict[str, Any]:
        events = self._calendar(calendar_id)
        event_id = body.get("id", "")
        if not _CLIENT_ID.fullmatch(event_id):  # an instance id is no client id
            raise GoogleRequestRejected("Google 400 invalid: Invalid resource id", 400, "invalid")
        if event_id in events:
            raise EventExists("Google 409 duplicate: already exists", 409, "duplicate")
        events[event_id] = {**body, "status": "confirmed"}
        if self.lose_next_insert:
            self.lose_next_insert = False
            raise GoogleUnavailable("Google did not answer: TimeoutError")
        return dict(events[event_id])

    def _update(self, calendar_id: str, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        events = self._calendar(calendar_id)
        series_id, underscore, _ = event_id.partition("_")
        if underscore:
            series = events.get(series_id)
            if series is None or series["status"] == "cancelled" or not series.get("recurrence"):
                raise not_found()
            events[event_id] = {**body, "id": event_id, "recurringEventId": series_id}
        elif event_id not in events:
            raise not_found()
        else:
            events[event_id] = {**body, "id": event_id}
        events[event_id]["status"] = body.get("status", "confirmed")
        return dict(events[event_id])

    def _delete(self, calendar_id: str, event_id: str) -> None:
        events = self._calendar(calendar_id)
        series_id, underscore, _ = event_id.partition("_")
        if underscore and event_id not in events:  # an unchanged occurrence: cancel it
            series = events.get(series_id)
            if series is None or series["status"] == "cancelled":
                raise not_found()
            events[event_id] = {"id": event_id, "recurringEventId": series_id}
        elif event_id not in events:
            raise not_found()
        elif events[event_id]["status"] == "cancelled":
            raise EventGone("Google 410 deleted: Resource has been deleted", 410, "deleted")
        for each in [events[event_id], *self._overrides(events, event_id)]:
            each["status"] = "cancelled"

    def _move(self, calendar_id: str, event_id: str, destination: str) -> dict[str, Any]:
        source, target = self._calendar(calendar_id), self._calendar(destination)
        event = source.get(event_id)
        if event is None or event["status"] == "cancelled":
            raise not_found()
        if "recurringEventId" in event:
            raise GoogleRequestRejected("Google 400: cannot move an instance", 400, "invalid")
        if event_id in target:
            raise EventExists("Google 409 duplicate: already exists", 409, "duplicate")
        for moving in [event, *self._overrides(source, event_id)]:
            target[moving["id"]] = source.pop(moving["id"])
        return dict(event)

    @staticmethod
    def _overrides(events: dict[str, dict[str, Any]], series_id: str) -> list[dict[str, Any]]:
        return [e for e in events.values() if e.get("recurringEventId") == series_id]

    # --- for the assertions ---

    def where(self, event_id: str) -> dict[str, str]:
        """calendar → status of every copy of the event."""
        return {
            calendar: events[event_id]["status"]
            for calendar, events in self.events.items()
            if event_id in events
        }


@pytest.fixture
def lease(engine: sqlalchemy.Engine) -> Lease:
    claimed = claim_portal(engine, "acme", "test", timedelta(minutes=5))
    assert claimed is not None
    return claimed


def meeting(version: str = "1", **fields: Any) -> Entry:
    return parse_entry(timed("2025-01-20 10:00", entry_id="100", VERSION=version, **fields))


SERIES = parse_entry(timed("2025-01-06 09:00", entry_id="500", RRULE=rrule("WEEKLY", days=("MO",))))


def occurrence(**fields: Any) -> Entry:
    raw = timed(
        "2025-01-14 11:00",
        entry_id="600",
        RECURRENCE_ID="500",
        RELATIONS={"COMMENT_XML_ID": "EVENT_500_01/13/2025"},
    )
    return parse_entry({**raw, **fields})


def plan(lease: Lease, entry_id: str, entry: Entry | None, series: Entry | None = None) -> Any:
    """Plan the entry as the sync step will: its mapping row and a series' overridden days."""
    rows = entry_mappings(lease, "acme", [entry_id])
    mapping = mapped_entry(rows[entry_id]) if entry_id in rows else None
    overridden = occurrence_days(lease, "acme", entry) if entry and entry.is_series else ()
    return plan_entry(SCOPE, entry_id, entry, mapping, series=series, overridden=overridden)


def mirror(
    lease: Lease, google: FakeEvents, entry_id: str, entry: Entry | None, **kw: Any
) -> EntryOutcome:
    action: EntryAction = plan(lease, entry_id, entry, **kw)
    return apply_entry(lease, google, action, entry.version if entry else None)


def rows(lease: Lease) -> list[tuple[str, str, str, str, str, str | None]]:
    """(entry, section, calendar, event, state, version) of every row."""
    with Session(lease.engine) as session:
        found = session.exec(select(EntryMapping).order_by(EntryMapping.entry_id)).all()
        return [
            (r.entry_id, r.section_id, r.google_calendar_id, r.google_event_id, r.state, r.version)
            for r in found
        ]


def applied(lease: Lease, entry_id: str) -> str | None:
    return entry_mappings(lease, "acme", [entry_id])[entry_id].applied


def body_of(entry: Entry, **kw: Any) -> dict[str, Any]:
    action = plan_entry(SCOPE, entry.id, entry, None, **kw)
    assert action.body is not None
    return action.body.to_api()


def steps(*pairs: tuple[EventStepKind, str]) -> tuple[EventStep, ...]:
    return tuple(EventStep(kind, calendar) for kind, calendar in pairs)


# --- one entry ------------------------------------------------------------------------------------


def test_a_new_entry_is_inserted_and_mapped(lease: Lease) -> None:
    google = FakeEvents()
    outcome = mirror(lease, google, "100", meeting())
    assert outcome.kind == EntryActionKind.CREATE
    assert outcome.steps == steps((EventStepKind.INSERTED, "cal-a"))
    assert str(outcome) == f"entry 100, event {EVENT_ID}: inserted in cal-a"
    assert google.calls == [("insert", "cal-a", EVENT_ID)]
    assert google.where(EVENT_ID) == {"cal-a": "confirmed"}
    assert google.events["cal-a"][EVENT_ID]["summary"] == "Planning"
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "active", "1")]
    assert applied(lease, "100") == plan_entry(SCOPE, "100", meeting(), None).body.fingerprint()

    again = mirror(lease, google, "100", meeting())
    assert (again.kind, again.reason, again.steps) == (
        EntryActionKind.SKIP,
        SkipReason.UNCHANGED,
        (),
    )
    assert str(again) == "entry 100: skipped (unchanged)"
    assert len(google.calls) == 1


def test_an_insert_whose_answer_was_lost_is_put_not_repeated(lease: Lease) -> None:
    google = FakeEvents()
    google.lose_next_insert = True
    with pytest.raises(GoogleUnavailable):
        mirror(lease, google, "100", meeting())
    assert rows(lease) == []  # nothing recorded before Google confirmed

    outcome = mirror(lease, google, "100", meeting(NAME="Planning, final"))
    assert outcome.steps == steps(
        (EventStepKind.EXISTED, "cal-a"), (EventStepKind.UPDATED, "cal-a")
    )
    assert str(outcome) == f"entry 100, event {EVENT_ID}: already in cal-a; updated in cal-a"
    assert google.calls == [
        ("insert", "cal-a", EVENT_ID),
        ("insert", "cal-a", EVENT_ID),
        ("update", "cal-a", EVENT_ID),
    ]
    assert google.where(EVENT_ID) == {"cal-a": "confirmed"}  # one event, the second version
    assert google.events["cal-a"][EVENT_ID]["summary"] == "Planning, final"
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "active", "1")]


def test_a_deleted_entry_back_again_revives_its_cancelled_event(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())
    deleted = mirror(lease, google, "100", None)
    assert (deleted.kind, deleted.steps) == (
        EntryActionKind.DELETE,
        steps((EventStepKind.DELETED, "cal-a")),
    )
    assert google.where(EVENT_ID) == {"cal-a": "cancelled"}
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "closed", "1")]
    assert applied(lease, "100") is None

    revived = mirror(lease, google, "100", meeting("3"))
    assert (revived.kind, revived.steps) == (
        EntryActionKind.REVIVE,
        steps((EventStepKind.UPDATED, "cal-a")),
    )
    assert google.calls[-1] == ("update", "cal-a", EVENT_ID)
    assert google.where(EVENT_ID) == {"cal-a": "confirmed"}
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "active", "3")]


def test_a_revive_that_finds_nothing_inserts(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())
    mirror(lease, google, "100", None)
    del google.events["cal-a"][EVENT_ID]  # purged for good
    revived = mirror(lease, google, "100", meeting("3"))
    assert revived.steps == steps(
        (EventStepKind.MISSING, "cal-a"), (EventStepKind.INSERTED, "cal-a")
    )
    assert google.where(EVENT_ID) == {"cal-a": "confirmed"}
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "active", "3")]


def test_a_changed_entry_is_put(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())
    before = applied(lease, "100")
    outcome = mirror(lease, google, "100", meeting("2", NAME="Planning (moved)"))
    assert (outcome.kind, outcome.steps) == (
        EntryActionKind.UPDATE,
        steps((EventStepKind.UPDATED, "cal-a")),
    )
    assert google.calls[-1] == ("update", "cal-a", EVENT_ID)
    assert google.events["cal-a"][EVENT_ID]["summary"] == "Planning (moved)"
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "active", "2")]
    assert applied(lease, "100") not in (None, before)


def test_an_update_of_an_event_deleted_by_hand_puts_it_back(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())
    google.delete_event("cal-a", EVENT_ID)  # by hand: Google keeps it, cancelled
    outcome = mirror(lease, google, "100", meeting("2", NAME="Planning (moved)"))
    assert outcome.steps == steps((EventStepKind.UPDATED, "cal-a"))
    assert google.where(EVENT_ID) == {"cal-a": "confirmed"}


def test_an_update_of_an_event_that_is_gone_inserts_it(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())
    del google.events["cal-a"][EVENT_ID]
    outcome = mirror(lease, google, "100", meeting("2", NAME="Planning (moved)"))
    assert outcome.steps == steps(
        (EventStepKind.MISSING, "cal-a"), (EventStepKind.INSERTED, "cal-a")
    )
    assert str(outcome).endswith(": gone from cal-a; inserted in cal-a")
    assert google.where(EVENT_ID) == {"cal-a": "confirmed"}
    assert google.events["cal-a"][EVENT_ID]["summary"] == "Planning (moved)"
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "active", "2")]


def test_a_moved_entry_moves_its_event(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())
    outcome = mirror(lease, google, "100", meeting(SECTION_ID="8"))  # the same version: no put
    assert outcome.kind == EntryActionKind.MOVE
    assert outcome.steps == (EventStep(EventStepKind.MOVED, "cal-b", "cal-a"),)
    assert str(outcome) == f"entry 100, event {EVENT_ID}: moved from cal-a to cal-b"
    assert google.calls[-1] == ("move", "cal-a", EVENT_ID)  # the body did not change: no put
    assert google.where(EVENT_ID) == {"cal-b": "confirmed"}
    assert rows(lease) == [("100", "8", "cal-b", EVENT_ID, "active", "1")]

    renamed = mirror(lease, google, "100", meeting("3", SECTION_ID="4", NAME="Back"))
    assert renamed.steps == (
        EventStep(EventStepKind.MOVED, "cal-a", "cal-b"),
        EventStep(EventStepKind.UPDATED, "cal-a"),
    )
    assert google.events["cal-a"][EVENT_ID]["summary"] == "Back"
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "active", "3")]


def test_a_move_whose_source_lost_the_event_creates_it_in_the_destination(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())
    del google.events["cal-a"][EVENT_ID]
    outcome = mirror(lease, google, "100", meeting("2", SECTION_ID="8"))
    assert outcome.steps == steps(
        (EventStepKind.NOT_IN_SOURCE, "cal-a"), (EventStepKind.INSERTED, "cal-b")
    )
    assert google.where(EVENT_ID) == {"cal-b": "confirmed"}
    assert rows(lease) == [("100", "8", "cal-b", EVENT_ID, "active", "2")]


def test_a_move_into_a_calendar_holding_a_cancelled_copy_leaves_one_live_event(
    lease: Lease,
) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())
    google.events["cal-b"][EVENT_ID] = {"id": EVENT_ID, "status": "cancelled"}  # an old stay
    outcome = mirror(lease, google, "100", meeting("2", SECTION_ID="8"))
    assert outcome.steps == steps(
        (EventStepKind.EXISTED, "cal-b"),
        (EventStepKind.DELETED, "cal-a"),
        (EventStepKind.UPDATED, "cal-b"),
    )
    assert google.where(EVENT_ID) == {"cal-a": "cancelled", "cal-b": "confirmed"}
    assert rows(lease) == [("100", "8", "cal-b", EVENT_ID, "active", "2")]


def test_deleting_twice_is_done_twice(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())
    delete = plan(lease, "100", None)
    first = apply_entry(lease, google, delete, None)
    second = apply_entry(lease, google, delete, None)  # a duplicate delivery: Google says 410
    assert first.steps == second.steps == steps((EventStepKind.DELETED, "cal-a"))
    assert str(second) == f"entry 100, event {EVENT_ID}: deleted from cal-a"
    assert google.where(EVENT_ID) == {"cal-a": "cancelled"}
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "closed", "1")]
    assert mirror(lease, google, "100", None).reason == SkipReason.GONE


def test_quota_and_transient_errors_propagate_and_record_nothing(lease: Lease) -> None:
    google = FakeEvents()
    google.fail["insert", EVENT_ID] = GoogleQuotaExceeded("Google 403 quotaExceeded", 403)
    with pytest.raises(GoogleQuotaExceeded):
        mirror(lease, google, "100", meeting())
    assert rows(lease) == [] and google.where(EVENT_ID) == {}

    mirror(lease, google, "100", meeting())
    google.fail["update", EVENT_ID] = GoogleUnavailable("Google 503 backendError", 503)
    with pytest.raises(GoogleUnavailable):
        mirror(lease, google, "100", meeting("2", NAME="Changed"))
    assert rows(lease) == [("100", "4", "cal-a", EVENT_ID, "active", "1")]


def test_a_duplicate_then_not_found_ends_the_action_with_that_error(lease: Lease) -> None:
    google = FakeEvents()
    google.events["cal-a"][EVENT_ID] = {**body_of(meeting()), "status": "confirmed"}
    google.fail["update", EVENT_ID] = not_found()  # Google contradicts itself: no third try
    with pytest.raises(GoogleNotFound):
        mirror(lease, google, "100", meeting())
    assert google.calls == [("insert", "cal-a", EVENT_ID), ("update", "cal-a", EVENT_ID)]
    assert rows(lease) == []


def test_an_action_without_its_section_is_refused_before_any_call(lease: Lease) -> None:
    google = FakeEvents()
    action = plan(lease, "100", meeting())
    broken = EntryAction(action.kind, "100", "cal-a", None, action.event_id, action.body)
    with pytest.raises(ValueError, match="section_id"):
        apply_entry(lease, google, broken, "1")
    assert google.calls == []


# --- edited occurrences ---------------------------------------------------------------------------


def test_an_edited_occurrence_is_put_on_its_instance_id(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "500", SERIES)
    outcome = mirror(lease, google, "600", occurrence(), series=SERIES)
    assert (outcome.kind, outcome.event_id) == (EntryActionKind.CREATE, INSTANCE)
    assert outcome.steps == steps((EventStepKind.UPDATED, "cal-a"))
    assert google.calls[-1] == ("update", "cal-a", INSTANCE)  # never an insert
    override = google.events["cal-a"][INSTANCE]
    assert (override["status"], override["recurringEventId"]) == ("confirmed", SERIES_EVENT)
    assert override["originalStartTime"] == {
        "dateTime": "2025-01-13T09:00:00+01:00",
        "timeZone": "Europe/Berlin",
    }
    assert rows(lease) == [
        ("500", "4", "cal-a", SERIES_EVENT, "active", "1"),
        ("600", "4", "cal-a", INSTANCE, "active", "1"),
    ]
    assert occurrence_days(lease, "acme", SERIES) == {date(2025, 1, 13)}

    changed = mirror(lease, google, "600", occurrence(NAME="Later", VERSION="2"), series=SERIES)
    assert (changed.kind, changed.steps) == (
        EntryActionKind.UPDATE,
        steps((EventStepKind.UPDATED, "cal-a")),
    )
    assert google.events["cal-a"][INSTANCE]["summary"] == "Later"


def test_an_edited_occurrence_before_its_series_waits_for_it(lease: Lease) -> None:
    google = FakeEvents()
    with pytest.raises(SeriesNotMirrored, match=SERIES_EVENT) as raised:
        mirror(lease, google, "600", occurrence(), series=SERIES)
    assert isinstance(raised.value, TryLater)  # the queue retries it
    assert google.calls == [("update", "cal-a", INSTANCE)]
    assert rows(lease) == []

    mirror(lease, google, "500", SERIES)
    assert mirror(lease, google, "600", occurrence(), series=SERIES).kind == EntryActionKind.CREATE
    assert [r[0] for r in rows(lease)] == ["500", "600"]


def test_a_deleted_edited_occurrence_cancels_its_instance(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "500", SERIES)
    mirror(lease, google, "600", occurrence(), series=SERIES)
    outcome = mirror(lease, google, "600", None, series=SERIES)
    assert (outcome.kind, outcome.steps) == (
        EntryActionKind.DELETE,
        steps((EventStepKind.DELETED, "cal-a")),
    )
    assert google.calls[-1] == ("delete", "cal-a", INSTANCE)
    assert google.where(INSTANCE) == {"cal-a": "cancelled"}
    assert google.where(SERIES_EVENT) == {"cal-a": "confirmed"}
    assert rows(lease)[1] == ("600", "4", "cal-a", INSTANCE, "closed", "1")
    assert occurrence_days(lease, "acme", SERIES) == frozenset()


def test_a_moved_series_takes_its_override_and_the_override_is_put_there(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "500", SERIES)
    mirror(lease, google, "600", occurrence(), series=SERIES)
    moved_series = parse_entry(
        timed(
            "2025-01-06 09:00", entry_id="500", section_id="8", RRULE=rrule("WEEKLY", days=("MO",))
        )
    )
    mirror(lease, google, "500", moved_series)
    assert google.where(INSTANCE) == {"cal-b": "confirmed"}  # it went with the series
    outcome = mirror(lease, google, "600", occurrence(), series=moved_series)
    assert (outcome.kind, outcome.steps) == (
        EntryActionKind.MOVE,
        steps((EventStepKind.UPDATED, "cal-b")),  # a put on the instance: never events.move
    )
    assert rows(lease)[1] == ("600", "8", "cal-b", INSTANCE, "active", "1")


def test_occurrence_days_decode_instance_ids_in_the_series_zone(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "500", SERIES)
    mirror(lease, google, "600", occurrence(), series=SERIES)
    others = (
        ("700", f"{SERIES_EVENT}0_20250120T080000Z", EntryState.ACTIVE),  # `_` is no wildcard
        ("701", f"{SERIES_EVENT}_20250127T080000Z", EntryState.CLOSED),  # cancelled again
        ("702", f"{google_event_id('other', '500')}_20250203T080000Z", EntryState.ACTIVE),
    )
    with Session(lease.engine) as session:
        for entry_id, event_id, state in others:
            session.add(
                EntryMapping(
                    portal_key="acme",
                    entry_id=entry_id,
                    section_id="4",
                    google_calendar_id="cal-a",
                    google_event_id=event_id,
                    state=state,
                )
            )
        session.commit()
    assert occurrence_days(lease, "acme", SERIES) == {date(2025, 1, 13)}
    with Session(lease.engine) as session:
        assert occurrence_days(session, "acme", SERIES) == {date(2025, 1, 13)}


@pytest.mark.parametrize(
    "series",
    [
        SERIES,
        parse_entry(
            timed("2025-03-24 21:30", zone="America/New_York", entry_id="9", RRULE=rrule("DAILY"))
        ),
        parse_entry(
            timed("2025-03-24 08:30", zone="Asia/Tokyo", entry_id="9", RRULE=rrule("DAILY"))
        ),
        parse_entry(all_day("2025-03-24", zone="America/Los_Angeles", RRULE=rrule("DAILY"))),
    ],
    ids=["berlin", "new-york-evening", "tokyo-morning", "all-day-west"],
)
def test_instance_day_inverts_instance_id_across_a_dst_change(series: Entry) -> None:
    for day in (date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 30), date(2025, 11, 2)):
        assert instance_day(instance_id("abcde", series, day), series) == day


def test_instance_day_of_what_is_no_instance_id() -> None:
    for event_id in (EVENT_ID, "abcde_", "abcde_2025011", "abcde_20251301", "abcde_2025T0100Z"):
        assert instance_day(event_id, SERIES) is None


# --- many at once ---------------------------------------------------------------------------------


def test_a_batch_applies_mixed_actions_in_two_rounds(lease: Lease) -> None:
    google = FakeEvents()
    mirror(lease, google, "100", meeting())  # to be updated, then found gone
    mirror(lease, google, "101", parse_entry(timed("2025-01-21 10:00", entry_id="101")))
    del google.events["cal-a"][EVENT_ID]
    google.calls.clear()
    lost = parse_entry(timed("2025-01-22 10:00", entry_id="102"))
    google.events["cal-a"][google_event_id("acme", "102")] = {
        **body_of(lost),
        "summary": "an earlier attempt",
    }
    fresh = parse_entry(timed("2025-01-23 10:00", entry_id="103", section_id="8"))
    failing = parse_entry(timed("2025-01-24 10:00", entry_id="104"))
    google.fail["insert", google_event_id("acme", "104")] = GoogleUnavailable("Google 503", 503)
    actions = [
        plan(lease, "100", meeting("2", NAME="Renamed")),  # update → gone → insert
        plan(lease, "101", None),  # delete
        plan(lease, "102", lost),  # insert → 409 → put
        plan(lease, "103", fresh),  # insert
        plan(lease, "104", failing),  # transient, still failing after the gateway's retries
        plan(lease, "600", occurrence(), series=SERIES),  # its series is not mirrored
        plan(lease, "105", None),  # skip: gone
    ]
    results = apply_entries_batch(lease, google, actions, {"100": "2", "102": "1", "103": "1"})

    assert google.batches == [
        [
            ("update", "cal-a", EVENT_ID),
            ("delete", "cal-a", google_event_id("acme", "101")),
            ("insert", "cal-a", google_event_id("acme", "102")),
            ("insert", "cal-b", google_event_id("acme", "103")),
            ("insert", "cal-a", google_event_id("acme", "104")),
            ("update", "cal-a", INSTANCE),
        ],
        [("insert", "cal-a", EVENT_ID), ("update", "cal-a", google_event_id("acme", "102"))],
    ]
    outcomes = [r for r in results if isinstance(r, EntryOutcome)]
    assert [(o.entry_id, o.steps) for o in outcomes] == [
        ("100", steps((EventStepKind.MISSING, "cal-a"), (EventStepKind.INSERTED, "cal-a"))),
        ("101", steps((EventStepKind.DELETED, "cal-a"))),
        ("102", steps((EventStepKind.EXISTED, "cal-a"), (EventStepKind.UPDATED, "cal-a"))),
        ("103", steps((EventStepKind.INSERTED, "cal-b"))),
        ("105", ()),
    ]
    assert isinstance(results[4], GoogleUnavailable)
    assert isinstance(results[5], SeriesNotMirrored)
    assert google.events["cal-a"][google_event_id("acme", "102")]["summary"] == "Planning"
    assert google.where(google_event_id("acme", "104")) == {}
    assert rows(lease) == [
        ("100", "4", "cal-a", EVENT_ID, "active", "2"),
        ("101", "4", "cal-a", google_event_id("acme", "101"), "closed", "1"),
        ("102", "4", "cal-a", google_event_id("acme", "102"), "active", "1"),
        ("103", "8", "cal-b", google_event_id("acme", "103"), "active", "1"),
    ]
    assert applied(lease, "102") == plan_entry(SCOPE, "102", lost, None).body.fingerprint()


def test_a_batch_of_nothing_but_skips_sends_nothing(lease: Lease) -> None:
    google = FakeEvents()
    results = apply_entries_batch(lease, google, [plan(lease, "100", None)], {})
    assert [str(r) for r in results] == ["entry 100: skipped (gone)"]
    assert google.batches == [] and rows(lease) == []
