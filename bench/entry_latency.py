"""Entry latency: from an entry's change in Bitrix24 to its event existing in Google.

`--entry-sections` company sections are mirrored first (their calendars made by one `bridge
sync`); the portal runs at Bitrix24's real leaky bucket (50, then 2/s). Entries are then added one
at a time through the Bitrix24 emulator's control API, each delivering its ONCALENDARENTRYADD to
`python -m bridge serve` from the emulator's delivery queue as Bitrix24 does, while `python -m
bridge worker` runs: first `--slow-events` at `--slow-rate` a second (below the portal's drain
rate), then `--entry-events` at `--entry-rate`.

The change time is `time.time()` just before the control call that makes the entry (so the
figure covers the delivery too); the moment the event exists is the Google emulator's own log
time of the successful `events.insert` (taken under its lock as the event is stored; same clock,
µs resolution), matched to the entry by `extendedProperties.private.b24_entry`. No polling goes
into the figure. At `--entry-rate` the percentiles are held against the bucket floor
(`bench.bucket.read_waits`): the same percentile of the waits an ideal reader would have for the
same arrivals, the bucket's part alone (no time for the read, the commit or the insert).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.bucket import PER_SECOND, Phase, against_floor, below_drain, phase_latencies, phase_waits
from bench.harness import (
    ACTIVE_ENTRIES,
    Portal,
    add_database_argument,
    count_rows,
    entry_body,
    event_entry,
    google_event_writes,
    mirrored_sections_ready,
)
from bench.load import Connection, percentile
from bench.progress import Progress
from bench.report import Figure
from bridge.harness import Sandbox, wait_for

NAME = "entry-latency"
P50_MS = 250.0
P99_MS = 1000.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--entry-events",
        type=int,
        default=200,
        help="entries timed at --entry-rate (default 200; the issue's run: 500)",
    )
    parser.add_argument(
        "--entry-rate",
        type=float,
        default=10.0,
        help="entries made per second, held against the bucket floor (default 10)",
    )
    parser.add_argument(
        "--slow-events",
        type=int,
        default=40,
        help="entries timed below the drain rate, first (default 40; 0 skips)",
    )
    parser.add_argument(
        "--slow-rate",
        type=float,
        default=1.5,
        help=f"entries a second below the drain rate ({PER_SECOND:g} requests/s; default 1.5)",
    )
    parser.add_argument(
        "--entry-sections",
        type=int,
        default=10,
        help="mirrored sections the entries are spread over (default 10)",
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> list[Figure]:
    phases = [Phase(args.slow_rate), Phase(args.entry_rate)]
    counts = [args.slow_events, args.entry_events]
    with mirrored_sections_ready(args.database, NAME, args.entry_sections, "Latency") as ready:
        emulators, portal, url = ready.emulators, ready.portal, ready.database_url
        started = time.monotonic()
        sections = ready.section_ids
        made = 0
        for phase, count in zip(phases, counts, strict=True):
            if count > 0:
                numbers = range(made, made + count)
                bodies = [entry_body(sections[n % len(sections)], n, "Timed") for n in numbers]
                asyncio.run(_add_paced(emulators, portal, bodies, phase))
                made += count
        progress = Progress(f"{NAME} events", made)

        def mirrored() -> bool:
            progress.update(count_rows(url, ACTIVE_ENTRIES))
            return progress.done >= made

        wait_for(mirrored, 600, "every entry's event", every=0.25)
        progress.close()
        wall = time.monotonic() - started
        deliveries = emulators.bitrix.flush_deliveries(timeout=60)
        google = emulators.google.requests(portal.subject)
        bitrix = emulators.bitrix.requests(portal.member_id)
    return _figures(phases, deliveries, google, bitrix, wall, args.database)


async def _add_paced(
    emulators: Sandbox, portal: Portal, bodies: list[dict[str, Any]], phase: Phase
) -> None:
    """Make one entry (with its delivery) every 1/rate seconds."""
    connection = Connection(portal.control(emulators, "entries"))
    progress = Progress(f"{NAME} entries {phase.label}", len(bodies))
    start = time.monotonic()
    try:
        for index, body in enumerate(bodies):
            await asyncio.sleep(max(0.0, start + index / phase.rate - time.monotonic()))
            before = time.time()
            status, answer = await connection.post(json.dumps(body).encode(), "application/json")
            if status != 201:
                raise RuntimeError(f"entry not created: {status} {answer!r}")
            phase.arrived[str(json.loads(answer)["ID"])] = before
            progress.advance()
    finally:
        await connection.close()
        progress.close()


def _figures(
    phases: list[Phase],
    deliveries: list[dict[str, Any]],
    google: list[dict[str, Any]],
    bitrix: list[dict[str, Any]],
    wall: float,
    database: str,
) -> list[Figure]:
    exists: dict[str, float] = {}
    for row in google_event_writes(google):
        entry = event_entry(row)
        if row["method"] == "POST" and row["status"] == 200 and entry is not None:
            exists.setdefault(entry, float(row["t"]))
    sent = {
        str(d["section_id"]): float(d["t"])
        for d in deliveries
        if d["event"] == "ONCALENDARENTRYADD" and d["ok"]
    }
    waits = phase_waits(phases)
    figures: list[Figure] = []
    for phase in phases:
        if not phase.arrived:
            continue
        latencies, (p50, p95, p99, top) = phase_latencies(NAME, phase, exists)
        queued = [sent[e] - t for e, t in phase.arrived.items() if e in sent]
        setup = f"{len(phase.arrived)} entries at {phase.rate:g}/s, {database}"
        if phase.below_drain:
            figures += below_drain(
                NAME,
                "change → event exists",
                setup,
                (p50, p95, p99, top),
                complete=len(latencies) == len(phase.arrived),
                p50_ms=P50_MS,
                p99_ms=P99_MS,
            )
        else:
            floor = [waits[e] for e in phase.arrived]
            f50, f99 = (percentile(floor, q) * 1000 for q in (50, 99))
            figures += [
                _against_floor(
                    f"change → event exists, p50 ms vs bucket floor ({setup})", p50, f50
                ),
                Figure(NAME, "change → event exists, p95", f"{p95:.0f} ms"),
                _against_floor("change → event exists, p99 ms vs bucket floor", p99, f99),
                Figure(NAME, "change → event exists, max", f"{top:.0f} ms"),
            ]
        figures.append(
            Figure(
                NAME,
                "of which change → delivery sent, p50 / p99",
                f"{percentile(queued, 50) * 1000:.1f} / {percentile(queued, 99) * 1000:.1f} ms",
            )
        )
    refused = sum(1 for r in bitrix if r["status"] == 503)
    made = sum(len(p.arrived) for p in phases)
    figures += [
        Figure(NAME, "Bitrix24 requests (503s) during the run", f"{len(bitrix)} ({refused})"),
        Figure(NAME, "events created / wall time", f"{len(exists)} of {made} / {wall:.1f} s"),
    ]
    return figures


def _against_floor(measure: str, value_ms: float, floor_ms: float) -> Figure:
    return against_floor(NAME, measure, value_ms, floor_ms, more="more --entry-events")
