"""End to end: time from the web process's 200 to the Google calendar existing.

`--events` company-calendar sections exist in the Bitrix24 emulator (real leaky bucket: 50, then
2/s); their ONCALENDARSECTIONADD events are posted one at a time at `--rate` a second to
`python -m bridge serve`, while `python -m bridge worker` runs. The moment a calendar exists is
the Google emulator's own log time of the successful `calendars.insert` (taken under its lock when
the calendar is stored; `time.time()`, µs resolution, same clock as the 200), matched to the
section by the marker in the calendar's description. No polling is involved in the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.harness import (
    Portal,
    add_database_argument,
    company_sections_ready,
    count_rows,
    google_inserts,
)
from bench.load import Connection, percentile
from bench.progress import Progress
from bench.report import Figure, Goal, say
from bridge.harness import Sandbox, wait_for
from bridge.markers import read_marker

NAME = "end-to-end"
P50_MS = 100.0
P99_MS = 1000.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=500, help="events to time (default 500)")
    parser.add_argument(
        "--rate", type=float, default=10.0, help="events posted per second (default 10)"
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> list[Figure]:
    with company_sections_ready(args.database, NAME, args.events, "E2E") as ready:
        emulators, portal, url, ids = (
            ready.emulators,
            ready.portal,
            ready.database_url,
            ready.section_ids,
        )
        web_url = ready.web_url
        started = time.monotonic()
        acked = asyncio.run(_post_paced(f"{web_url}/bitrix/events", portal, ids, args.rate))
        progress = Progress(f"{NAME} calendars", len(ids))

        def created() -> bool:
            sql = "SELECT count(*) FROM calendar_mapping WHERE state = 'active'"
            progress.update(count_rows(url, sql))
            return progress.done >= len(ids)

        wait_for(created, 600, "every calendar", every=0.25)
        progress.close()
        wall = time.monotonic() - started
        return _figures(emulators, portal, acked, wall, args)


async def _post_paced(url: str, portal: Portal, ids: list[str], rate: float) -> dict[str, float]:
    """Post one event per section at `rate`; returns section id → time.time() of its 200."""
    connection = Connection(url)
    progress = Progress(f"{NAME} events", len(ids))
    acked: dict[str, float] = {}
    start = time.monotonic()
    try:
        for index, section_id in enumerate(ids):
            await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            status, answer = await connection.post(portal.event(section_id))
            if status != 200:
                raise RuntimeError(f"event for section {section_id}: {status} {answer!r}")
            acked[section_id] = time.time()
            progress.advance()
    finally:
        await connection.close()
        progress.close()
    return acked


def _figures(
    emulators: Sandbox,
    portal: Portal,
    acked: dict[str, float],
    wall: float,
    args: argparse.Namespace,
) -> list[Figure]:
    exists: dict[str, float] = {}
    for row in google_inserts(emulators.google.requests(portal.subject)):
        found = read_marker(str((row.get("body") or {}).get("description", "")))
        if found:
            exists.setdefault(found[1], float(row["t"]))
    latencies = [exists[s] - t for s, t in acked.items() if s in exists]
    bitrix = emulators.bitrix.requests(portal.member_id)
    refused = sum(1 for r in bitrix if r["status"] == 503)
    p50, p95, p99 = (percentile(latencies, q) * 1000 for q in (50, 95, 99))
    say(f"  {NAME}: p50 {p50:.0f} ms p95 {p95:.0f} ms p99 {p99:.0f} ms over {len(latencies)}")
    setup = f"{len(acked)} events at {args.rate:g}/s, {args.database}"
    return [
        Figure(
            NAME,
            f"200 → calendar exists, p50 ms ({setup})",
            f"{p50:.0f} ms",
            "<= 100 ms",
            number=p50,
            goal=Goal(P50_MS),
        ),
        Figure(NAME, "200 → calendar exists, p95", f"{p95:.0f} ms"),
        Figure(
            NAME,
            "200 → calendar exists, p99 ms (max)",
            f"{p99:.0f} ms ({max(latencies, default=0) * 1000:.0f} ms)",
            "p99 <= 1 s",
            number=p99,
            goal=Goal(P99_MS),
        ),
        Figure(NAME, "Bitrix24 requests (503s) during the run", f"{len(bitrix)} ({refused})"),
        Figure(NAME, "calendars created / wall time", f"{len(exists)} / {wall:.1f} s"),
    ]
