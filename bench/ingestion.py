"""Ingestion: durable acknowledgements per second and latency of `POST /bitrix/events`.

The bridge's web process (`python -m bridge serve`, one uvicorn process) on SQLite and on
PostgreSQL, beside two floors under the same uvicorn: bare Starlette that parses the same form
body and answers without storing (`bench.floor`), and, per database, bare Starlette that parses
it, checks the portal and commits it durably with the raw driver, concurrent deliveries grouped
into one commit (`bench.durable_floor`). The bridge is held against the durable floor. Each
point is a closed loop at fixed concurrency, measured in `--rounds` slices in which the servers
take turns (every other round in reverse order), so a machine whose speed drifts (a shared VM's
does) slows them alike. Every request carries a new section id, so every 200 is a new inbox row.
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import ExitStack

from bench.harness import DATABASES, deployment, fresh_database, register_portal, running_emulators
from bench.load import LoadResult, combined, run_load
from bench.progress import Progress
from bench.report import Figure, Goal, say

NAME = "ingestion"
DURABLE_SHARE = 0.80
P99_MS = 10.0
P99_AT = 8
_PLACEHOLDER = "987654321"
NO_STORAGE = "floor"


def durable(kind: str) -> str:
    return f"durable {kind}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 8, 64],
        help="connections kept busy at once (default: 1 8 64)",
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="measured seconds per point (default 5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=0.5, help="unmeasured seconds before each (default 0.5)"
    )
    parser.add_argument(
        "--databases", nargs="+", choices=DATABASES, default=list(DATABASES), help="(default both)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        choices=range(1, 21),
        metavar="1-20",
        default=3,
        help="slices each point's seconds are cut into, the servers taking turns in every slice, "
        "so that a drift in the machine's speed falls on the bridge and its floors alike "
        "(default 3)",
    )


def run(args: argparse.Namespace) -> list[Figure]:
    with ExitStack() as stack:
        emulators = stack.enter_context(running_emulators())
        portal = register_portal(emulators)
        template = portal.event(_PLACEHOLDER)

        def body(number: int) -> bytes:
            return template.replace(_PLACEHOLDER.encode(), str(number + 1).encode())

        urls: dict[str, str] = {}
        floor = stack.enter_context(deployment("sqlite://", [portal], "ingestion floor"))
        floor.start_web("bench.floor:app", role="floor")
        urls[NO_STORAGE] = floor.web_url
        for kind in args.databases:
            url = stack.enter_context(fresh_database(kind))
            floored = stack.enter_context(deployment(url, [portal], f"durable floor {kind}"))
            floored.start_web("bench.durable_floor:app", role="durable floor")
            urls[durable(kind)] = floored.web_url
            url = stack.enter_context(fresh_database(kind))
            deployed = stack.enter_context(deployment(url, [portal], f"ingestion {kind}"))
            deployed.start_web()
            urls[kind] = deployed.web_url

        results: dict[tuple[str, int], LoadResult] = {}
        first = 0
        for concurrency in args.concurrency:
            slices: dict[str, list[LoadResult]] = {target: [] for target in urls}
            for round_ in range(args.rounds):
                # every other round backwards, so no server always runs right after another
                # (whose writes the disk may still be flushing)
                order = list(urls.items())
                for target, url in order if round_ % 2 == 0 else reversed(order):
                    label = f"{NAME} {target} c={concurrency} ({round_ + 1}/{args.rounds})"
                    progress = Progress(label, unit=" requests")
                    slices[target].append(
                        asyncio.run(
                            run_load(
                                f"{url}/bitrix/events",
                                body,
                                concurrency=concurrency,
                                seconds=args.seconds / args.rounds,
                                # later slices only refill the closed loop
                                warmup=args.warmup if round_ == 0 else min(args.warmup, 0.1),
                                progress=progress,
                                first=first,
                            )
                        )
                    )
                    progress.close()
                    first += 10_000_000  # fresh section ids for every slice
            for target in urls:
                results[target, concurrency] = result = combined(slices[target])
                bad = {s: n for s, n in result.statuses.items() if s != 200}
                say(
                    f"  {target} c={concurrency}: {result.per_second:.0f}/s "
                    f"p50 {result.percentile_ms(50):.2f} ms p99 {result.percentile_ms(99):.2f} ms"
                    + (f" non-200: {bad}" if bad else "")
                )
    return figures(results, args.concurrency, args.databases)


def figures(
    results: dict[tuple[str, int], LoadResult], concurrency: list[int], databases: list[str]
) -> list[Figure]:
    rows: list[Figure] = []
    for c in concurrency:
        rows.append(
            _floor_figure(f"floor, no storage (bare Starlette) c={c}", results[NO_STORAGE, c])
        )
        for kind in databases:
            no_storage = results[NO_STORAGE, c].per_second
            floor = results[durable(kind), c]
            rows.append(
                _floor_figure(f"floor, durable {kind} (raw driver, group commit) c={c}", floor)
            )
            result = results[kind, c]
            errors = sum(n for status, n in result.statuses.items() if status != 200)
            share = result.per_second / floor.per_second if floor.per_second else 0.0
            rows.append(
                Figure(
                    NAME,
                    f"{kind} c={c}: acks/s vs durable floor",
                    f"{result.per_second:,.0f}/s vs {floor.per_second:,.0f}/s ({share:.0%})"
                    + (f", {errors} non-200" if errors else ""),
                    f">= {DURABLE_SHARE:.0%} of durable floor",
                    not errors,
                    number=result.per_second,
                    floor=floor.per_second,
                    goal=Goal(DURABLE_SHARE, at_most=False, of_floor=True),
                )
            )
            plain = result.per_second / no_storage if no_storage else 0.0
            rows.append(
                Figure(
                    NAME,
                    f"{kind} c={c}: acks/s vs no-storage floor",
                    f"{result.per_second:,.0f}/s vs {no_storage:,.0f}/s ({plain:.0%})",
                    number=result.per_second,
                    floor=no_storage,
                )
            )
            p99 = result.percentile_ms(99)
            held = c == P99_AT
            rows.append(
                Figure(
                    NAME,
                    f"{kind} c={c}: p99 ms (p50)",
                    f"{p99:.2f} ms ({result.percentile_ms(50):.2f} ms)",
                    f"p99 <= {P99_MS:.0f} ms" if held else "",
                    number=p99,
                    goal=Goal(P99_MS) if held else None,
                )
            )
    return rows


def _floor_figure(measure: str, result: LoadResult) -> Figure:
    return Figure(
        NAME,
        measure,
        f"{result.per_second:,.0f}/s, p50 {result.percentile_ms(50):.2f} ms, "
        f"p99 {result.percentile_ms(99):.2f} ms",
        number=result.per_second,
    )
