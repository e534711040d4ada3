"""Parsing and validating Bitrix24 event deliveries.

Bitrix24 POSTs form-encoded bodies with PHP bracket keys (`data[id]=202&auth[member_id]=…`),
every value a string; the docs show the same structure as JSON, which we accept too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

MAX_BODY_BYTES = 64 * 1024
_MAX_KEYS = 256
_MAX_DEPTH = 4
_MAX_VALUE = 2048
_MAX_TEXT = 255  # the widest stored column a field can reach (portal_address.value)
_MAX_EVENT = 64  # inbox_event.event
_MAX_EXPIRES_DIGITS = 9  # a token lifetime in seconds: under 32 years, fits an INTEGER
_MAX_SHOWN = 100  # what an error quotes of the caller's text
_EVENT_NAME = re.compile(r"[A-Z0-9_.]+")

# Credentials that may ride along in `auth`; they are never stored.
SECRET_AUTH_KEYS = frozenset({"access_token", "refresh_token", "application_token"})


class SectionEvent(StrEnum):
    ADD = "ONCALENDARSECTIONADD"
    UPDATE = "ONCALENDARSECTIONUPDATE"
    DELETE = "ONCALENDARSECTIONDELETE"


class EntryEvent(StrEnum):
    """A calendar entry (event, booking) was added, changed or deleted: `data[id]` is its id
    (`api-reference/calendar/calendar-event/events/`)."""

    ADD = "ONCALENDARENTRYADD"
    UPDATE = "ONCALENDARENTRYUPDATE"
    DELETE = "ONCALENDARENTRYDELETE"


SECTION_EVENTS = frozenset(e.value for e in SectionEvent)
ENTRY_EVENTS = frozenset(e.value for e in EntryEvent)
HANDLED_EVENTS = SECTION_EVENTS | ENTRY_EVENTS
INSTALL = "ONAPPINSTALL"
UNINSTALL = "ONAPPUNINSTALL"
OFFLINE_NOTICE = "ONOFFLINEEVENT"
# Portal-level work for the worker: bind events after an install; pull the offline queue.
PORTAL_EVENTS = frozenset({INSTALL, OFFLINE_NOTICE})


class MalformedEvent(Exception):
    """The body cannot be an event; `field` names what is wrong in PHP bracket form."""

    def __init__(self, field: str, problem: str) -> None:
        field = shown(field)
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


class UnsupportedContentType(Exception):
    pass


def shown(text: str) -> str:
    """The caller's text as an error may quote it: at most about a hundred characters."""
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN]}…"


@dataclass(frozen=True)
class EventAuth:
    member_id: str
    domain: str
    application_token: str
    client_endpoint: str = ""
    server_endpoint: str = ""
    access_token: str = ""  # app events only; kept in memory for an install, never stored
    refresh_token: str = ""
    expires_in: str = ""


