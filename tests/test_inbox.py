"""The inbox writer on both databases: dedup while waiting, one delivery one row, bounded waits."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from bridge import inbox, queue
from bridge.events import BitrixEvent, parse_body, read_event
from bridge.lease import claim_portal
from bridge.models import InboxEvent, InboxState

BODY = (
    b"event=ONCALENDARSECTIONUPDATE&data%5Bid%5D=42&ts=1734608536"
    b"&auth%5Bdomain%5D=acme.bitrix24.com&auth%5Bmember_id%5D=m1&auth%5Bapplication_token%5D=t0ken123"
)
MINUTE = timedelta(minutes=1)


def delivery() -> BitrixEvent:
    return read_event(parse_body(BODY, "application/x-www-form-urlencoded"))


def test_a_waiting_copy_absorbs_re_deliveries_but_a_taken_one_does_not(engine: Engine) -> None:
    first = inbox.record_event(engine, "acme", delivery())
    again = inbox.record_event(engine, "acme", delivery())
    assert (first.duplicate, again.duplicate, again.id) == (False, True, first.id)
    lease = claim_portal(engine, "acme", "worker-a", MINUTE)
    assert lease is not None

    [taken] = queue.take_due(lease)
    later = inbox.record_event(engine, "acme", delivery())

    assert taken.id == first.id and taken.state == InboxState.WORKING
    assert later.duplicate is False and later.id != first.id


def test_a_copy_waiting_from_an_earlier_version_absorbs_a_re_delivery(engine: Engine) -> None:
    """The row as the version before one encoding served the payload and its key stored it."""
    earlier = InboxEvent(
        portal_key="acme",
        event="ONCALENDARSECTIONUPDATE",
        section_id="42",
        dedup_key="a79de5034a112ad5d169917f876938e7db4a9e60fef81b1b79c55c821ec39b0e",
        payload='{"auth": {"domain": "acme.bitrix24.com", "member_id": "m1"}, '
        '"data": {"id": "42"}, "event": "ONCALENDARSECTIONUPDATE", "ts": "1734608536"}',
    )
    with Session(engine) as session:
        session.add(earlier)
        session.commit()
        session.refresh(earlier)
    writer = inbox.InboxWriter(engine)

    async def record() -> inbox.Recorded:
        return await writer.record("acme", delivery())

    again = asyncio.run(record())
    writer.close()

    assert again == inbox.Recorded(id=earlier.id, duplicate=True)
    assert inbox.count_by_state(engine, "acme") == {"pending": 1}


def test_copies_within_a_group_collapse_like_copies_across_groups(engine: Engine) -> None:
    def numbered(n: int, event: str = "ONCALENDARSECTIONUPDATE") -> BitrixEvent:
        return replace(delivery(), event=event, payload={**delivery().payload, "n": n})

    waiting = inbox.record_event(engine, "acme", numbered(0))
    writer = inbox.InboxWriter(engine)
    other = "ONCALENDARSOMETHINGELSE"
    # The first goes alone (it starts the writer); the rest share a group.
    group = [numbered(9), numbered(0), numbered(1), numbered(1), numbered(2, other)]
    group += [numbered(2, other), numbered(3)]

    async def record_all() -> list[inbox.Recorded]:
        return await asyncio.gather(*(writer.record("acme", event) for event in group))

    outcomes = asyncio.run(record_all())
    writer.close()

    assert outcomes[1] == inbox.Recorded(id=waiting.id, duplicate=True)
    first, second = outcomes[2:4]
    assert (first.duplicate, second.duplicate, second.id) == (False, True, first.id)
    ignored = outcomes[4:6]
    assert not any(o.duplicate for o in ignored) and ignored[0].id != ignored[1].id
    assert not outcomes[6].duplicate
    assert len({o.id for o in outcomes}) == 6
    assert inbox.count_by_state(engine, "acme") == {"pending": 4, "ignored": 2}


def test_a_delivery_the_database_refuses_fails_alone_in_its_group(engine: Engine) -> None:
    """Deliveries built past the parser's checks, as a parser gap would let through."""
    genuine = [
        replace(delivery(), payload={**delivery().payload, "n": n}, section_id=str(n))
        for n in range(1, 41)
    ]
    surrogate = replace(delivery(), payload={**delivery().payload, "n": "\ud800"})
    bad = [surrogate]
    if engine.dialect.name == "postgresql":  # SQLite stores both as they are
        bad.append(replace(delivery(), event="ON" + "X" * 100))
        bad.append(replace(delivery(), event="ONCALENDARSECTIONADD\x00"))
    writer = inbox.InboxWriter(engine)

    mixed = [*genuine[:20], *bad, *genuine[20:]]  # the first goes alone; the rest share

    async def record_all() -> list[inbox.Recorded | BaseException]:
        return await asyncio.gather(
            *(writer.record("acme", event) for event in mixed), return_exceptions=True
        )

    outcomes = asyncio.run(record_all())

    assert [type(o) for o in outcomes[20 : 20 + len(bad)]] == [inbox.UnstorableEvent] * len(bad)
    recorded = outcomes[:20] + outcomes[20 + len(bad) :]
    assert all(isinstance(o, inbox.Recorded) and not o.duplicate for o in recorded), recorded
    assert inbox.count_by_state(engine, "acme") == {"pending": 40}


def test_a_full_writer_queue_answers_store_unavailable_at_once(engine: Engine) -> None:
    writer = inbox.InboxWriter(engine, max_queue=1, store_timeout=1.0)
    events = [replace(delivery(), payload={**delivery().payload, "n": n}) for n in range(3)]

    async def queued(count: int) -> None:
        """Until `count` deliveries wait in the writer's queue (the queue has no public face)."""
        deadline = time.monotonic() + 5
        while writer._queue.qsize() != count:
            assert time.monotonic() < deadline, f"{count} queued deliveries"
            await asyncio.sleep(0.01)

    async def behind_a_lock() -> list[inbox.Recorded | BaseException]:
        first = asyncio.ensure_future(writer.record("acme", events[0]))
        await asyncio.sleep(0)  # it puts the first in the queue
        await queued(0)  # the writer took it and waits for the lock
        # Timing is part of the case: the second's own backstop (2 x store_timeout from its
        # request) must end after the writer's store timeout for it (which starts when the first's
        # ends), so that the writer, not the backstop, answers it and is done with it before the
        # lock is released. 0.3 s into the first's wait gives that a margin.
        await asyncio.sleep(0.3)
        second = asyncio.ensure_future(writer.record("acme", events[1]))
        await queued(1)  # queued behind the first: the queue is full
        try:
            await writer.record("acme", events[2])
        except inbox.StoreUnavailable as exc:
            third: inbox.Recorded | BaseException = exc
        return [*await asyncio.gather(first, second, return_exceptions=True), third]

    with engine.connect() as holder, holder.begin():  # SQLite: BEGIN IMMEDIATE
        if holder.dialect.name == "postgresql":
            holder.exec_driver_sql("LOCK TABLE inbox_event IN EXCLUSIVE MODE")
        outcomes = asyncio.run(behind_a_lock())

    assert [type(o) for o in outcomes] == [inbox.StoreUnavailable] * 3
    assert "queue is full" in str(outcomes[2])
    assert inbox.count_by_state(engine, "acme") == {}
