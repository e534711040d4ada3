"""Entry burst: many entries made at once in Bitrix24, and what mirroring them costs upstream.

`--burst-sections` company sections are mirrored first (one `bridge sync`); then `--entry-burst`
entries are made through the Bitrix24 emulator's control API, `--entry-burst-concurrency` at a
time, each delivering its ONCALENDARENTRYADD to `python -m bridge serve` from the emulator's
delivery queue (one after another, as Bitrix24's queue server does), while `python -m bridge
worker` runs. Bitrix24 is at its real leaky bucket (50, then 2/s); Google's pace is raised (see
`RAISED_GOOGLE`). Counted from the emulators' request logs once every entry is mirrored and the
inbox is empty: Bitrix24 HTTP requests and 503s, and Google event writes per entry (batched
calls counted one by one). The issue's target is 40 Bitrix24 requests for 1,000 entries; other
sizes are held to the same share.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections import Counter

from bench.harness import (
    ACTIVE_ENTRIES,
    add_database_argument,
    add_entries,
    call_name,
    count_rows,
    entry_body,
    event_entry,
    google_event_writes,
    mirrored_sections_ready,
)
from bench.progress import Progress
from bench.report import Figure, Goal, say
from bridge.harness import wait_for

NAME = "entry-burst"
BITRIX_REQUESTS_PER_1000 = 40
WAITING = "SELECT count(*) FROM inbox_event WHERE state IN ('pending', 'working')"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--entry-burst", type=int, default=1000, help="entries in the burst (default 1000)"
    )
    parser.add_argument(
        "--entry-burst-concurrency",
        type=int,
        default=8,
        help="control-API connections making the entries (default 8)",
    )
    parser.add_argument(
        "--burst-sections",
        type=int,
        default=10,
        help="mirrored sections the entries are spread over (default 10)",
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> list[Figure]:
    with mirrored_sections_ready(args.database, NAME, args.burst_sections, "Burst") as ready:
        emulators, portal, url, sections = (
            ready.emulators,
            ready.portal,
            ready.database_url,
            ready.section_ids,
        )
        bodies = [
            entry_body(sections[i % len(sections)], i, "Burst") for i in range(args.entry_burst)
        ]
        started = time.monotonic()
        entry_ids = asyncio.run(
            add_entries(
                emulators,
                portal,
                bodies,
                f"{NAME} entries",
                deliver=True,
                concurrency=args.entry_burst_concurrency,
            )
        )
        made_s = time.monotonic() - started
        progress = Progress(f"{NAME} events", len(entry_ids))

        def settled() -> bool:
            progress.update(count_rows(url, ACTIVE_ENTRIES))
            return progress.done >= len(entry_ids) and count_rows(url, WAITING) == 0

        wait_for(settled, 900, "the burst to be mirrored", every=0.25)
        progress.close()
        wall = time.monotonic() - started
        deliveries = emulators.bitrix.flush_deliveries(timeout=60)
        bitrix = emulators.bitrix.requests(portal.member_id)
        google = emulators.google.requests()

    delivered = sum(1 for d in deliveries if d["event"] == "ONCALENDARENTRYADD" and d["ok"])
    refused = sum(1 for r in bitrix if r["status"] == 503)
    limit = math.ceil(BITRIX_REQUESTS_PER_1000 * len(entry_ids) / 1000)
    writes = google_event_writes([r for r in google if r.get("user") == portal.subject])
    per_entry = Counter(event_entry(r) for r in writes)
    calls = Counter(call_name(r) for r in writes)
    shown = ", ".join(f"{name} {n}" for name, n in calls.most_common())
    batches = sum(1 for r in google if r["path"].startswith("/batch/"))
    alone = sum(1 for r in google if r.get("user") == portal.subject and not r.get("in_batch"))
    once = all(per_entry.get(e) == 1 for e in entry_ids) and len(writes) == len(entry_ids)
    say(f"  {NAME}: Bitrix24 {len(bitrix)} requests, {refused} 503; Google writes {dict(calls)}")
    return [
        Figure(
            NAME,
            f"burst of {len(entry_ids)} entries made / delivered ({args.database})",
            f"{len(entry_ids)} in {made_s:.1f} s / {delivered} acknowledged",
        ),
        Figure(
            NAME,
            "Bitrix24 HTTP requests",
            str(len(bitrix)),
            f"<= {limit} ({BITRIX_REQUESTS_PER_1000} per 1,000 entries)",
            number=len(bitrix),
            goal=Goal(limit),
        ),
        Figure(NAME, "Bitrix24 503s received", str(refused), "0", number=refused, goal=Goal(0)),
        Figure(
            NAME,
            "Google event writes per entry",
            f"{len(writes) / max(len(entry_ids), 1):.2f} ({shown})",
            "1 (each entry written once)",
            once,
            number=len(writes) / max(len(entry_ids), 1),
        ),
        Figure(
            NAME,
            "Google HTTP requests: batches / calls alone",
            f"{batches} / {alone}",
        ),
        Figure(
            NAME,
            "entries mirrored / wall time (first change → all settled)",
            f"{sum(1 for e in per_entry if e is not None)} / {wall:.1f} s",
        ),
    ]
