"""Reconciliation at scale: `python -m bridge sync` over a portal with many selected sections.

At `--scale 1` the portal has 10,000 sections over 2,000 users (four each) and 500 groups (four
each), `mirror: {users: all, groups: all}`, at Bitrix24's real leaky bucket (50, then 2/s). Two
runs, each a `bridge sync` process: the dry run (reads the whole selection and the owner's Google
calendar list, plans, changes nothing) is the Bitrix24 part held against the bucket's floor for
the requests it made; the real run then creates every calendar through the Google emulator
(creation and request pace raised to the config's maximum, 10,000 requests a minute), held
against the Google pace's floor.

Beside the whole run's wall time, the dry run's Bitrix24 part is held against the same floor: the
span from its first request to its last (the emulator's log times), which is what the bucket
bounds; the process's start-up before the first request and the planning after the last are
shown with it. `--batch-latency` makes the emulator take that long over every `batch` request,
as a real portal does, so that overlapping requests can be seen to matter.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from typing import Any

from bench.bucket import bucket_floor
from bench.harness import (
    RAISED_GOOGLE,
    Portal,
    add_database_argument,
    add_sections,
    call_name,
    clear_logs,
    deployment,
    fresh_database,
    google_inserts,
    register_portal,
    running_emulators,
)
from bench.processes import BenchDeployment, MeasuredProcess
from bench.progress import Progress
from bench.report import Figure, Goal, say
from bridge.harness import Sandbox

NAME = "reconciliation"
SECTIONS, USERS, GROUPS = 10_000, 2_000, 500
WITHIN = 1.2
CREATING_WITHIN = 1.5  # the real run, creating every calendar, against the Google pace floor
DEFAULT_SCALE = 1.0
# 10,000 creations take minutes (see RESULTS.md); the real run gets a portal of its own.
DEFAULT_REAL_SCALE = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scale",
        type=float,
        default=DEFAULT_SCALE,
        help=f"portal size: sections, users and groups times this (default {DEFAULT_SCALE:g}: "
        f"{SECTIONS:,} sections, {USERS:,} users, {GROUPS} groups)",
    )
    parser.add_argument(
        "--real-scale",
        type=float,
        default=DEFAULT_REAL_SCALE,
        help="size of the portal of the real run that creates every calendar, same ratios "
        f"(default {DEFAULT_REAL_SCALE:g}: {round(SECTIONS * DEFAULT_REAL_SCALE):,} sections); "
        "0 skips it",
    )
    parser.add_argument(
        "--batch-latency",
        type=float,
        default=0.0,
        help="seconds the Bitrix24 emulator takes over each `batch` request of the dry run "
        "(default 0: as fast as it can)",
    )
    add_database_argument(parser)


def run(args: argparse.Namespace) -> list[Figure]:
    mirror = {
        "company": False,
        "resources": False,
        "locations": False,
        "users": "all",
        "groups": "all",
        "reconcile_interval_minutes": 0,
    }
    figures: list[Figure] = []
    with running_emulators() as emulators:
        portal = register_portal(emulators, mirror=mirror, google=RAISED_GOOGLE)
        size = _populate(emulators, portal, args.scale)
        with fresh_database(args.database) as url, deployment(url, [portal], NAME) as deployed:
            clear_logs(emulators)
            if args.batch_latency > 0:
                emulators.bitrix.fault(
                    member_id=portal.member_id,
                    method="batch",
                    kind="delay",
                    seconds=args.batch_latency,
                    count=None,
                )
                size += f", {args.batch_latency:g} s a batch request"
            try:
                dry = run_sync(deployed, emulators, portal, dry_run=True)
            finally:
                emulators.bitrix.clear_faults()
            figures += _bitrix_figures("dry run", dry, size, args.database)
        if args.real_scale > 0:
            portal = register_portal(emulators, key="real", mirror=mirror, google=RAISED_GOOGLE)
            size = _populate(emulators, portal, args.real_scale)
            with (
                fresh_database(args.database) as url,
                deployment(url, [portal], NAME) as deployed,
            ):
                clear_logs(emulators)
                real = run_sync(deployed, emulators, portal, dry_run=False)
                figures += _bitrix_figures("real run", real, size, args.database)
                figures += _google_figures(real)
    return figures


def _populate(emulators: Sandbox, portal: Portal, scale: float) -> str:
    """Users, groups and their sections in the Bitrix24 emulator; returns a description."""
    users, groups = max(1, round(USERS * scale)), max(1, round(GROUPS * scale))
    sections = max(2, round(SECTIONS * scale))
    bitrix = emulators.bitrix
    bitrix.add_owners(
        portal.member_id,
        "users",
        [{"ID": i, "NAME": f"User{i}", "LAST_NAME": "Bench"} for i in range(1, users + 1)],
    )
    bitrix.add_owners(
        portal.member_id, "groups", [{"ID": i, "NAME": f"Group {i}"} for i in range(1, groups + 1)]
    )
    user_sections = round(sections * users / (users + groups))
    bodies: list[dict[str, Any]] = [
        {"type": "user", "owner_id": 1 + i % users, "name": f"User section {i}"}
        for i in range(user_sections)
    ]
    bodies += [
        {"type": "group", "owner_id": 1 + i % groups, "name": f"Group section {i}"}
        for i in range(sections - user_sections)
    ]
    asyncio.run(add_sections(emulators, portal, bodies, f"{NAME} setup"))
    return f"{sections:,} sections / {users:,} users / {groups} groups (scale {scale:g})"


def run_sync(
    deployed: BenchDeployment,
    emulators: Sandbox,
    portal: Portal,
    *,
    dry_run: bool,
    run_name: str = NAME,
) -> dict[str, Any]:
    """`python -m bridge sync` as a measured process, to its end: wall time, exit code, the
    emulators' request logs for the portal, its summary line and its peak RSS in MiB."""
    label = "dry run" if dry_run else "real run"
    argv = ["-m", "bridge", "sync", *(["--dry-run"] if dry_run else [])]
    started_at = time.time()  # the emulators log requests on this clock
    started = time.monotonic()
    process = MeasuredProcess(argv, deployed.env, deployed.folder, "sync", f"{run_name} {label}")
    progress = Progress(f"{run_name} {label}", unit=" (calendars applied)")
    applied = re.compile(rb"applying: (\d+)/(\d+)")
    try:
        while process.poll() is None:
            process.read_peak()
            found = applied.findall(process.log.read_bytes())
            if found:
                progress.total = int(found[-1][1])
                progress.update(int(found[-1][0]))
            time.sleep(0.05)
    finally:
        wall = time.monotonic() - started
        code = process.stop()
        progress.close()
    summary = [line for line in process.output().splitlines() if line.startswith(f"{portal.key}:")]
    say(f"  {label}: exit {code} in {wall:.1f} s: {summary[-1] if summary else '?'}")
    return {
        "wall": wall,
        "started_at": started_at,
        "code": code,
        "bitrix": emulators.bitrix.requests(portal.member_id),
        "google": emulators.google.requests(portal.subject),
        "summary": summary[-1] if summary else "",
        "peak_mib": process.peak_mib,
        "output": process.output(),
    }


