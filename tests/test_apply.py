"""Apply against an in-memory Google passed in through the `CalendarGateway` protocol, with a real
database and a real lease: what each action does in Google, in the mapping table, and the
one-line outcome the logs and `bridge sync` show."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy
from sqlmodel import Session, func, select

from bridge import inbox, queue
from bridge.apply import apply_action
from bridge.calendar_state import Change
from bridge.calendars import CalendarListEntry, MappingState
from bridge.config import CreationPace, OnDelete, PortalConfig, ShareRule
from bridge.creation_pace import CreationPaced, reserve_creation
from bridge.events import parse_body, read_event
from bridge.google_calendar import GoogleNotFound, GoogleUnavailable
from bridge.lease import Lease, claim_portal, fenced
from bridge.mappings import mapped_calendar
from bridge.mirror import ActionKind, plan_section
from bridge.models import (
    CalendarCreation,
    CalendarMapping,
    CalendarRemoval,
    InboxEvent,
    InboxState,
)
from bridge.outcome import Outcome, Step, StepKind
from bridge.selection import Section
from tests.test_mirror import ACME, section

FORM = "application/x-www-form-urlencoded"
SECTION_ADDED = (
    b"event=ONCALENDARSECTIONADD&data%5Bid%5D=7&ts=1734608536&auth%5Bdomain%5D=acme.bitrix24.com"
    b"&auth%5Bmember_id%5D=m1&auth%5Bapplication_token%5D=t0ken123"
)


class FakeGoogle:
    """One owner's calendars, list entries and ACLs in memory."""

    def __init__(self) -> None:
        self.calendars: dict[str, dict[str, Any]] = {}
        self.listed: set[str] = set()
        self.acl: dict[str, dict[str, str]] = {}
        self.lose_next_insert = False  # the insert takes effect, the answer is lost
        self._ids = itertools.count(1)

    def insert_calendar(self, summary: str, description: str, time_zone: str) -> str:
        calendar_id = f"cal-{next(self._ids)}"
        self.calendars[calendar_id] = {
            "summary": summary,
            "description": description,
            "timeZone": time_zone,
            "backgroundColor": "",
            "foregroundColor": "",
            "hidden": False,
        }
        self.listed.add(calendar_id)
        self.acl[calendar_id] = {}
        if self.lose_next_insert:
            self.lose_next_insert = False
            raise GoogleUnavailable("Google did not answer: TimeoutError")
        return calendar_id

    def owned_calendars(self) -> Iterator[CalendarListEntry]:
        for calendar_id in sorted(self.listed):
            found = self.calendars[calendar_id]
            yield CalendarListEntry(
                calendar_id,
                found["summary"],
                found["description"],
                found["timeZone"],
                found["backgroundColor"],
                found["foregroundColor"],
                found["hidden"],
            )

    def calendar_exists(self, calendar_id: str) -> bool:
        return calendar_id in self.calendars

    def patch_calendar(self, calendar_id: str, fields: dict[str, Any]) -> None:
        self._found(calendar_id).update(fields)

    def patch_list_entry(self, calendar_id: str, fields: dict[str, Any]) -> None:
        if calendar_id not in self.listed:
            raise GoogleNotFound("Google 404 notFound: Not Found", 404, "notFound")
        self._found(calendar_id).update(fields)

    def add_to_list(self, calendar_id: str) -> None:
        self._found(calendar_id)
        self.listed.add(calendar_id)

    def delete_calendar(self, calendar_id: str) -> None:
        self.calendars.pop(calendar_id, None)
        self.listed.discard(calendar_id)

    def list_acl(self, calendar_id: str) -> dict[str, str]:
        self._found(calendar_id)
        return dict(self.acl[calendar_id])

    def insert_acl(self, calendar_id: str, rule_id: str, role: str, *, notify: bool) -> None:
        self._found(calendar_id)
        self.acl[calendar_id][rule_id] = role

    def delete_acl(self, calendar_id: str, rule_id: str) -> None:
        self.acl[calendar_id].pop(rule_id, None)

    def _found(self, calendar_id: str) -> dict[str, Any]:
        if calendar_id not in self.calendars:
            raise GoogleNotFound("Google 404 notFound: Not Found", 404, "notFound")
        return self.calendars[calendar_id]


@pytest.fixture
def lease(engine: sqlalchemy.Engine) -> Lease:
    claimed = claim_portal(engine, "acme", "test", timedelta(minutes=5))
    assert claimed is not None
    return claimed


def with_policy(on_delete: OnDelete) -> PortalConfig:
    return ACME.model_copy(
        update={"mirror": ACME.mirror.model_copy(update={"on_delete": on_delete})}
    )


