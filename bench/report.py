"""Figures, the targets they are held against, the table they are printed in, and
`bench/results.json`, the same figures as data for a regression check."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")


@dataclass(frozen=True)
class Goal:
    """A target as a number: `at_most` or at least `bound`, held against the figure's ratio to
    its floor when it has one (`of_floor`), else against its number."""

    bound: float
    at_most: bool = True
    of_floor: bool = False

    def holds(self, number: float, floor: float | None) -> bool:
        if self.of_floor:
            if floor is None or floor <= 0:
                return False
            number = number / floor
        return number <= self.bound if self.at_most else number >= self.bound

    def __str__(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.bound:g}"


@dataclass(frozen=True)
class Figure:
    """One row. `value` and `target` are the table's text; `number` (in the unit the measure
    names), `floor` and `goal` are the same as data. With a `goal`, the figure stands when the
    goal holds and `met` (the benchmark's other conditions, if any) is not False."""

    benchmark: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None  # None: a figure without a target
    number: float | None = None
    floor: float | None = None
    goal: Goal | None = None

    @property
    def ratio(self) -> float | None:
        if self.number is None or self.floor is None or self.floor <= 0:
            return None
        return self.number / self.floor

    @property
    def verdict(self) -> bool | None:
        if self.goal is None or self.number is None:
            return self.met
        return self.goal.holds(self.number, self.floor) and self.met is not False

    @property
    def stands(self) -> str:
        verdict = self.verdict
        return "" if verdict is None else ("met" if verdict else "MISSED")


def result_record(figure: Figure) -> dict[str, Any]:
    """One entry of `results.json`: numbers as numbers, null where there is none. `target` is
    the goal (`"<= 1.2"`: on `ratio` when `floor` is set, else on `value`) or the table's text."""
    ratio = figure.ratio
    return {
        "benchmark": figure.benchmark,
        "measure": figure.measure,
        "value": _finite(figure.number) if figure.number is not None else figure.value,
        "floor": _finite(figure.floor),
        "ratio": _finite(ratio),
        "target": str(figure.goal) if figure.goal is not None else (figure.target or None),
        "met": figure.verdict,
    }


def write_results(figures: Sequence[Figure], path: Path = RESULTS) -> None:
    records = [result_record(figure) for figure in figures]
    path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _finite(number: float | None) -> float | None:
    if number is None or not math.isfinite(number):
        return None
    return round(number, 6)


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
