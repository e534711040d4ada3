"""Carry out planned entry actions against Google's events and record them in the entry mapping.

Guarantee: one Google event per (portal, entry), whatever answers were lost. The event id is
derived from the portal and the entry (`event_body.google_event_id`), so a retried insert meets
`409 duplicate` (`EventExists`) and puts the body instead: that also brings back an event that
was deleted, which Google keeps as a cancelled one under the same id. A mapping row is written
only after Google confirmed every call of the action (`entry_mappings.py`); a failure in between
leaves the row as it was, and the next plan does what is still missing.

Each action is a short chain of calls, each chosen by the answer to the one before
(`_first_call`, `_follow_up`):
- create: insert; already there → put.
- update, revive: put; not there (deleted by hand, or the calendar replaced) → insert; already
  there after all → put.
- move: events.move to the destination, then put when the body changed; not in the source →
  as create in the destination; already in the destination → delete the source's copy, put.
- delete: delete (already deleted or gone is done); an instance id cancels that occurrence.
- An edited occurrence (an instance id, `<series event>_<original start>`) is never inserted
  or moved: it is put on its instance id (its series carries it between calendars), and an
  instance Google does not know means the series' event is missing: `SeriesNotMirrored`, retried.

A chain ends: a put that finds nothing after a `409 duplicate` in the same chain ends it with that
error instead of inserting again, so the longest is four calls (move, put, insert, put).

`apply_entry` runs one action with the gateway's single calls; `apply_entries_batch` runs many
with the same chains, one batch request per round (the gateway splits them into batches of 50).
Transient Google errors and the quota propagate from `apply_entry` to the queue's retry policy;
`apply_entries_batch` returns them per entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bridge.entry_mappings import AppliedEvent, close_mappings, record_applied
from bridge.entry_outcome import EntryOutcome, EventStep, EventStepKind
from bridge.entry_plan import EntryAction, EntryActionKind
from bridge.google_calendar import GoogleError, GoogleNotFound
from bridge.google_events import BatchResult, EventCall, EventExists, EventGateway
from bridge.lease import Lease
from bridge.queue import TryLater


class SeriesNotMirrored(TryLater):
    """An edited occurrence's series has no event in the calendar (yet): retried after it."""


EntryFailure = GoogleError | SeriesNotMirrored


def apply_entry(
    lease: Lease, gateway: EventGateway, action: EntryAction, entry_version: str | None
) -> EntryOutcome:
    """Do what the action says in Google, then record it. `entry_version`: the entry's VERSION
    the body was made from, kept in the mapping."""
    _check(action)
    steps: list[EventStep] = []
    call = _first_call(action)
    while call is not None:
        call = _follow_up(action, call, _send(gateway, call), steps)
    _record(lease, [(action, entry_version)])
    return _outcome(action, steps)


def apply_entries_batch(
    lease: Lease,
    gateway: EventGateway,
    actions: Sequence[EntryAction],
    versions: Mapping[str, str | None],
) -> list[EntryOutcome | EntryFailure]:
    """Many actions (one per entry) at once: each round sends the next call of every unfinished
    action in one `run_batch`, so a run of inserts is one round plus a round of puts for those
    that already existed. Returns each action's outcome or the error that ended it, in order;
    the successes are recorded together at the end (give it a few hundred at a time)."""
    for action in actions:
        _check(action)
    runs = [_Run(action, _first_call(action)) for action in actions]
    pending = [run for run in runs if run.call is not None]
    while pending:
        calls = [run.call for run in pending if run.call is not None]
        for run, result in zip(pending, gateway.run_batch(calls), strict=True):
            assert run.call is not None
            try:
                run.call = _follow_up(run.action, run.call, result, run.steps)
            except (GoogleError, SeriesNotMirrored) as error:
                run.call, run.error = None, error
        pending = [run for run in pending if run.call is not None]
    done = [run for run in runs if run.error is None]
    _record(lease, [(run.action, versions.get(run.action.entry_id)) for run in done])
    return [run.error if run.error is not None else _outcome(run.action, run.steps) for run in runs]


@dataclass
class _Run:
    action: EntryAction
    call: EventCall | None
    steps: list[EventStep] = field(default_factory=list)
    error: EntryFailure | None = None


def _check(action: EntryAction) -> None:
    """Refuse an action that lacks what its calls and its mapping row need, before any call."""
    if action.kind == EntryActionKind.SKIP:
        return
    needs: dict[str, object] = {"calendar_id": action.calendar_id, "event_id": action.event_id}
    if action.kind != EntryActionKind.DELETE:
        needs |= {"section_id": action.section_id, "body": action.body}
    if action.kind == EntryActionKind.MOVE:
        needs["from_calendar"] = action.from_calendar
    missing = [name for name, value in needs.items() if value is None]
    if missing:
        raise ValueError(f"entry {action.entry_id}: a {action.kind} action without {missing}")


def _is_instance(action: EntryAction) -> bool:
    """An edited occurrence: base32hex event ids have no `_`, instance ids do."""
    return "_" in (action.event_id or "")


