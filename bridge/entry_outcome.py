"""What one applied entry action did: its Google calls' meaning in order, rendered as the one line
the logs, the inbox and `bridge sync` show. Plain values, written by `entry_apply.py`; the entry
counterpart of `outcome.py`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bridge.entry_plan import EntryActionKind, SkipReason


class EventStepKind(StrEnum):
    INSERTED = "inserted"
    EXISTED = "existed"  # 409 duplicate: the id is taken there (an earlier attempt, or deleted)
    UPDATED = "updated"  # put: also brings a cancelled event back
    MISSING = "missing"  # an update found no event (deleted by hand, or a replaced calendar)
    MOVED = "moved"
    NOT_IN_SOURCE = "not_in_source"  # a move found nothing to move in the source calendar
    DELETED = "deleted"  # or it was already deleted


@dataclass(frozen=True)
class EventStep:
    kind: EventStepKind
    calendar_id: str
    source: str | None = None  # MOVED: the calendar it left

    def __str__(self) -> str:
        calendar = self.calendar_id
        match self.kind:
            case EventStepKind.INSERTED:
                return f"inserted in {calendar}"
            case EventStepKind.EXISTED:
                return f"already in {calendar}"
            case EventStepKind.UPDATED:
                return f"updated in {calendar}"
            case EventStepKind.MISSING:
                return f"gone from {calendar}"
            case EventStepKind.MOVED:
                return f"moved from {self.source} to {calendar}"
            case EventStepKind.NOT_IN_SOURCE:
                return f"not found in {calendar}"
            case EventStepKind.DELETED:
                return f"deleted from {calendar}"


@dataclass(frozen=True)
class EntryOutcome:
    """What one entry action did in Google, and where it left the entry's event."""

    entry_id: str
    kind: EntryActionKind
    steps: tuple[EventStep, ...]
    calendar_id: str | None = None
    event_id: str | None = None
    reason: SkipReason | None = None  # SKIP

    def __str__(self) -> str:
        """One line, e.g. "entry 100, event 3kq…: already in cal-1; updated in cal-1"."""
        if self.kind == EntryActionKind.SKIP:
            return f"entry {self.entry_id}: skipped ({self.reason})"
        steps = "; ".join(str(step) for step in self.steps)
        return f"entry {self.entry_id}, event {self.event_id}: {steps}"
