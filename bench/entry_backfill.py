"""Entry backfill: `python -m bridge sync` mirroring every entry of a portal whose calendars exist
but hold nothing yet.

`--backfill-sections` user sections (one per user, `mirror: {users: all}`) get their calendars
from a first `bridge sync`; then `--backfill-entries` one-hour entries spread over them and over
the next 300 days are made silently (`deliver=False`: only reconciliation can find them), and a
second `bridge sync`, measured, backfills them at the Google pace `--google-pace` (requests a
minute for the subject, set in the portal's config; every event write takes a slot, batched or
not). Bitrix24 is at its real leaky bucket (50, then 2/s).

Held against the Google pace floor (entries / pace: one write per entry): the process's wall
time, start-up and Bitrix24 reads included (the span from the first event write to the last, in
the emulator's log times, is shown beside it). Peak RSS of the sync process (VmHWM, read while it
runs) against 200 MB. Memory flatness: the same backfill at
`--flat-fraction` of the size, first, on a portal and database of its own, and the two peaks
compared. The pace lets a burst of a tenth of a minute's requests through at once (as
`PortalClients` paces Google), so runs shorter than that can beat the floor.

Needs entry reconciliation in `bridge sync` (issue 13, `bridge/entry_reconcile.py`): when the
sync mirrors no entry at all, the benchmark says so and reports it as skipped.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.bucket import bucket_floor
from bench.harness import (
    ACTIVE_CALENDARS,
    ACTIVE_ENTRIES,
    RAISED_GOOGLE,
    Portal,
    add_database_argument,
    add_entries,
    add_sections,
    call_name,
    clear_logs,
    count_rows,
    deployment,
    entry_body,
    fresh_database,
    google_event_writes,
    register_portal,
    running_emulators,
)
from bench.reconciliation import run_sync
from bench.report import Figure, Goal, say
from bridge.harness import Sandbox

NAME = "entry-backfill"
PEAK_MB = 200.0
FLAT = 0.10  # peak RSS may grow by this share of the smaller run's from the smaller to the full
WITHIN = 1.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backfill-entries",
        type=int,
        default=1000,
        help="entries to backfill (default 1000; the issue's run: 10000)",
    )
    parser.add_argument(
        "--backfill-sections",
        type=int,
        default=10,
        help="mirrored sections, one per user, holding them (default 10; the issue's run: 100)",
    )
    parser.add_argument(
        "--google-pace",
        type=int,
        default=10_000,
        help="google.requests_per_minute of the portal (default 10000, the config's maximum)",
    )
    parser.add_argument(
        "--flat-fraction",
        type=float,
        default=0.25,
        help="size of the smaller run that memory flatness compares with, as a share of "
        "--backfill-entries and --backfill-sections (default 0.25; 0 skips it)",
    )
    add_database_argument(parser)


@dataclass
class Backfill:
    entries: int
    sections: int
    sync: dict[str, Any]
    mirrored: int

    @property
    def size(self) -> str:
        return f"{self.entries:,} entries / {self.sections} sections"


def run(args: argparse.Namespace) -> list[Figure]:
    sizes = [(args.backfill_entries, args.backfill_sections)]
    if args.flat_fraction > 0:
        smaller = (
            max(1, round(args.backfill_entries * args.flat_fraction)),
            max(1, round(args.backfill_sections * args.flat_fraction)),
        )
        sizes.insert(0, smaller)
    runs: list[Backfill] = []
    with running_emulators() as emulators:
        for number, (entries, sections) in enumerate(sizes):
            done = _backfill(emulators, f"fill{number}", entries, sections, args)
            if done.mirrored == 0:
                message = (
                    f"skipped: `bridge sync` mirrored none of {entries:,} entries "
                    "(entry reconciliation, issue 13 branch i13-erec, is not in this build)"
                )
                say(f"  {NAME}: {message}")
                return [Figure(NAME, f"backfill of {done.size}", message)]
            runs.append(done)
    return _figures(runs, args)


def _backfill(
    emulators: Sandbox, key: str, entries: int, sections: int, args: argparse.Namespace
) -> Backfill:
    mirror = {
        "company": False,
        "resources": False,
        "locations": False,
        "users": "all",
        "groups": [],
        "reconcile_interval_minutes": 0,
    }
    google = {**RAISED_GOOGLE, "requests_per_minute": args.google_pace}
    portal = register_portal(emulators, key=key, mirror=mirror, google=google)
    section_ids = _sections(emulators, portal, sections)
    with fresh_database(args.database) as url, deployment(url, [portal], NAME) as deployed:
        made = deployed.run("sync")  # the calendars, before there is any entry
        if made.returncode != 0 or count_rows(url, ACTIVE_CALENDARS) != sections:
            output = (made.stdout + made.stderr)[-2000:]
            raise RuntimeError(f"the calendars were not made: {output}")
        bodies = [entry_body(section_ids[i % sections], i, "Backfill") for i in range(entries)]
        asyncio.run(add_entries(emulators, portal, bodies, f"{NAME} setup", deliver=False))
        clear_logs(emulators)
        sync = run_sync(deployed, emulators, portal, dry_run=False, run_name=f"{NAME} {entries}")
        if sync["code"] != 0:
            say(f"  {NAME}: sync exited {sync['code']}: {sync['output'][-2000:]}")
        return Backfill(entries, sections, sync, count_rows(url, ACTIVE_ENTRIES))


def _sections(emulators: Sandbox, portal: Portal, count: int) -> list[str]:
    """One user per section, each with one section of their own, made silently."""
    emulators.bitrix.add_owners(
        portal.member_id,
        "users",
        [{"ID": i, "NAME": f"User{i}", "LAST_NAME": "Backfill"} for i in range(1, count + 1)],
    )
    bodies: list[dict[str, Any]] = [
        {"type": "user", "owner_id": i, "name": f"Calendar of user {i}"}
        for i in range(1, count + 1)
    ]
    return asyncio.run(add_sections(emulators, portal, bodies, f"{NAME} setup"))


def _figures(runs: list[Backfill], args: argparse.Namespace) -> list[Figure]:
    full = runs[-1]
    sync = full.sync
    writes = google_event_writes(sync["google"])
    calls = Counter(call_name(r) for r in writes)
    shown = ", ".join(f"{name} {n}" for name, n in calls.most_common())
    batched = sum(1 for r in writes if r.get("in_batch"))
    floor = full.entries * 60 / args.google_pace
    stamps = [float(r["t"]) for r in writes]
    span = max(stamps) - min(stamps) if stamps else 0.0
    wall = sync["wall"]
    requests = len(sync["bitrix"])
    refused = sum(1 for r in sync["bitrix"] if r["status"] == 503)
    say(f"  {NAME}: {full.mirrored} mirrored in {wall:.1f} s, peak {sync['peak_mib']:.0f} MiB")
    figures = [
        Figure(
            NAME,
            f"backfill of {full.size}, {args.database}",
            f"{full.mirrored:,} mirrored; {sync['summary'] or 'exit ' + str(sync['code'])}",
            f"all {full.entries:,}",
            full.mirrored == full.entries and sync["code"] == 0,
            number=full.mirrored,
        ),
        Figure(
            NAME,
            f"wall s vs Google pace floor ({full.entries:,} at {args.google_pace:,}/min)",
            f"{wall:.1f} s vs {floor:.1f} s ({wall / floor:.2f}x)",
            f"<= {WITHIN:g}x floor",
            number=wall,
            floor=floor,
            goal=Goal(WITHIN, of_floor=True),
        ),
        Figure(
            NAME,
            "of which first → last event write (the emulator's log times)",
            f"{span:.1f} s ({span / floor:.2f}x floor)",
        ),
        Figure(
            NAME,
            "Google event writes (in batches)",
            f"{len(writes)} ({batched}): {shown}",
            "1 per entry",
            len(writes) == full.entries,
            number=len(writes),
        ),
        Figure(
            NAME,
            "Bitrix24 requests (503s), bucket floor",
            f"{requests} ({refused}), {bucket_floor(requests):.1f} s",
        ),
        Figure(
            NAME,
            f"peak RSS sync MiB ({full.size})",
            f"{sync['peak_mib']:.0f} MiB",
            f"<= {PEAK_MB:.0f} MB",
            number=sync["peak_mib"],
            goal=Goal(PEAK_MB * 1e6 / 2**20),
        ),
    ]
    if len(runs) > 1:
        small = runs[0]
        low, high = small.sync["peak_mib"], sync["peak_mib"]
        growth = (high - low) / low if low else 0.0
        figures.append(
            Figure(
                NAME,
                f"memory flatness: peak RSS at {small.entries:,} vs {full.entries:,} entries",
                f"{low:.0f} vs {high:.0f} MiB ({growth:+.0%})",
                f"<= {FLAT:+.0%}",
                small.mirrored == small.entries,
                number=growth,
                goal=Goal(FLAT),
            )
        )
    return figures
