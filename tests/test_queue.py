"""The queue: the retry policy case by case, and every state change of a row on both databases."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bridge import inbox, queue
from bridge.bitrix import (
    BitrixAccessDenied,
    BitrixAuthFailed,
    BitrixBlocked,
    BitrixRateLimited,
    BitrixTimeBudgetExceeded,
    BitrixUnavailable,
)
from bridge.creation_pace import CreationPaced
from bridge.events import parse_body, read_event
from bridge.google_errors import (
    GoogleAuthFailed,
    GoogleQuotaExceeded,
    GoogleRateLimited,
    GoogleRequestRejected,
    GoogleUnavailable,
)
from bridge.lease import Lease, LeaseLost, claim_portal, fenced
from bridge.models import InboxEvent, InboxState
from bridge.queue import MAX_ATTEMPTS, Park, Retry, TryLater, Wait, decide
from bridge.quota import OwnerReadOnly

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=7)
MINUTE = timedelta(minutes=1)
EXPIRED = timedelta(seconds=-1)
BODY = (
    b"event=ONCALENDARSECTIONUPDATE&data%5Bid%5D=42&ts=1734608536"
    b"&auth%5Bdomain%5D=acme.bitrix24.com&auth%5Bmember_id%5D=m1&auth%5Bapplication_token%5D=t0ken123"
)


def budget_spent(reset_at: float | None) -> BitrixTimeBudgetExceeded:
    error = BitrixTimeBudgetExceeded("calendar.section.get", "OPERATION_TIME_LIMIT", "spent", 429)
    error.reset_at = reset_at
    return error


TRANSIENT = [
    GoogleUnavailable("503", 503),
    GoogleRateLimited("rate", 429),
    BitrixRateLimited("batch", "QUERY_LIMIT_EXCEEDED", "full", 503),
    BitrixUnavailable("batch", "", "timeout", 0),
    TryLater("install not verified yet"),
]
LASTING = [
    GoogleRequestRejected("bad request", 400),
    GoogleQuotaExceeded("quota", 403),
    GoogleAuthFailed("invalid_grant", 401),
    BitrixAuthFailed("batch", "expired_token", "expired", 401),
    BitrixAccessDenied("calendar.section.get", "ACCESS_DENIED", "denied", 403),
    BitrixBlocked("batch", "OVERLOAD_LIMIT", "blocked", 503),
    ValueError("a bug"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_a_transient_error_retries_with_a_growing_backoff(error: Exception) -> None:
    first, fifth = decide(error, 1, NOW), decide(error, 5, NOW)
    assert isinstance(first, Retry) and isinstance(fifth, Retry)
    assert timedelta(seconds=0.5) <= first.delay <= timedelta(seconds=2)
    assert timedelta(seconds=0.5) <= fifth.delay <= timedelta(seconds=32)


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: type(e).__name__)
def test_a_transient_error_parks_on_the_last_attempt(error: Exception) -> None:
    assert isinstance(decide(error, MAX_ATTEMPTS - 1, NOW), Retry)
    assert decide(error, MAX_ATTEMPTS, NOW) == Park(
        f"gave up after {MAX_ATTEMPTS} attempts: {error}"
    )


@pytest.mark.parametrize("error", LASTING, ids=lambda e: type(e).__name__)
def test_any_other_error_parks_at_once_with_its_reason(error: Exception) -> None:
    assert decide(error, 1, NOW) == Park(str(error))


def test_our_own_creation_pace_waits_for_its_date_without_counting() -> None:
    paced = CreationPaced("owner@example.com", LATER, 10, timedelta(hours=1))
    assert decide(paced, 1, NOW) == Wait(LATER)
    assert decide(paced, MAX_ATTEMPTS, NOW) == Wait(LATER)  # no attempt is spent on a wait


def test_a_read_only_owner_waits_for_its_probe_without_counting() -> None:
    assert decide(OwnerReadOnly("owner@example.com", LATER), MAX_ATTEMPTS, NOW) == Wait(LATER)


def test_a_spent_time_budget_waits_for_its_reset_or_a_minute_when_undated() -> None:
    dated = decide(budget_spent(NOW.timestamp() + 120), 1, NOW)
    undated = decide(budget_spent(None), MAX_ATTEMPTS, NOW)
    assert isinstance(dated, Wait)
    assert dated.until == NOW + timedelta(seconds=120)
    assert undated == Wait(NOW + timedelta(seconds=60))


def test_a_wait_already_due_still_waits_a_second() -> None:
    earlier = NOW - MINUTE
    assert decide(OwnerReadOnly("owner@example.com", earlier), 1, NOW) == Wait(NOW + queue.MIN_WAIT)


def delivery_row(engine: Engine) -> int:
    return inbox.record_event(
        engine, "acme", read_event(parse_body(BODY, "application/x-www-form-urlencoded"))
    ).id


def row(engine: Engine, row_id: int) -> InboxEvent:
    with Session(engine) as session:
        found = session.get(InboxEvent, row_id)
        assert found is not None
        return found


def test_rows_of_a_dead_worker_return_to_the_queue_when_its_lease_expires(engine: Engine) -> None:
    recorded = delivery_row(engine)
    dead = claim_portal(engine, "acme", "worker-a", EXPIRED)
    assert dead is not None
    queue.take_due(dead)

    heir = claim_portal(engine, "acme", "worker-b", MINUTE)
    assert heir is not None
    assert claim_portal(engine, "acme", "worker-c", MINUTE) is None
    queue.requeue_abandoned(heir)
    [again] = queue.take_due(heir)

    assert again.id == recorded
    assert heir.version == dead.version + 1


def test_a_worker_that_lost_its_lease_cannot_record_a_result(engine: Engine) -> None:
    recorded = delivery_row(engine)
    stale = claim_portal(engine, "acme", "worker-a", EXPIRED)
    assert stale is not None
    queue.take_due(stale)
    heir = claim_portal(engine, "acme", "worker-b", MINUTE)
    assert heir is not None
    queue.requeue_abandoned(heir)

    with pytest.raises(LeaseLost):
        queue.finish(stale, [recorded], InboxState.DONE, "stale result")
    with pytest.raises(LeaseLost):
        queue.reschedule(stale, [recorded], GoogleUnavailable("503", 503))
    with pytest.raises(LeaseLost):
        queue.requeue_abandoned(stale)
    with pytest.raises(LeaseLost):
        stale.renew()

    assert inbox.count_by_state(engine, "acme") == {"pending": 1}


def test_an_abandoned_row_with_a_newer_copy_waiting_yields_to_it(engine: Engine) -> None:
    recorded = delivery_row(engine)
    dead = claim_portal(engine, "acme", "worker-a", EXPIRED)
    assert dead is not None
    queue.take_due(dead)
    copy = delivery_row(engine)

    heir = claim_portal(engine, "acme", "worker-b", MINUTE)
    assert heir is not None
    queue.requeue_abandoned(heir)

    assert inbox.count_by_state(engine, "acme") == {"done": 1, "pending": 1}
    [due] = queue.take_due(heir)
    assert due.id == copy != recorded


def test_a_transient_failure_backs_off_and_the_last_attempt_parks(engine: Engine) -> None:
    recorded = delivery_row(engine)
    lease = claim_portal(engine, "acme", "worker-a", MINUTE)
    assert lease is not None
    queue.take_due(lease)
    before = row(engine, recorded).next_attempt_at
    assert queue.reschedule(lease, [recorded], GoogleUnavailable("Google 500", 500)) == 0
    backing_off = row(engine, recorded)
    assert (backing_off.state, backing_off.attempts) == (InboxState.PENDING, 1)
    assert backing_off.next_attempt_at > before and backing_off.outcome == "Google 500"

    for attempt in range(2, MAX_ATTEMPTS):
        assert queue.reschedule(lease, [recorded], TryLater(f"try {attempt}")) == 0
    assert queue.reschedule(lease, [recorded], TryLater("the last")) == 1

    parked = row(engine, recorded)
    assert parked.state == InboxState.PARKED and parked.attempts == MAX_ATTEMPTS
    assert parked.outcome == f"gave up after {MAX_ATTEMPTS} attempts: the last"
    assert queue.replay_parked(engine, "acme") == 1
    [replayed] = queue.take_due(lease)
    assert replayed.attempts == 0 and "replayed" in (replayed.outcome or "")


def test_a_wait_counts_no_attempt_and_a_lasting_error_parks_at_once(engine: Engine) -> None:
    recorded = delivery_row(engine)
    lease = claim_portal(engine, "acme", "worker-a", MINUTE)
    assert lease is not None
    queue.take_due(lease)
    probe_at = datetime.now(UTC) + timedelta(hours=1)

    assert queue.reschedule(lease, [recorded], OwnerReadOnly("owner", probe_at)) == 0
    waiting = row(engine, recorded)
    assert (waiting.state, waiting.attempts) == (InboxState.PENDING, 0)
    assert waiting.next_attempt_at == probe_at
    assert queue.take_due(lease) == []  # not due before the probe

    assert queue.reschedule(lease, [recorded], GoogleRequestRejected("bad colour", 400)) == 1
    parked = row(engine, recorded)
    assert (parked.state, parked.attempts, parked.outcome) == (
        InboxState.PARKED,
        0,
        "bad colour",
    )


def test_a_row_put_back_is_due_again_untouched(engine: Engine) -> None:
    recorded = delivery_row(engine)
    lease = claim_portal(engine, "acme", "worker-a", MINUTE)
    assert lease is not None
    queue.take_due(lease)
    queue.put_back(lease, [recorded])
    [again] = queue.take_due(lease)
    assert (again.id, again.attempts, again.outcome) == (recorded, 0, None)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_holders_writes_go_side_by_side_and_a_takeover_waits_for_them(engine: Engine) -> None:
    """On PostgreSQL the fence is a shared lock: two fenced sessions of the holder commit while
    each other is open, and another worker's takeover waits for them, then fences them out."""
    holder = claim_portal(engine, "acme", "worker-a", EXPIRED)
    assert holder is not None
    with ThreadPoolExecutor(2) as pool:
        with fenced(holder):
            side_by_side = pool.submit(lambda: _fenced_commit(holder))
            assert side_by_side.result(timeout=10) is None
            takeover = pool.submit(claim_portal, engine, "acme", "worker-b", MINUTE)
            time.sleep(0.5)
            assert not takeover.done()
        heir = takeover.result(timeout=10)

    assert heir is not None and heir.holder == "worker-b"
    with pytest.raises(LeaseLost):
        _fenced_commit(holder)


def _fenced_commit(lease: Lease) -> None:
    with fenced(lease):
        pass
