"""The inbox on both databases: deduplication while waiting, lease take-over, and backoff."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from bridge import inbox
from bridge.events import BitrixEvent, parse_body, read_event
from bridge.models import InboxState

BODY = (
    b"event=ONCALENDARSECTIONUPDATE&data%5Bid%5D=42&ts=1734608536"
    b"&auth%5Bdomain%5D=acme.bitrix24.com&auth%5Bmember_id%5D=m1&auth%5Bapplication_token%5D=t0ken123"
)


def delivery() -> BitrixEvent:
    return read_event(parse_body(BODY, "application/x-www-form-urlencoded"))


def test_a_waiting_copy_absorbs_re_deliveries_but_a_taken_one_does_not(engine: Engine) -> None:
    first = inbox.record_event(engine, "acme", delivery())
    again = inbox.record_event(engine, "acme", delivery())
    assert (first.duplicate, again.duplicate, again.id) == (False, True, first.id)

    [taken] = inbox.take_due(engine, "acme")
    later = inbox.record_event(engine, "acme", delivery())

    assert taken.id == first.id and taken.state == InboxState.WORKING
    assert later.duplicate is False and later.id != first.id


def test_rows_of_a_dead_worker_return_to_the_queue_when_its_lease_expires(engine: Engine) -> None:
    recorded = inbox.record_event(engine, "acme", delivery())
    assert inbox.claim_portal(engine, "acme", "worker-a", timedelta(seconds=-1))  # dies at once
    inbox.take_due(engine, "acme")
    assert inbox.claim_portal(engine, "acme", "worker-b", timedelta(minutes=1))
    assert not inbox.claim_portal(engine, "acme", "worker-c", timedelta(minutes=1))

    [again] = inbox.take_due(engine, "acme")

    assert again.id == recorded.id


def test_an_abandoned_row_with_a_newer_copy_waiting_yields_to_it(engine: Engine) -> None:
    recorded = inbox.record_event(engine, "acme", delivery())
    assert inbox.claim_portal(engine, "acme", "worker-a", timedelta(seconds=-1))
    inbox.take_due(engine, "acme")
    copy = inbox.record_event(engine, "acme", delivery())

    assert inbox.claim_portal(engine, "acme", "worker-b", timedelta(minutes=1))

    assert inbox.count_by_state(engine, "acme") == {"done": 1, "pending": 1}
    [due] = inbox.take_due(engine, "acme")
    assert due.id == copy.id != recorded.id


def test_a_transient_failure_backs_off_and_the_last_attempt_parks(engine: Engine) -> None:
    recorded = inbox.record_event(engine, "acme", delivery())
    inbox.take_due(engine, "acme")
    inbox.retry_later(engine, [recorded.id], "Google 500", timedelta(hours=1))
    assert inbox.take_due(engine, "acme") == []  # not due for an hour

    for attempt in range(2, inbox.MAX_ATTEMPTS + 1):
        inbox.retry_later(engine, [recorded.id], f"try {attempt}", timedelta(0))

    assert inbox.count_by_state(engine, "acme") == {"parked": 1}
    assert inbox.take_due(engine, "acme") == []
