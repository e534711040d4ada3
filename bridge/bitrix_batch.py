"""A `batch` request's two ends, as plain functions: one command written as `method?query`, and
the rows of one command's result (a list, or a map keyed by id), whatever its shape."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode


def batch_command(method: str, params: Mapping[str, object]) -> str:
    """`method?query` with PHP bracket keys, as `batch` expects."""
    return f"{method}?{urlencode(_flatten(params))}" if params else method


def _flatten(params: Mapping[str, object], prefix: str = "") -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            pairs.extend(_flatten(value, name))
        elif isinstance(value, list):
            pairs.extend(_flatten({str(i): item for i, item in enumerate(value)}, name))
        else:
            pairs.append((name, str(value)))
    return pairs


def batch_rows(value: object) -> list[dict[str, object]]:
    if isinstance(value, list):
        return [row for row in value if isinstance(row, dict)]
    if isinstance(value, dict):
        return [row for row in value.values() if isinstance(row, dict)]
    return []
