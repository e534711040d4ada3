"""`python -m bench [BENCHMARK] [options]`: run the benchmarks and print one table."""

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
from bench.report import Figure, print_table, say

BENCHMARKS: dict[str, ModuleType] = {
    "ingestion": ingestion,
    "end-to-end": end_to_end,
    "economy": economy,
    "reconciliation": reconciliation,
    "entry-latency": entry_latency,
    "entry-burst": entry_burst,
    "entry-backfill": entry_backfill,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    words = list(argv if argv is not None else sys.argv[1:])
    if not any(word in (*BENCHMARKS, "memory", "all") for word in words):
        at = 0  # `all` goes after the top-level options, before its own
        while at < len(words) and words[at].startswith("--profile"):
            at += 1 if "=" in words[at] else 2
        if not (set(words[:at]) & {"-h", "--help"}):
            words.insert(at, "all")
    args = parser.parse_args(words)
    if args.profile:
        PROFILING.folder = Path(args.profile).resolve()
    started = time.monotonic()
    say(_machine())
    run: Callable[[argparse.Namespace], list[Figure]] = args.run
    figures = run(args)
    print_table(figures, title=f"Results ({args.command}, {time.monotonic() - started:.0f} s)")
    return 0


def _parser() -> argparse.ArgumentParser:
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
