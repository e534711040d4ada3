"""Listings as the REST methods answer them: filters with Bitrix24's operator prefixes (`!`,
`>=`, `%`, `=%` …), sort keys, and pages of 50 with `total` and `next`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bridge.sandbox.bitrix.php_query import php_string
from bridge.sandbox.bitrix.values import as_bool, as_int, as_list, php_text

PAGE_SIZE = 50
_FILTER_OPS = ("!=%", "!%=", ">=", "<=", "=%", "%=", "!%", "!@", "!=", ">", "<", "@", "%", "=", "!")


def split_op(key: str) -> tuple[str, str]:
    for op in _FILTER_OPS:
        if key.startswith(op):
            return op, key[len(op) :]
    return "", key


def row_matches(row: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    for raw_key, expected in conditions.items():
        op, name = split_op(str(raw_key))
        if not _condition(op, row.get(name.upper()), expected):
            return False
    return True


def _condition(op: str, actual: Any, expected: Any) -> bool:
    negate = op.startswith("!")
    base = op.lstrip("!") or "="
    if base in ("=", "@"):
        hit = any(_same(actual, option) for option in as_list(expected) or [""])
    elif base == "%":
        hit = php_string(expected).lower() in php_text(actual).lower()
    elif base in ("=%", "%="):
        pattern = ".*".join(re.escape(part) for part in php_string(expected).lower().split("%"))
        hit = re.fullmatch(pattern, php_text(actual).lower(), re.DOTALL) is not None
    else:
        hit = _compare(base, actual, expected)
    return hit != negate


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool):
        return actual == as_bool(expected)
    if isinstance(actual, list):
        return any(_same(item, expected) for item in actual)
    return php_text(actual) == php_text(expected)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    left: Any = as_int(actual)
    right: Any = as_int(expected)
    if left is None or right is None:
        left, right = php_text(actual), php_text(expected)
    if op == ">":
        return bool(left > right)
    if op == ">=":
        return bool(left >= right)
    if op == "<":
        return bool(left < right)
    return bool(left <= right)


def sort_key(value: Any) -> tuple[int, float, str]:
    number = as_int(value)
    return (0, float(number), "") if number is not None else (1, 0.0, php_string(value).lower())


def paged(
    rows: list[dict[str, Any]], start: Any
) -> tuple[list[dict[str, Any]], int | None, int | None]:
    offset = as_int(start) or 0
    if offset < 0:  # start=-1: no count, the caller pages by id
        return rows[:PAGE_SIZE], None, None
    following = offset + PAGE_SIZE
    return rows[offset:following], len(rows), following if following < len(rows) else None
