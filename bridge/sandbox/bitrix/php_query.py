"""PHP query strings: `http_build_query` and `parse_str` with bracket keys, as Bitrix24 speaks them.

`parse_php_query` returns what PHP's `json_encode(parse_str(...))` would show: nested dicts, and a
list wherever the keys are exactly 0..n-1 in order (the top level always stays a dict).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote_plus

__all__ = ["http_build_query", "parse_php_query", "php_string"]


def http_build_query(data: Mapping[str, Any]) -> str:
    """Encode like PHP `http_build_query`: `a%5Bb%5D=1`, spaces as `+`, empty arrays omitted."""
    pairs: list[str] = []
    for key, value in data.items():
        _flatten(_urlencode(php_string(key)), value, pairs)
    return "&".join(pairs)


def parse_php_query(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Decode `(key, value)` pairs like PHP `parse_str`: `a[b][c]` nests, `a[]` appends."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        path = _split_key(raw_key)
        if path is None:
            continue
        node = root
        for segment in path[:-1]:
            key = _next_index(node) if segment == "" else segment
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        last = path[-1]
        node[_next_index(node) if last == "" else last] = value
    return {key: _listify(value) for key, value in root.items()}


def php_string(value: Any) -> str:
    """A scalar as PHP casts it into a query string: True "1", False "0", None ""."""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".14G")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _flatten(prefix: str, value: Any, out: list[str]) -> None:
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        out.append(f"{prefix}={_urlencode(php_string(value))}")
        return
    for key, child in items:
        _flatten(f"{prefix}%5B{_urlencode(php_string(key))}%5D", child, out)


def _urlencode(text: str) -> str:
    # PHP's urlencode() keeps only alphanumerics and "-_." unescaped; Python also keeps "~".
    return quote_plus(text, safe="").replace("~", "%7E")


def _split_key(raw_key: str) -> list[str] | None:
    bracket = raw_key.find("[")
    if bracket <= 0:
        return [raw_key] if raw_key else None
    path = [raw_key[:bracket]]
    rest = raw_key[bracket:]
    while rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            if len(path) == 1:  # PHP turns an unmatched first "[" into "_" and keeps the rest
                return [raw_key[:bracket] + "_" + rest[1:]]
            break
        path.append(rest[1:close])
        rest = rest[close + 1 :]
    return path


def _is_int_key(key: str) -> bool:
    return key == "0" or (key.isdigit() and key.isascii() and not key.startswith("0"))


def _next_index(node: Mapping[str, Any]) -> str:
    indices = [int(key) for key in node if _is_int_key(key)]
    return str(max(indices) + 1) if indices else "0"


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _listify(child) for key, child in value.items()}
    if converted and list(converted) == [str(index) for index in range(len(converted))]:
        return list(converted.values())
    return converted
