"""What one sync step reports: per object how its inbox rows settle (`Settled`), and for the
whole step the actions, what was done or failed and why (`SyncReport`), which logs, the status
and `bridge sync` render. A reconciliation adds its entry actions and stray events
(`entry_reconcile.py`): listed by `describe` like the sections' actions, counted in the summary
when there are any."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlmodel import Session

from bridge.entry_plan import EntryAction, EntryActionKind
from bridge.event_drift import StrayEvent
from bridge.mirror import Action, ActionKind
from bridge.models import InboxState


@dataclass(frozen=True)
class Settled:
    """How one section of a `Sections` sync ended for its inbox rows: a final `state` with its
    `outcome`, or an `error` for the queue's retry policy, or neither (stopped before it)."""

    state: InboxState | None
    outcome: str = ""
    error: Exception | None = None
    action: Action | None = None
    duration_ms: float = 0.0


# Hears each object as it settles, with the transaction that records its work when there is one.
OnSettled = Callable[[str, Settled, Session | None], None]


@dataclass
class SyncReport:
    portal_key: str
    actions: list[Action] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: str | None = None  # why the mass-delete guard tripped
    held: list[Action] = field(default_factory=list)  # removals it held back
    kept: list[str] = field(default_factory=list)  # unconfirmed sections kept, with the reason
    read_only: str | None = None  # the owner is in Google's read-only mode (bridge.quota)
    waiting: int = 0  # actions left for after the owner's probe
    dry_run: bool = False
    read_error: Exception | None = None  # the selection could not be read: nothing was planned
    settled: dict[str, Settled] = field(default_factory=dict)  # per section (`Sections` only)
    # A reconciliation's entry actions as it streams them: counts by kind ("create", "update",
    # "delete", "move"; strays count as deletes) and, for a dry run, one line each.
    entry_counts: Counter[str] = field(default_factory=Counter)
    entry_lines: list[str] = field(default_factory=list)
    entry_backfill: bool = False  # the portal's first reconciliation with entries
    # Calendars inserted by this run: they hold no events yet, so their listing is skipped.
    inserted: set[str] = field(default_factory=set)
    on_settled: OnSettled | None = field(default=None, repr=False)

    def settle(self, section_id: str, settled: Settled, session: Session | None = None) -> None:
        """`session`: the transaction that records the section's work, for its rows to end in."""
        self.settled[section_id] = settled
        if self.on_settled is not None:
            self.on_settled(section_id, settled, session)

    def summary(self) -> str:
        counts = Counter(action.kind for action in self.actions)
        removing = sum(1 for action in self.actions if action.removes_calendar)
        parts = [
            f"{counts[ActionKind.CREATE] + counts[ActionKind.RECREATE]} to create",
            f"{counts[ActionKind.ADOPT]} to adopt",
            f"{counts[ActionKind.UPDATE]} to update",
            f"{removing} to delete or archive",
            f"{counts[ActionKind.RETIRE] - removing} to forget",
        ]
        head = f"{self.portal_key}: {', '.join(parts)}{self._entry_summary()}"
        if self.dry_run:
            guard = f"; the removals would be held back: {self.blocked}" if self.blocked else ""
            return f"{head} (dry run: nothing changed){guard}"
        head = f"{head}; {len(self.done)} done, {len(self.failed)} failed"
        if self.kept:
            head = f"{head}, {len(self.kept)} kept unconfirmed"
        if self.held:
            head = f"{head}; {len(self.held)} removal(s) held back: {self.blocked}"
        if self.read_only:
            head = f"{head}; {self.waiting} left, no Google writes: {self.read_only}"
        return head

    def _entry_summary(self) -> str:
        """ "; entries: …" counting the entry actions, or nothing when there are none."""
        counts = self.entry_counts
        if not sum(counts.values()):
            return ""
        parts = [f"{counts[kind]} to {kind}" for kind in ("create", "update", "delete", "move")]
        what = "entries (backfill)" if self.entry_backfill else "entries"
        return f"; {what}: {', '.join(parts)}"

    def planned(self, portal_key: str) -> list[str]:
        """One line per planned action: the sections', then the entries', then the strays'."""
        return [
            *(action.describe(portal_key) for action in self.actions),
            *self.entry_lines,
        ]

    def count_entries(self, actions: Iterable[EntryAction], strays: Iterable[StrayEvent]) -> None:
        """Count planned entry actions (and keep their lines on a dry run)."""
        for action in actions:
            self.entry_counts[_ENTRY_COUNT[action.kind]] += 1
            if self.dry_run:
                self.entry_lines.append(action.describe(self.portal_key))
        for stray in strays:
            self.entry_counts["delete"] += 1
            if self.dry_run:
                self.entry_lines.append(stray.describe(self.portal_key))

    def details(self, portal_key: str) -> list[str]:
        """One line per failure, held-back removal and unconfirmed section kept."""
        return [
            *self.failed,
            *(f"{a.describe(portal_key)}: held back by the mass-delete guard" for a in self.held),
            *self.kept,
        ]


_ENTRY_COUNT = {
    EntryActionKind.CREATE: "create",
    EntryActionKind.REVIVE: "create",
    EntryActionKind.UPDATE: "update",
    EntryActionKind.DELETE: "delete",
    EntryActionKind.MOVE: "move",
    EntryActionKind.SKIP: "skip",
}
