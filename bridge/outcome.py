"""What one applied action did: its steps in order, rendered as the one line the logs, the inbox
and `bridge sync` show. Plain values, written by `apply.py`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bridge.calendar_state import Change
from bridge.mirror import ActionKind


class StepKind(StrEnum):
    CREATED = "created"
    ADOPTED = "adopted"  # found by its marker (an earlier attempt made it), twins deleted
    RELISTED = "relisted"  # gone from the owner's list only: put back
    REPLACED = "replaced"  # deleted in Google: the mapping starts over with a fresh nonce
    UPDATED = "updated"
    UP_TO_DATE = "up_to_date"
    ARCHIVED = "archived"
    DELETED = "deleted"
    UNMAPPED = "unmapped"  # kept in Google, no longer mapped
    FORGOTTEN = "forgotten"  # an unfinished mapping without a calendar, dropped


# Steps made by a Google write (ADOPTED writes only when it deletes twins).
_WRITES = frozenset(
    {StepKind.CREATED, StepKind.RELISTED, StepKind.UPDATED, StepKind.ARCHIVED, StepKind.DELETED}
)


@dataclass(frozen=True)
class Step:
    kind: StepKind
    calendar_id: str | None = None
    changes: tuple[Change, ...] = ()
    duplicates: int = 0  # ADOPTED: twins deleted

    def __str__(self) -> str:
        calendar = f"calendar {self.calendar_id}"
        match self.kind:
            case StepKind.CREATED:
                return f"created {calendar}"
            case StepKind.ADOPTED:
                removed = f" and removed {self.duplicates} duplicate(s)" if self.duplicates else ""
                return f"adopted {calendar}{removed}"
            case StepKind.RELISTED:
                return f"re-listed {calendar}"
            case StepKind.REPLACED:
                return f"{calendar} was deleted in Google"
            case StepKind.UPDATED:
                return f"updated {calendar}: {self.changed}"
            case StepKind.UP_TO_DATE:
                return f"{calendar} is up to date"
            case StepKind.ARCHIVED:
                return f"archived {calendar}"
            case StepKind.DELETED:
                return f"deleted {calendar}"
            case StepKind.UNMAPPED:
                return f"kept {calendar}, unmapped"
            case StepKind.FORGOTTEN:
                return "forgot an unfinished mapping"

    @property
    def changed(self) -> str:
        return ", ".join(self.changes) or "unarchived"


@dataclass(frozen=True)
class Outcome:
    """What one action did in Google: its steps, in order, and the calendar it left mapped."""

    kind: ActionKind
    calendar_id: str | None
    steps: tuple[Step, ...]

    @property
    def wrote(self) -> bool:
        """Whether a Google write went through (which a read-only owner would have refused)."""
        return any(step.kind in _WRITES or step.duplicates for step in self.steps)

    def __str__(self) -> str:
        """One line: the steps joined by "; ", with the update that follows a creation told as
        "…, then set its colour, sharing" (insert takes no colour or sharing) or not at all."""
        parts: list[str] = []
        previous: Step | None = None
        for step in self.steps:
            created = previous is not None and previous.kind in (StepKind.CREATED, StepKind.ADOPTED)
            if created and step.kind == StepKind.UPDATED:
                parts[-1] += f", then set its {step.changed}"
            elif not (created and step.kind == StepKind.UP_TO_DATE):
                parts.append(str(step))
            previous = step
        return "; ".join(parts)
