"""A progress counter on stderr: `label: 120/500`, redrawn at most ten times a second."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int | None = None, unit: str = "") -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self._drawn = 0.0
        self._tty = sys.stderr.isatty()

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self._drawn >= (0.1 if self._tty else 5.0):
            self._drawn = now
            self._draw("\r" if self._tty else "")

    def close(self) -> None:
        self._draw("\r" if self._tty else "")
        sys.stderr.write("\n" if self._tty else "")
        sys.stderr.flush()

    def _draw(self, start: str) -> None:
        total = f"/{self.total}" if self.total is not None else ""
        end = "\033[K" if self._tty else "\n"
        sys.stderr.write(f"{start}  {self.label}: {self.done}{total}{self.unit}{end}")
        sys.stderr.flush()
