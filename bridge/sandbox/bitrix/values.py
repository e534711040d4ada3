"""How the Bitrix24 emulator reads request values: PHP's loose strings, numbers and flags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.sandbox.bitrix.php_query import php_string


def as_text(value: Any) -> str:
    if value is None or isinstance(value, Mapping | list):
        return ""
    return php_string(value).strip()


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = as_text(value)
    if text.lstrip("-").isdigit():
        return int(text)
    return None


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return as_text(value).lower() in ("1", "y", "true", "yes", "on")


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return list(value.values())
    return [] if value in (None, "") else [value]


def php_text(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return "Array"
    return "" if value is False else php_string(value)


def method_name(raw: str) -> str:
    name = raw.strip().lower()
    return name.removesuffix(".json")
