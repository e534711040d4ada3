"""Memory: peak RSS (VmHWM, read until the process exits) of the web and worker processes.

Every process the other benchmarks start is measured; `python -m bench memory` runs them all
and prints only these figures. `sync` is the reconciliation run (`python -m bridge sync`): the
same code the worker runs on its interval, in a process of its own.
"""

from __future__ import annotations

import argparse

from bench.processes import MEMORY
from bench.report import Figure, Goal

NAME = "memory"
LIMITS_MIB = {"web": 120.0, "worker": 150.0, "sync": 150.0}


def run(args: argparse.Namespace) -> list[Figure]:
    from bench.__main__ import BENCHMARKS

    for module in BENCHMARKS.values():
        module.run(args)
    return figures()


def figures() -> list[Figure]:
    rows = []
    for role in ("web", "worker", "sync", "floor", "durable floor"):
        if role not in MEMORY.peaks:
            continue
        mib, where = MEMORY.peaks[role]
        limit = LIMITS_MIB.get(role)
        rows.append(
            Figure(
                NAME,
                f"peak RSS {role} MiB (in {where})",
                f"{mib:.0f} MiB",
                f"<= {limit:.0f} MB" if limit else "",
                number=mib,
                goal=Goal(limit * 1e6 / 2**20) if limit else None,  # the limit in MiB
            )
        )
    return rows
