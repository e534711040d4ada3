"""API economy: a burst of ONCALENDARSECTIONADD events for one portal, and what it costs upstream.

`--burst` company-calendar sections exist in the Bitrix24 emulator (real leaky bucket: 50, then
2/s; the bridge's client at its default 50 and 2/s); their events are posted at once at
`--burst-concurrency` to `python -m bridge serve` while `python -m bridge worker` runs. Google's
creation pace and request pace are raised (see `RAISED_GOOGLE`), the emulator's limits are off.
Counted from the emulators' request logs: Bitrix24 HTTP requests and 503s, and Google requests
by call per created calendar. Wall time runs from the first post to the last calendar.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from bench.harness import (
    add_database_argument,
    call_name,
    company_sections_ready,
    count_rows,
    google_inserts,
)
from bench.load import run_load
from bench.progress import Progress
from bench.report import Figure, Goal, say
from bridge.harness import wait_for

NAME = "economy"
MAX_BITRIX_REQUESTS = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--burst", type=int, default=1000, help="events in the burst (default 1000)"
    )
    parser.add_argument(
        "--burst-concurrency",
        type=int,
        default=64,
        help="connections posting the burst (default 64)",
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> list[Figure]:
    with company_sections_ready(args.database, NAME, args.burst, "Burst") as ready:
        emulators, portal, url, ids = (
            ready.emulators,
            ready.portal,
            ready.database_url,
            ready.section_ids,
        )
        web_url = ready.web_url
        started_wall = time.time()
        started = time.monotonic()
        posted = asyncio.run(
            run_load(
                f"{web_url}/bitrix/events",
                lambda n: portal.event(ids[n]),
                concurrency=args.burst_concurrency,
                requests=len(ids),
                progress=Progress(f"{NAME} burst", len(ids)),
            )
        )
        burst_s = time.monotonic() - started
        progress = Progress(f"{NAME} calendars", len(ids))

        def settled() -> bool:
            done = "SELECT count(*) FROM calendar_mapping WHERE state = 'active'"
            waiting = "SELECT count(*) FROM inbox_event WHERE state IN ('pending', 'working')"
            progress.update(count_rows(url, done))
            return progress.done >= len(ids) and count_rows(url, waiting) == 0

        wait_for(settled, 900, "the burst to be applied", every=0.25)
        progress.close()
        bitrix = emulators.bitrix.requests(portal.member_id)
        google = emulators.google.requests(portal.subject)

    refused = sum(1 for r in bitrix if r["status"] == 503)
    inserts = google_inserts(google)
    created = len(inserts)
    wall = max((float(r["t"]) for r in inserts), default=started_wall) - started_wall
    calls = Counter(call_name(r) for r in google)
    per_calendar = ", ".join(f"{name} {n / max(created, 1):.2f}" for name, n in calls.most_common())
    # Every section has a colour (as in Bitrix24), and colours live on the owner's calendar-list
    # entry, which calendars.insert cannot set: one PATCH per calendar is required by the config.
    required = {"POST calendars": created, "PATCH users/me/calendarList/{id}": created}
    extra = sum(max(0, n - required.get(name, 0)) for name, n in calls.items())
    acks = posted.statuses.get(200, 0)
    say(f"  {NAME}: Bitrix24 {len(bitrix)} requests, {refused} 503; Google {dict(calls)}")
    return [
        Figure(NAME, f"burst of {len(ids)} events acknowledged", f"{acks} in {burst_s:.1f} s"),
        Figure(
            NAME,
            "Bitrix24 HTTP requests",
            str(len(bitrix)),
            f"<= {MAX_BITRIX_REQUESTS}",
            number=len(bitrix),
            goal=Goal(MAX_BITRIX_REQUESTS),
        ),
        Figure(NAME, "Bitrix24 503s received", str(refused), "0", number=refused, goal=Goal(0)),
        Figure(
            NAME,
            "Google requests per created calendar",
            f"{len(google) / max(created, 1):.2f} ({per_calendar})",
            "1 insert + 1 colour patch (config), 0 else",
            created == len(ids) and extra == 0,
            number=len(google) / max(created, 1),
        ),
        Figure(
            NAME,
            "calendars created / wall time (first post → last insert)",
            f"{created} / {wall:.1f} s",
        ),
    ]