def row(lease: Lease, section_id: str = "7") -> CalendarMapping | None:
    with Session(lease.engine) as session:
        return session.exec(
            select(CalendarMapping).where(CalendarMapping.section_id == section_id)
        ).first()


def sync(
    lease: Lease,
    google: FakeGoogle,
    found: Section | None,
    portal: PortalConfig = ACME,
    read_google: bool = False,
) -> Outcome | None:
    """Plan section 7 the way the worker (or, reading Google, a reconciliation) does; apply it."""
    mapping = row(lease)
    listed = {entry.id: entry for entry in google.owned_calendars()} if read_google else None
    known = mapped_calendar(mapping) if mapping else None
    action = plan_section(portal, "7", found, known, listed)
    if action is None:
        return None
    observed = listed.get(action.calendar_id or "") if listed else None
    return apply_action(lease, portal, action, google, observed)


def removals(lease: Lease) -> int:
    with Session(lease.engine) as session:
        return int(session.exec(select(func.count()).select_from(CalendarRemoval)).one())


def test_a_new_section_gets_one_calendar_and_an_active_mapping(lease: Lease) -> None:
    google = FakeGoogle()

    outcome = sync(lease, google, section("7"))

    assert outcome is not None and str(outcome) == "created calendar cal-1"
    assert (outcome.kind, outcome.calendar_id) == (ActionKind.CREATE, "cal-1")
    assert [step.kind for step in outcome.steps] == [StepKind.CREATED, StepKind.UP_TO_DATE]
    mapping = row(lease)
    assert mapping is not None
    assert (mapping.state, mapping.google_calendar_id) == (MappingState.ACTIVE, "cal-1")
    assert google.calendars["cal-1"]["summary"] == "Room 7"
    assert sync(lease, google, section("7")) is None  # nothing left to do


def test_colour_and_sharing_are_set_after_the_insert(lease: Lease) -> None:
    google = FakeGoogle()
    rule = ShareRule(scope="group", value="team@acme.com", role="reader")
    shared = ACME.model_copy(update={"mirror": ACME.mirror.model_copy(update={"share": [rule]})})

    outcome = sync(lease, google, replace(section("7"), color="#AA0000"), shared)

    assert str(outcome) == "created calendar cal-1, then set its colour, sharing"
    assert google.calendars["cal-1"]["backgroundColor"] == "#aa0000"
    assert google.acl["cal-1"] == {"group:team@acme.com": "reader"}


def test_an_insert_whose_answer_was_lost_is_adopted_not_repeated(lease: Lease) -> None:
    google = FakeGoogle()
    google.lose_next_insert = True

    outcome = sync(lease, google, section("7"))

    assert str(outcome) == "adopted calendar cal-1"
    assert list(google.calendars) == ["cal-1"]
    mapping = row(lease)
    assert mapping is not None and mapping.google_calendar_id == "cal-1"


def test_an_unfinished_create_adopts_its_calendar_and_deletes_twins(lease: Lease) -> None:
    google = FakeGoogle()
    google.lose_next_insert = True
    with pytest.raises(GoogleUnavailable):  # the adoption's read fails too: the action fails
        broken = FakeGoogle()
        broken.lose_next_insert = True
        broken.owned_calendars = lambda: iter(())  # type: ignore[method-assign]
        sync(lease, broken, section("7"))
    mapping = row(lease)
    assert mapping is not None and mapping.state == MappingState.CREATING
    for twin in ("first", "second"):  # two earlier attempts both made one
        google.calendars[twin] = {**broken.calendars["cal-1"]}
        google.listed.add(twin)
        google.acl[twin] = {}

    outcome = sync(lease, google, section("7"))

    assert str(outcome) == "adopted calendar first and removed 1 duplicate(s)"
    assert sorted(google.calendars) == ["first"]