def _first_call(action: EntryAction) -> EventCall | None:
    match action.kind:
        case EntryActionKind.SKIP:
            return None
        case EntryActionKind.DELETE:
            assert action.calendar_id is not None and action.event_id is not None
            return EventCall("delete", action.calendar_id, action.event_id)
        case EntryActionKind.CREATE if not _is_instance(action):
            return _insert(action)
        case EntryActionKind.MOVE if not _is_instance(action):
            assert action.from_calendar is not None and action.calendar_id is not None
            return EventCall(
                "move", action.from_calendar, _event_id(action), destination=action.calendar_id
            )
        case _:  # update, revive, and every write of an edited occurrence
            return _put(action)


def _follow_up(
    action: EntryAction, call: EventCall, result: BatchResult, steps: list[EventStep]
) -> EventCall | None:
    """Note what `result` of `call` means in `steps`, and return the next call (None: done).
    Raises the error that ends the action."""
    match call.method:
        case "insert":
            if isinstance(result, EventExists):
                steps.append(EventStep(EventStepKind.EXISTED, call.calendar_id))
                return _put(action)
            _fail_on(result)
            steps.append(EventStep(EventStepKind.INSERTED, call.calendar_id))
            return None
        case "update":
            if isinstance(result, GoogleNotFound):
                if _is_instance(action):
                    raise SeriesNotMirrored(
                        f"entry {action.entry_id}: calendar {call.calendar_id} has no event "
                        f"{call.event_id.partition('_')[0]} to hold occurrence {call.event_id}"
                    ) from result
                if any(step.kind == EventStepKind.EXISTED for step in steps):
                    raise result  # a duplicate, then not found: nothing sure to do
                steps.append(EventStep(EventStepKind.MISSING, call.calendar_id))
                return _insert(action)
            _fail_on(result)
            steps.append(EventStep(EventStepKind.UPDATED, call.calendar_id))
            return None
        case "delete":
            if not isinstance(result, GoogleNotFound):  # 404 and 410: already gone
                _fail_on(result)
            steps.append(EventStep(EventStepKind.DELETED, call.calendar_id))
            return _put(action) if action.kind == EntryActionKind.MOVE else None
        case "move":
            if isinstance(result, GoogleNotFound):
                steps.append(EventStep(EventStepKind.NOT_IN_SOURCE, call.calendar_id))
                return _insert(action)
            if isinstance(result, EventExists):  # the destination holds a copy (maybe cancelled)
                steps.append(EventStep(EventStepKind.EXISTED, call.destination))
                return EventCall("delete", call.calendar_id, call.event_id)
            _fail_on(result)
            steps.append(EventStep(EventStepKind.MOVED, call.destination, call.calendar_id))
            return _put(action) if action.body_changed else None
    raise ValueError(f"no follow-up for events.{call.method}")


def _fail_on(result: BatchResult) -> None:
    if isinstance(result, Exception):
        raise result


def _insert(action: EntryAction) -> EventCall:
    assert action.calendar_id is not None and action.body is not None
    return EventCall("insert", action.calendar_id, body=action.body.to_api())


def _put(action: EntryAction) -> EventCall:
    assert action.calendar_id is not None and action.body is not None
    return EventCall("update", action.calendar_id, _event_id(action), action.body.to_api())


def _event_id(action: EntryAction) -> str:
    event_id = action.event_id or (action.body.event_id if action.body else None)
    assert event_id is not None
    return event_id


def _send(gateway: EventGateway, call: EventCall) -> BatchResult:
    """One call through the gateway's single methods, its error returned like `run_batch` does."""
    body = call.body or {}
    try:
        match call.method:
            case "insert":
                return gateway.insert_event(call.calendar_id, body)
            case "update":
                return gateway.update_event(call.calendar_id, call.event_id, body)
            case "delete":
                gateway.delete_event(call.calendar_id, call.event_id)
                return {}
            case "move":
                return gateway.move_event(call.calendar_id, call.event_id, call.destination)
    except GoogleError as error:
        return error
    raise ValueError(f"unknown events call {call.method!r}")


def _record(lease: Lease, done: Sequence[tuple[EntryAction, str | None]]) -> None:
    applied = []
    for action, version in done:
        if action.kind in (EntryActionKind.SKIP, EntryActionKind.DELETE):
            continue
        assert action.section_id and action.calendar_id and action.body is not None
        applied.append(
            AppliedEvent(
                entry_id=action.entry_id,
                section_id=action.section_id,
                calendar_id=action.calendar_id,
                event_id=_event_id(action),
                fingerprint=action.body.fingerprint(),
                version=version,
            )
        )
    record_applied(lease, *applied)
    closed = [action.entry_id for action, _ in done if action.kind == EntryActionKind.DELETE]
    close_mappings(lease, *closed)


def _outcome(action: EntryAction, steps: Sequence[EventStep]) -> EntryOutcome:
    return EntryOutcome(
        entry_id=action.entry_id,
        kind=action.kind,
        steps=tuple(steps),
        calendar_id=action.calendar_id,
        event_id=action.event_id,
        reason=action.reason,
    )