@dataclass(frozen=True)
class BitrixEvent:
    event: str
    auth: EventAuth
    section_id: str | None  # set for the section events the bridge handles
    payload: dict[str, Any]  # what gets stored: the body without credentials
    entry_id: str | None = None  # set for the entry events

    @property
    def handled(self) -> bool:
        return self.event in HANDLED_EVENTS or self.event in PORTAL_EVENTS

    def encoded(self) -> tuple[str, str]:
        """The payload as the inbox keeps it (JSON, keys sorted, no spaces, text as it came) and
        its dedup key, that text's SHA-256, which identical re-deliveries share: one encoding
        for both. For a payload of ASCII text the key is the one earlier versions stored. Text
        the database cannot take (a lone surrogate) still gets its key: the store refuses that
        one delivery, not its group."""
        text = json.dumps(self.payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return text, hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        return _parse_form(body)
    if media_type == "application/json":
        return _parse_json(body)
    raise UnsupportedContentType(
        f"content type {shown(media_type) or '(none)'!r} is not supported; "
        "send application/x-www-form-urlencoded or application/json"
    )


def read_event(fields: dict[str, Any]) -> BitrixEvent:
    event = _text(fields, "event", "event", required=True).upper()
    if len(event) > _MAX_EVENT or not _EVENT_NAME.fullmatch(event):
        raise MalformedEvent(
            "event", f"must be an event name (A-Z, 0-9, _ and ., at most {_MAX_EVENT})"
        )
    auth_raw = fields.get("auth")
    if not isinstance(auth_raw, dict):
        raise MalformedEvent("auth", "is missing" if auth_raw is None else "must be a map")
    auth = EventAuth(
        member_id=_text(auth_raw, "member_id", "auth[member_id]", required=True),
        domain=_text(auth_raw, "domain", "auth[domain]", required=True).lower(),
        application_token=_text(
            auth_raw, "application_token", "auth[application_token]", required=True
        ),
        **{
            name: _text(auth_raw, name, f"auth[{name}]", required=False)
            for name in (
                "client_endpoint",
                "server_endpoint",
                "access_token",
                "refresh_token",
                "expires_in",
            )
        },
    )
    if auth.expires_in and not (
        auth.expires_in.isascii()
        and auth.expires_in.isdigit()
        and len(auth.expires_in) <= _MAX_EXPIRES_DIGITS
    ):
        raise MalformedEvent("auth[expires_in]", "must be a number of seconds")
    for optional in ("ts", "event_handler_id"):
        _text(fields, optional, optional, required=False)
    payload = {key: value for key, value in fields.items() if key != "auth"}
    payload["auth"] = {k: v for k, v in auth_raw.items() if k not in SECRET_AUTH_KEYS}
    section_id = _object_id(fields, "section") if event in SECTION_EVENTS else None
    entry_id = _object_id(fields, "entry") if event in ENTRY_EVENTS else None
    return BitrixEvent(
        event=event, auth=auth, section_id=section_id, payload=payload, entry_id=entry_id
    )


def _object_id(fields: dict[str, Any], kind: str) -> str:
    """`data[id]`: the section's or the entry's id, a positive integer."""
    data = fields.get("data")
    if not isinstance(data, dict):
        raise MalformedEvent("data[id]", "is missing")
    value = data.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(
            "data[id]", "is missing" if value in (None, "") else "must be a string"
        )
    if not value.isascii() or not value.isdigit() or len(value) > 18 or int(value) == 0:
        raise MalformedEvent("data[id]", f"must be a positive integer {kind} id")
    return str(int(value))


def _text(fields: dict[str, Any], key: str, name: str, *, required: bool) -> str:
    value = fields.get(key)
    if value is None or value == "":
        if required:
            raise MalformedEvent(name, "is missing")
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise MalformedEvent(name, "must be a string")
    if len(value) > _MAX_TEXT:
        raise MalformedEvent(name, f"is too long (at most {_MAX_TEXT} characters)")
    if "\x00" in value:
        raise MalformedEvent(name, "contains a NUL character")
    _check_encodable(value, name)
    return value


def _check_encodable(value: str, name: str) -> None:
    """A lone UTF-16 surrogate (JSON allows "\\ud800") cannot be stored or encoded."""
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problem = "text that is not valid Unicode (a lone UTF-16 surrogate)"
        where = f"contains {problem}" if name else f"body has {problem}"
        raise MalformedEvent(name, where) from None


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent("", f"body is not valid JSON ({exc.__class__.__name__})") from None
    except RecursionError:
        raise MalformedEvent("", "body is nested too deeply") from None
    except ValueError:  # an integer beyond Python's digit limit, NaN, a float overflow
        raise MalformedEvent("", "body holds a number out of range") from None
    if not isinstance(value, dict):
        raise MalformedEvent("", "body must be a JSON object")
    _check_shape(value, depth=0)
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


def _check_shape(value: Any, depth: int) -> None:
    """Depth, and text that can be stored (every key and string, checked once: linear)."""
    if depth > _MAX_DEPTH:
        raise MalformedEvent("", "body is nested too deeply")
    if isinstance(value, str):
        _check_encodable(value, "")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_encodable(key, "")
            _check_shape(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_shape(item, depth + 1)


def _parse_form(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvent("", "body is not UTF-8 form data") from None
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=_MAX_KEYS
        )
    except ValueError as exc:
        raise MalformedEvent("", f"body is not form data ({shown(str(exc))})") from None
    result: dict[str, Any] = {}
    for key, value in pairs:
        if len(value) > _MAX_VALUE:
            raise MalformedEvent(key, "value is too long")
        _assign(result, _split_key(key), value, key)
    return result


def _split_key(key: str) -> list[str]:
    """`auth[member_id]` → ["auth", "member_id"], as PHP reads bracket keys."""
    head, bracket, rest = key.partition("[")
    if not head:
        raise MalformedEvent(key, "key has no name")
    parts = [head]
    while bracket:
        inner, closed, tail = rest.partition("]")
        if not closed:
            raise MalformedEvent(key, "key has an unclosed bracket")
        parts.append(inner)
        if len(parts) > _MAX_DEPTH:  # before the next slice: a long key stays linear
            raise MalformedEvent(key, "key is nested too deeply")
        if not tail:
            break
        if not tail.startswith("["):
            raise MalformedEvent(key, "key has text after a bracket")
        rest = tail[1:]
    return parts


def _assign(target: dict[str, Any], parts: list[str], value: str, key: str) -> None:
    node = target
    for part in parts[:-1]:
        if not part:
            raise MalformedEvent(key, "empty brackets are only allowed last")
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise MalformedEvent(key, "conflicts with a plain value of the same name")
        node = child
    last = parts[-1]
    if last == "":
        last = str(len(node))
    if isinstance(node.get(last), dict):
        raise MalformedEvent(key, "conflicts with a map of the same name")
    node[last] = value