def test_a_created_calendar_and_its_inbox_rows_cost_two_transactions(lease: Lease) -> None:
    """The mapping (state `creating`) with the creation's reservation before the insert; the
    calendar's id, what was applied (colour and sharing included) and the rows after it."""
    google = FakeGoogle()
    rule = ShareRule(scope="group", value="team@acme.com", role="reader")
    shared = ACME.model_copy(update={"mirror": ACME.mirror.model_copy(update={"share": [rule]})})
    delivery = inbox.record_event(
        lease.engine, "acme", read_event(parse_body(SECTION_ADDED, FORM))
    ).id
    action = plan_section(shared, "7", replace(section("7"), color="#AA0000"), None)
    assert action is not None
    commits: list[int] = []
    sqlalchemy.event.listen(lease.engine, "commit", lambda _: commits.append(1))

    def settle(session: Session, outcome: Outcome) -> None:
        queue.finish(lease, [delivery], InboxState.DONE, str(outcome), session)

    outcome = apply_action(lease, shared, action, google, settle=settle)

    assert len(commits) == 2
    assert list(google.calendars) == ["cal-1"]
    with Session(lease.engine) as session:
        done = session.get(InboxEvent, delivery)
        assert done is not None
        assert (done.state, done.outcome) == (InboxState.DONE, str(outcome))
    mapping = row(lease)
    assert mapping is not None
    assert (mapping.state, mapping.google_calendar_id) == (MappingState.ACTIVE, "cal-1")
    assert sync(lease, google, replace(section("7"), color="#AA0000"), shared) is None
    with Session(lease.engine) as session:
        assert session.exec(select(func.count()).select_from(CalendarCreation)).one() == 1


def test_a_step_failing_after_the_insert_keeps_the_calendar_it_made(lease: Lease) -> None:
    google = FakeGoogle()
    patch_list_entry = google.patch_list_entry

    def unavailable(calendar_id: str, fields: dict[str, Any]) -> None:
        raise GoogleUnavailable("Google did not answer: TimeoutError")

    google.patch_list_entry = unavailable  # type: ignore[method-assign]
    with pytest.raises(GoogleUnavailable):
        sync(lease, google, replace(section("7"), color="#AA0000"))
    mapping = row(lease)
    assert mapping is not None and mapping.google_calendar_id == "cal-1"
    google.patch_list_entry = patch_list_entry  # type: ignore[method-assign]

    outcome = sync(lease, google, replace(section("7"), color="#AA0000"))

    assert str(outcome) == "updated calendar cal-1: colour"
    assert list(google.calendars) == ["cal-1"]
    assert google.calendars["cal-1"]["backgroundColor"] == "#aa0000"


def test_a_creation_over_the_pace_writes_nothing_and_makes_nothing(lease: Lease) -> None:
    google = FakeGoogle()
    paced = ACME.model_copy(
        update={
            "google": ACME.google.model_copy(update={"creation_pace": CreationPace(calendars=1)})
        }
    )
    sync(lease, google, section("7"), paced)
    action = plan_section(paced, "8", section("8"), None)
    assert action is not None

    with pytest.raises(CreationPaced):
        apply_action(lease, paced, action, google)

    assert row(lease, "8") is None
    assert list(google.calendars) == ["cal-1"]


