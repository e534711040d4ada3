"""Figures, the targets they are held against, and the table they are printed in."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    benchmark: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: a figure without a target

    @property
    def stands(self) -> str:
        return "" if self.met is None else ("met" if self.met else "MISSED")


def print_table(figures: Sequence[Figure], title: str = "") -> None:
    header = ["benchmark", "measure", "value", "target", "stands"]
    rows = [[f.benchmark, f.measure, f.value, f.target, f.stands] for f in figures]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out = sys.stdout
    if title:
        print(f"\n{title}", file=out)
    for row in [header, ["-" * w for w in widths], *rows]:
        print(
            "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |", file=out
        )
    out.flush()


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
