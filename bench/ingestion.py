"""Ingestion: durable acknowledgements per second and latency of `POST /bitrix/events`.

The bridge's web process (`python -m bridge serve`, one uvicorn process) on SQLite and on
PostgreSQL, beside the floor: bare Starlette under the same uvicorn that parses the same form
body and answers without storing (`bench.floor`). Each point is a closed loop at fixed
concurrency; every request carries a new section id, so every 200 is a new inbox row.
"""

from __future__ import annotations

import argparse
import asyncio
from contextlib import ExitStack

from bench.harness import DATABASES, deployment, fresh_database, register_portal, running_emulators
from bench.load import LoadResult, run_load
from bench.progress import Progress
from bench.report import Figure, say

NAME = "ingestion"
THROUGHPUT_SHARE = 0.60
P99_MS = 10.0
P99_AT = 8
_PLACEHOLDER = "987654321"


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
        "--databases", nargs="+", choices=DATABASES, default=list(DATABASES), help="(default both)"
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
        urls["floor"] = floor.web_url
        for kind in args.databases:
            url = stack.enter_context(fresh_database(kind))
            deployed = stack.enter_context(deployment(url, [portal], f"ingestion {kind}"))
            deployed.start_web()
            urls[kind] = deployed.web_url

        results: dict[tuple[str, int], LoadResult] = {}
        first = 0
        for concurrency in args.concurrency:
            for target, url in urls.items():
                progress = Progress(f"{NAME} {target} c={concurrency}", unit=" requests")
                results[target, concurrency] = result = asyncio.run(
                    run_load(
                        f"{url}/bitrix/events",
                        body,
                        concurrency=concurrency,
                        seconds=args.seconds,
                        warmup=0.5,
                        progress=progress,
                        first=first,
                    )
                )
                progress.close()
                first += 10_000_000  # fresh section ids for every point
                bad = {s: n for s, n in result.statuses.items() if s != 200}
                say(
                    f"  {target} c={concurrency}: {result.per_second:.0f}/s "
                    f"p50 {result.percentile_ms(50):.2f} ms p99 {result.percentile_ms(99):.2f} ms"
                    + (f" non-200: {bad}" if bad else "")
                )
    return _figures(results, args)


def _figures(results: dict[tuple[str, int], LoadResult], args: argparse.Namespace) -> list[Figure]:
    figures: list[Figure] = []
    for concurrency in args.concurrency:
        floor = results["floor", concurrency]
        figures.append(
            Figure(
                NAME,
                f"floor (bare Starlette) c={concurrency}",
                f"{floor.per_second:,.0f}/s, p50 {floor.percentile_ms(50):.2f} ms, "
                f"p99 {floor.percentile_ms(99):.2f} ms",
            )
        )
        for kind in args.databases:
            result = results[kind, concurrency]
            ratio = result.per_second / floor.per_second if floor.per_second else 0.0
            errors = sum(n for status, n in result.statuses.items() if status != 200)
            figures.append(
                Figure(
                    NAME,
                    f"{kind} c={concurrency}: acks/s (share of floor)",
                    f"{result.per_second:,.0f}/s ({ratio:.0%})"
                    + (f", {errors} non-200" if errors else ""),
                    f">= {THROUGHPUT_SHARE:.0%} of floor",
                    ratio >= THROUGHPUT_SHARE and not errors,
                )
            )
            p99 = result.percentile_ms(99)
            figures.append(
                Figure(
                    NAME,
                    f"{kind} c={concurrency}: p50 / p99",
                    f"{result.percentile_ms(50):.2f} / {p99:.2f} ms",
                    f"p99 <= {P99_MS:.0f} ms" if concurrency == P99_AT else "",
                    p99 <= P99_MS if concurrency == P99_AT else None,
                )
            )
    return figures
