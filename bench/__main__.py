"""`python -m bench [--quick] [BENCHMARK] [options]`: run the benchmarks, print one table and
write the figures to `bench/results.json`. `--quick` runs every benchmark at small sizes
(`QUICK`, under 90 s on 2 cores): a regression check, not a measurement to quote."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from bench import (
    economy,
    end_to_end,
    entry_backfill,
    entry_burst,
    entry_latency,
    ingestion,
    memory,
    reconciliation,
)
from bench.processes import PROFILING
from bench.report import RESULTS, Figure, print_table, say, write_results

BENCHMARKS: dict[str, ModuleType] = {
    "ingestion": ingestion,
    "end-to-end": end_to_end,
    "economy": economy,
    "reconciliation": reconciliation,
    "entry-latency": entry_latency,
    "entry-burst": entry_burst,
    "entry-backfill": entry_backfill,
}

# Every benchmark small: seconds, not minutes. Options given on the command line still win.
QUICK: dict[str, object] = {
    "seconds": 0.8,
    "warmup": 0.15,
    "rounds": 2,
    "events": 20,
    "burst": 100,
    "scale": 0.02,
    "real_scale": 0.01,
    "entry_events": 20,
    "slow_events": 4,
    "entry_sections": 2,
    "entry_burst": 100,
    "burst_sections": 2,
    "backfill_entries": 200,
    "backfill_sections": 4,
    "flat_fraction": 0.5,
}

_TOP_LEVEL = {"--profile": True, "--results": True, "--quick": False}  # option → takes a value


def main(argv: Sequence[str] | None = None) -> int:
    words = list(argv if argv is not None else sys.argv[1:])
    parser = _parser(quick="--quick" in words)
    if not any(word in (*BENCHMARKS, "memory", "all") for word in words):
        at = 0  # `all` goes after the top-level options, before its own
        while at < len(words):
            name, equals, _ = words[at].partition("=")
            if name not in _TOP_LEVEL:
                break
            at += 1 if equals or not _TOP_LEVEL[name] else 2
        if not (set(words[:at]) & {"-h", "--help"}):
            words.insert(at, "all")
    args = parser.parse_args(words)
    if args.profile:
        PROFILING.folder = Path(args.profile).resolve()
    started = time.monotonic()
    say(_machine())
    run: Callable[[argparse.Namespace], list[Figure]] = args.run
    figures = run(args)
    kind = f"{args.command}, quick" if args.quick else args.command
    print_table(figures, title=f"Results ({kind}, {time.monotonic() - started:.0f} s)")
    write_results(figures, Path(args.results))
    say(f"figures written to {args.results}")
    return 0


def _parser(*, quick: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks of the bridge against their physical floors. Without a "
        "benchmark name, runs them all (`all`) and prints one table.",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="sample every started process with py-spy into DIR (collapsed stacks; skews figures)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="every benchmark at small sizes (under 90 s): a regression check",
    )
    parser.add_argument(
        "--results",
        metavar="FILE",
        default=str(RESULTS),
        help="where the figures go as JSON (default bench/results.json)",
    )
    commands = parser.add_subparsers(dest="command", metavar="BENCHMARK")
    for name, module in BENCHMARKS.items():
        sub = commands.add_parser(name, help=_first_line(module), description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    sub = commands.add_parser(
        "memory", help=_first_line(memory), description=memory.__doc__, conflict_handler="resolve"
    )
    _add_all_arguments(sub)
    sub.set_defaults(run=memory.run)
    sub = commands.add_parser(
        "all", help="every benchmark above, then memory (the default)", conflict_handler="resolve"
    )
    _add_all_arguments(sub)
    sub.set_defaults(run=_run_all)
    if quick:
        for sub in commands.choices.values():
            sub.set_defaults(**QUICK)
    return parser


def _add_all_arguments(parser: argparse.ArgumentParser) -> None:
    for module in BENCHMARKS.values():  # shared options (--database) are defined alike
        module.add_arguments(parser)


def _run_all(args: argparse.Namespace) -> list[Figure]:
    figures: list[Figure] = []
    for name, module in BENCHMARKS.items():
        say(f"== {name}")
        started = time.monotonic()
        figures += module.run(args)
        say(f"== {name}: {time.monotonic() - started:.0f} s")
    return figures + memory.figures()


def _first_line(module: ModuleType) -> str:
    return (module.__doc__ or "").strip().splitlines()[0]


def _machine() -> str:
    memory_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        postgres = subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-tAc",
                "SHOW server_version",
            ],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except OSError:
        postgres = "?"
    return (
        f"machine: {os.cpu_count()} CPUs, {memory_total:.0f} GiB, "
        f"Python {platform.python_version()}, "
        f"PostgreSQL {postgres or '?'}, {time.strftime('%Y-%m-%d %H:%M %Z')}"
    )


if __name__ == "__main__":
    sys.exit(main())