def test_creations_reserved_at_once_never_exceed_the_pace(lease: Lease) -> None:
    """Six side-by-side reservations (as a sync's threads or other workers make them) against
    room for two: two are made, four wait for the pace."""
    start = threading.Barrier(6)
    made: list[bool] = []

    def reserve() -> None:
        start.wait()
        try:
            with fenced(lease) as session:
                reserve_creation(session, "owner@acme.com", 2, timedelta(minutes=5))
            made.append(True)
        except CreationPaced:
            made.append(False)

    threads = [threading.Thread(target=reserve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(made) == [False] * 4 + [True] * 2
    with Session(lease.engine) as session:
        assert session.exec(select(func.count()).select_from(CalendarCreation)).one() == 2


def test_a_changed_section_updates_only_what_changed(lease: Lease) -> None:
    google = FakeGoogle()
    sync(lease, google, section("7"))

    outcome = sync(lease, google, replace(section("7"), name="Room 7b"))

    assert str(outcome) == "updated calendar cal-1: summary"
    assert outcome is not None and outcome.steps == (
        Step(StepKind.UPDATED, "cal-1", (Change.SUMMARY,)),
    )
    assert google.calendars["cal-1"]["summary"] == "Room 7b"


def test_a_calendar_deleted_in_google_is_replaced_on_the_next_update(lease: Lease) -> None:
    google = FakeGoogle()
    sync(lease, google, section("7"))
    first = row(lease)
    google.delete_calendar("cal-1")

    outcome = sync(lease, google, replace(section("7"), color="#00AA00"))

    assert (
        str(outcome)
        == "calendar cal-1 was deleted in Google; created calendar cal-2, then set its colour"
    )
    mapping = row(lease)
    assert first is not None and mapping is not None
    assert (mapping.state, mapping.google_calendar_id) == (MappingState.ACTIVE, "cal-2")
    assert mapping.nonce != first.nonce


def test_a_calendar_gone_only_from_the_list_is_listed_again(lease: Lease) -> None:
    google = FakeGoogle()
    sync(lease, google, section("7"))
    google.listed.discard("cal-1")

    outcome = sync(lease, google, section("7"), read_google=True)

    assert outcome is not None and outcome.kind == ActionKind.RECREATE
    assert (
        str(outcome)
        == "re-listed calendar cal-1; updated calendar cal-1: summary, description, time_zone"
    )
    assert google.listed == {"cal-1"} and list(google.calendars) == ["cal-1"]


def test_a_reconciliation_repairs_what_was_changed_in_google(lease: Lease) -> None:
    google = FakeGoogle()
    sync(lease, google, section("7"))
    google.calendars["cal-1"]["summary"] = "Renamed by hand"

    assert sync(lease, google, section("7")) is None  # the event path trusts what it applied
    outcome = sync(lease, google, section("7"), read_google=True)

    assert str(outcome) == "updated calendar cal-1: summary"
    assert google.calendars["cal-1"]["summary"] == "Room 7"


@pytest.mark.parametrize(
    ("on_delete", "sentence", "left_in_google", "removed"),
    [
        (OnDelete.DELETE, "deleted calendar cal-1", [], 1),
        (OnDelete.ARCHIVE, "archived calendar cal-1", ["cal-1"], 1),
        (OnDelete.KEEP, "kept calendar cal-1, unmapped", ["cal-1"], 0),
    ],
)
def test_a_gone_section_is_retired_by_the_policy(
    lease: Lease, on_delete: OnDelete, sentence: str, left_in_google: list[str], removed: int
) -> None:
    google = FakeGoogle()
    portal = with_policy(on_delete)
    sync(lease, google, section("7"), portal)

    outcome = sync(lease, google, None, portal)

    assert outcome is not None and str(outcome) == sentence
    assert outcome.kind == ActionKind.RETIRE
    assert list(google.calendars) == left_in_google
    assert removals(lease) == removed
    mapping = row(lease)
    if on_delete == OnDelete.ARCHIVE:
        assert mapping is not None and mapping.state == MappingState.ARCHIVED
        assert google.calendars["cal-1"]["summary"] == "[archived] Room 7"
        assert google.calendars["cal-1"]["hidden"] is True
        assert sync(lease, google, None, portal) is None
    else:
        assert mapping is None


def test_archiving_a_calendar_already_gone_forgets_its_mapping(lease: Lease) -> None:
    google = FakeGoogle()
    portal = with_policy(OnDelete.ARCHIVE)
    sync(lease, google, section("7"), portal)
    google.delete_calendar("cal-1")

    outcome = sync(lease, google, None, portal)

    assert str(outcome) == "kept calendar cal-1, unmapped"
    assert row(lease) is None and removals(lease) == 0


def test_an_unfinished_mapping_of_a_gone_section_is_forgotten(lease: Lease) -> None:
    google = FakeGoogle()
    broken = FakeGoogle()
    broken.lose_next_insert = True
    broken.owned_calendars = lambda: iter(())  # type: ignore[method-assign]
    with pytest.raises(GoogleUnavailable):
        sync(lease, broken, section("7"))

    outcome = sync(lease, google, None)

    assert str(outcome) == "forgot an unfinished mapping"
    assert row(lease) is None and removals(lease) == 0


def test_an_archived_calendar_comes_back_with_its_section(lease: Lease) -> None:
    google = FakeGoogle()
    portal = with_policy(OnDelete.ARCHIVE)
    sync(lease, google, section("7"), portal)
    sync(lease, google, None, portal)

    outcome = sync(lease, google, section("7"), portal)

    assert str(outcome) == "updated calendar cal-1: summary, hidden"
    mapping = row(lease)
    assert mapping is not None and mapping.state == MappingState.ACTIVE
    assert google.calendars["cal-1"]["summary"] == "Room 7"


def test_an_outcome_renders_its_steps_as_one_line() -> None:
    created = Step(StepKind.CREATED, "new")
    cases = [
        ((created, Step(StepKind.UP_TO_DATE, "new")), "created calendar new"),
        (
            (
                Step(StepKind.ADOPTED, "a", duplicates=2),
                Step(StepKind.UPDATED, "a", (Change.SHARING,)),
            ),
            "adopted calendar a and removed 2 duplicate(s), then set its sharing",
        ),
        (
            (
                created,
                Step(StepKind.REPLACED, "new"),
                Step(StepKind.CREATED, "newer"),
                Step(StepKind.UP_TO_DATE, "newer"),
            ),
            "created calendar new; calendar new was deleted in Google; created calendar newer",
        ),
        ((Step(StepKind.UPDATED, "a"),), "updated calendar a: unarchived"),
    ]
    for steps, sentence in cases:
        assert str(Outcome(ActionKind.CREATE, "x", steps)) == sentence
