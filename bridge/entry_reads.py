"""Reading calendar entries from Bitrix24, batched.

`calendar.event.getbyid` takes one id, so the event path sends many of them in one `batch`
request (50 commands each). Reconciliation lists a window with `calendar.event.get`, one command
per (type, owner) with that owner's mirrored sections in `section[]`; a recurring series comes
back once per occurrence in the window (the same `ID`), so rows are de-duplicated by id here.
Rows are raw dicts: `bridge.entries` parses them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bridge.bitrix import BitrixAccessDenied, BitrixBadRequest, BitrixClient, BitrixError
from bridge.bitrix_batch import batch_command, batch_rows

BATCH = 50


class EntryListingFailed(Exception):
    """A listing of a mirrored owner's entries failed: nothing may be judged missing from it."""

    def __init__(self, error: BitrixError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class EntryReads:
    """What `read_entries` found: rows by id, ids that are gone, ids Bitrix24 would not show."""

    found: dict[str, dict[str, Any]] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    refused: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OwnerSections:
    """The mirrored sections of one (type, owner): the unit of a `calendar.event.get`."""

    type: str
    owner_id: str
    section_ids: tuple[str, ...]


def read_entries(client: BitrixClient, ids: Sequence[str]) -> EntryReads:
    """Each entry by id. An answer without a row, or a "not found" refusal, means the entry is
    gone (deleted entries are invisible); other refusals (no access) are kept apart, so an entry
    the bridge may not see is never taken for a deleted one. Transient failures raise."""
    reads = EntryReads()
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), BATCH):
        chunk = unique[start : start + BATCH]
        answer = client.batch(
            {
                f"e{i}": batch_command("calendar.event.getbyid", {"id": entry_id})
                for i, entry_id in enumerate(chunk)
            }
        )
        for i, entry_id in enumerate(chunk):
            error = answer.errors.get(f"e{i}")
            if error is not None:
                _refused(reads, entry_id, error)
                continue
            row = answer.results.get(f"e{i}")
            if isinstance(row, dict) and str(row.get("ID", "")) == entry_id:
                if str(row.get("DELETED", "N")).upper() == "Y":
                    reads.gone.add(entry_id)
                else:
                    reads.found[entry_id] = row
            else:
                reads.gone.add(entry_id)
    return reads


def list_entries(
    client: BitrixClient, owners: Iterable[OwnerSections], first_day: date, last_day: date
) -> Iterator[dict[str, Any]]:
    """Every entry of these sections with an occurrence in [first_day, last_day], once each,
    streamed one batch request (50 owners) at a time."""
    seen: set[str] = set()
    pending = list(owners)
    for start in range(0, len(pending), BATCH):
        chunk = pending[start : start + BATCH]
        answer = client.batch(
            {
                f"o{i}": batch_command(
                    "calendar.event.get",
                    {
                        "type": owner.type,
                        "ownerId": owner.owner_id,
                        "from": first_day.isoformat(),
                        "to": last_day.isoformat(),
                        "section": list(owner.section_ids),
                    },
                )
                for i, owner in enumerate(chunk)
            }
        )
        if answer.errors:
            raise EntryListingFailed(next(iter(answer.errors.values())))
        for i, owner in enumerate(chunk):
            wanted = set(owner.section_ids)
            for row in batch_rows(answer.results.get(f"o{i}")):
                entry_id = str(row.get("ID", ""))
                if entry_id and entry_id not in seen and str(row.get("SECTION_ID")) in wanted:
                    seen.add(entry_id)
                    yield row


def _refused(reads: EntryReads, entry_id: str, error: BitrixError) -> None:
    if isinstance(error, BitrixBadRequest) and "not found" in error.description.lower():
        reads.gone.add(entry_id)
    elif isinstance(error, BitrixBadRequest | BitrixAccessDenied):
        reads.refused[entry_id] = str(error)
    else:
        raise error


def room_names(client: BitrixClient) -> dict[str, str]:
    """Meeting room (a `location` section) id → name: a booked room's `LOCATION` names only its
    id (`calendar_<room>[_<booking>]`)."""
    answer = client.call("calendar.section.get", {"type": "location", "ownerId": 0})
    return {
        str(row.get("ID")): str(row.get("NAME") or "")
        for row in batch_rows(answer.get("result"))
        if row.get("ID")
    }


def user_names(client: BitrixClient, user_ids: Sequence[str]) -> dict[str, str]:
    """User id → display name (for `attendees: names`), 50 `user.get` lookups per batch."""
    names: dict[str, str] = {}
    ids = list(dict.fromkeys(user_ids))
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        answer = client.batch(
            {f"u{i}": batch_command("user.get", {"ID": user_id}) for i, user_id in enumerate(chunk)}
        )
        for i, user_id in enumerate(chunk):
            for row in batch_rows(answer.results.get(f"u{i}")):
                full = " ".join(
                    str(row.get(key) or "").strip() for key in ("NAME", "LAST_NAME")
                ).strip()
                if full:
                    names[user_id] = full
    return names