def _bitrix_figures(label: str, run: dict[str, Any], size: str, database: str) -> list[Figure]:
    requests = len(run["bitrix"])
    refused = sum(1 for r in run["bitrix"] if r["status"] == 503)
    floor = bucket_floor(requests)
    # Held against the floor only when the bucket's burst was spent (a floor of 0 judges nothing).
    held = label == "dry run" and floor > 0
    figures = [
        Figure(NAME, f"{label}: {size}, {database}", run["summary"] or f"exit {run['code']}"),
        Figure(NAME, f"{label}: Bitrix24 requests (503s)", f"{requests} ({refused})"),
        Figure(
            NAME,
            f"{label}: wall time s vs bucket floor for {requests} requests",
            f"{run['wall']:.1f} s vs {floor:.1f} s ({_ratio(run['wall'], floor)})",
            f"<= {WITHIN:g}x floor" if held else "",
            number=run["wall"],
            floor=floor,
            goal=Goal(WITHIN, of_floor=True) if held else None,
        ),
    ]
    starts = sorted(r["t"] - run["started_at"] for r in run["bitrix"])
    if label == "dry run" and starts:
        span = starts[-1] - starts[0]
        figures.append(
            Figure(
                NAME,
                f"{label}: Bitrix24 part (first → last request) vs bucket floor",
                f"{span:.1f} s vs {floor:.1f} s ({_ratio(span, floor)}); start-up before it "
                f"{starts[0]:.1f} s, after it {run['wall'] - starts[-1]:.1f} s",
                f"<= {WITHIN:g}x floor" if held else "",
                span <= WITHIN * floor if held else None,
            )
        )
    return figures


def _google_figures(run: dict[str, Any]) -> list[Figure]:
    google = run["google"]
    created = len(google_inserts(google))
    per_minute = RAISED_GOOGLE["requests_per_minute"]
    assert isinstance(per_minute, int)
    burst = max(1, per_minute // 10)  # as `PortalClients` paces Google
    floor = max(0, len(google) - burst) / ((per_minute - burst) / 60)
    calls: dict[str, int] = {}
    for row in google:
        calls[call_name(row)] = calls.get(call_name(row), 0) + 1
    shown = ", ".join(f"{name} {n}" for name, n in sorted(calls.items(), key=lambda c: -c[1]))
    return [
        Figure(NAME, "real run: Google requests", f"{len(google)} ({shown})"),
        Figure(
            NAME,
            f"real run: wall s vs Google pace floor ({per_minute:,}/min)",
            f"{run['wall']:.1f} s vs {floor:.1f} s ({_ratio(run['wall'], floor)}), "
            f"{created} calendars",
            f"<= {CREATING_WITHIN:g}x floor" if floor > 0 else "",
            number=run["wall"],
            floor=floor,
            goal=Goal(CREATING_WITHIN, of_floor=True) if floor > 0 else None,
        ),
    ]


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:.1f}x" if floor > 0 else "floor 0: the burst was not spent"
